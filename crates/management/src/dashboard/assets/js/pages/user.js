// One user: its tags, update (tags, password) and delete; its permissions and topic permissions
// in each virtual host (set, clear); its limits (set, clear); its open connections.

import * as api from '../api.js';
import { h, note, section, field, form, flash, actionButton, details } from '../ui.js';
import { permissionsBlock } from '../permissions.js';
import { limitsBlock } from '../limits.js';
import { tagsText, userBody } from './users.js';

export default async function render({ main, params, current }) {
  const [name] = params;
  const base = `/users/${api.enc(name)}`;
  const summary = h('div', { id: 'user-summary' });
  main.append(h('h1', {}, `User ${name}`), section('Details', summary));
  let user;
  try {
    user = await api.get(base);
  } catch (error) {
    if (current()) summary.replaceChildren(error.missing ? note(`There is no user ${name}.`, 'note missing') : note(error.message, 'error'));
    return;
  }
  if (!current()) return;
  const show = (u) => summary.replaceChildren(details([['Tags', tagsText(u.tags) || '(none)'],
    ['Can log in with password', u.password_hash ? 'yes' : 'no']]));
  show(user);

  const perms = permissionsBlock({ kind: 'permissions', scope: { user: name }, current });
  const topic = permissionsBlock({ kind: 'topic-permissions', scope: { user: name }, current });
  const limits = limitsBlock({ kind: 'user', name, editable: true, current });

  const update = form('user-form', [
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'unchanged when empty' })),
    field('Tags (comma-separated)', h('input', { name: 'tags', value: tagsText(user.tags) })),
  ], 'Update this user', async (data) => {
    await api.put(base, await userBody(name, data.get('password'), data.get('tags')));
    flash(`User ${name} updated.`);
    show(await api.get(base));
  });

  const remove = actionButton('Delete this user', `Delete user ${name}?`, async () => {
    await api.del(base);
    flash(`User ${name} deleted.`);
    location.hash = '#/users';
  });

  main.append(section('Permissions', perms.element), section('Topic permissions', topic.element),
    section('Limits', limits.element), section('Update this user', update), section('Delete', remove));
  await Promise.all([perms.refresh(), topic.refresh(), limits.refresh()]);
}
