// Limits: every virtual host's limits (max-connections, max-queues) and every user's
// (max-connections, max-channels); set and clear them. Users without the administrator tag see
// the limits of their vhosts and change nothing, as in RabbitMQ.

import { can, needs } from '../roles.js';
import { h, note, section } from '../ui.js';
import { limitsBlock } from '../limits.js';

export default async function render({ main, current }) {
  const admin = can('administrator');
  const vhosts = limitsBlock({ kind: 'vhost', editable: admin, current });
  main.append(h('h1', {}, 'Limits'),
    note('A negative value removes the limit; 0 allows none (for max-connections: no client may connect to the virtual host).'),
    section('Virtual host limits', vhosts.element));
  if (!admin) {
    main.append(note(needs('administrator', 'Setting limits or seeing user limits'), 'note needs-tag'));
    await vhosts.refresh();
    return;
  }
  const users = limitsBlock({ kind: 'user', editable: true, current });
  main.append(section('User limits', users.element));
  await Promise.all([vhosts.refresh(), users.refresh()]);
}
