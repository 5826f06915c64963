// One virtual host: its details, update (description, tags) and delete; the permissions and
// topic permissions of users in it (set, clear); its limits (set, clear).

import * as api from '../api.js';
import { h, note, section, field, form, flash, actionButton, details } from '../ui.js';
import { count } from '../format.js';
import { permissionsBlock } from '../permissions.js';
import { limitsBlock } from '../limits.js';

const tagsText = (t) => (Array.isArray(t) ? t.join(', ') : t || '');

export default async function render({ main, params, current }) {
  const [name] = params;
  const base = `/vhosts/${api.enc(name)}`;
  const summary = h('div', { id: 'vhost-summary' });
  main.append(h('h1', {}, `Virtual host ${name}`), section('Details', summary));
  const show = (v) => summary.replaceChildren(details([['Description', v.description || ''], ['Tags', tagsText(v.tags)],
    ['Ready', count(v.messages_ready)], ['Unacked', count(v.messages_unacknowledged)], ['Total', count(v.messages)]]));
  let vhost;
  try {
    vhost = await api.get(base);
  } catch (error) {
    if (current()) summary.replaceChildren(error.missing ? note(`There is no virtual host ${name}.`, 'note missing') : note(error.message, 'error'));
    return;
  }
  if (!current()) return;
  show(vhost);

  const perms = permissionsBlock({ kind: 'permissions', scope: { vhost: name }, current });
  const topic = permissionsBlock({ kind: 'topic-permissions', scope: { vhost: name }, current });
  const limits = limitsBlock({ kind: 'vhost', name, editable: true, current });

  const update = form('vhost-form', [
    field('Description', h('input', { name: 'description', value: vhost.description || '' })),
    field('Tags (comma-separated)', h('input', { name: 'tags', value: tagsText(vhost.tags) })),
  ], 'Update this virtual host', async (data) => {
    await api.put(base, { description: data.get('description'), tags: data.get('tags') });
    flash(`Virtual host ${name} updated.`);
    show(await api.get(base));
  });

  const remove = actionButton('Delete this virtual host', `Delete virtual host ${name} and everything in it?`, async () => {
    await api.del(base);
    flash(`Virtual host ${name} deleted.`);
    location.hash = '#/vhosts';
  });

  main.append(section('Permissions', perms.element), section('Topic permissions', topic.element),
    section('Limits', limits.element), section('Update this virtual host', update), section('Delete', remove));
  await Promise.all([perms.refresh(), topic.refresh(), limits.refresh()]);
}
