// One channel: its details (connection, mode, prefetch, unacked, unconfirmed, rates) and its
// consumers (from /api/consumers of its vhost).

import * as api from '../api.js';
import { h, note, section, table, details } from '../ui.js';
import { count, rate, statRate, yesNo, json } from '../format.js';
import { mode } from './channels.js';
import { queueLink } from './queues.js';

export default async function render({ main, params, every, current }) {
  const [name] = params;
  const summary = h('div', { id: 'channel-summary' });
  const consumers = h('div', { id: 'channel-consumers' });

  const refresh = async () => {
    let c;
    try {
      c = await api.get(`/channels/${api.enc(name)}`);
    } catch (error) {
      if (current()) summary.replaceChildren(error.missing ? note(`There is no channel ${name} (it may have closed).`, 'note missing') : note(error.message, 'error'));
      return;
    }
    if (!current()) return;
    const connection = (c.connection_details || {}).name;
    const ms = c.message_stats;
    summary.replaceChildren(details([
      ['Connection', connection ? h('a', { href: `#/connections/${api.enc(connection)}` }, connection) : '—'],
      ['Virtual host', c.vhost], ['User', c.user], ['State', c.state],
      ['Mode', { C: 'confirm', T: 'transactional', '': 'normal' }[mode(c)] || mode(c)],
      ['Prefetch', count(c.prefetch_count)], ['Global prefetch', count(c.global_prefetch_count)],
      ['Unacked', count(c.messages_unacknowledged)], ['Unconfirmed', count(c.messages_unconfirmed)],
      ['Consumers', count(c.consumer_count)], ['Publish', rate(statRate(ms, 'publish'))],
      ['Confirm', rate(statRate(ms, 'confirm'))], ['Deliver / get', rate(statRate(ms, 'deliver_get'))], ['Ack', rate(statRate(ms, 'ack'))],
    ]));
    try {
      const all = await api.get(`/consumers/${api.enc(c.vhost)}`);
      const rows = all.filter((x) => (x.channel_details || {}).name === name);
      if (current()) consumers.replaceChildren(table({
        id: 'channel-consumers-table', rows, empty: 'No consumers on this channel.', columns: [
          { key: 'consumer_tag', label: 'Consumer tag' },
          { key: 'queue', label: 'Queue', render: (x) => queueLink(x.queue) },
          { key: 'ack_required', label: 'Ack required', render: (x) => yesNo(x.ack_required) },
          { key: 'exclusive', label: 'Exclusive', render: (x) => yesNo(x.exclusive) },
          { key: 'prefetch_count', label: 'Prefetch', num: true },
          { key: 'arguments', label: 'Arguments', render: (x) => json(x.arguments) },
        ],
      }));
    } catch (error) {
      if (current()) consumers.replaceChildren(note(error.message, 'error'));
    }
  };

  main.append(h('h1', {}, `Channel ${name}`), section('Details', summary), section('Consumers', consumers));
  await every(5000, refresh);
}
