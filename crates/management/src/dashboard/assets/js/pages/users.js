// Users and their permissions: add, edit (tags, password) and delete users; set and clear a
// user's permissions and topic permissions in a virtual host. Each user has its own page too.

import * as api from '../api.js';
import { h, note, section, table, field, form, flash, actionButton } from '../ui.js';
import { permissionsBlock } from '../permissions.js';

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

export const tagsText = (t) => (Array.isArray(t) ? t.join(', ') : t || '');

/**
 * The body of PUT /api/users/{name} from a form's password and tags: an empty password keeps
 * the stored hash, as RabbitMQ's UI does (a new user without one cannot log in with a password).
 */
export async function userBody(name, password, tags) {
  const body = { tags };
  if (password) {
    body.password = password;
    return body;
  }
  try {
    const existing = await api.get(`/users/${api.enc(name)}`);
    body.password_hash = existing.password_hash || '';
    if (existing.hashing_algorithm) body.hashing_algorithm = existing.hashing_algorithm;
  } catch (error) {
    if (!error.missing) throw error;
    body.password_hash = '';
  }
  return body;
}

export default async function render({ main, current }) {
  const usersBox = h('div', { id: 'users' });
  const perms = permissionsBlock({ kind: 'permissions', current });
  const topic = permissionsBlock({ kind: 'topic-permissions', current });
  const permForm = perms.form;
  const refreshPermissions = () => Promise.all([perms.refresh(), topic.refresh()]);

  const userForm = form('user-form', [
    field('Username', h('input', { name: 'name', required: true, autocomplete: 'off' })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'unchanged when editing' })),
    field('Tags (comma-separated)', h('input', { name: 'tags', list: 'tag-names' })),
    h('datalist', { id: 'tag-names' }, TAGS.map((t) => h('option', { value: t }))),
  ], 'Add / update user', async (data, f) => {
    const name = data.get('name');
    const body = await userBody(name, data.get('password'), data.get('tags'));
    await api.put(`/users/${api.enc(name)}`, body);
    flash(`User ${name} saved.`);
    f.reset();
    refreshUsers();
  });

  async function refreshUsers() {
    try {
      const rows = await api.get('/users');
      if (!current()) return;
      usersBox.replaceChildren(table({
        id: 'users-table', rows, empty: 'No users.', columns: [
          { key: 'name', label: 'Name', render: (u) => h('a', { href: `#/users/${api.enc(u.name)}` }, u.name) },
          { key: 'tags', label: 'Tags', render: (u) => tagsText(u.tags) },
          { key: 'password', label: 'Can log in with password', render: (u) => (u.password_hash ? 'yes' : 'no') },
          { key: 'actions', label: '', render: (u) => h('span', { class: 'row-actions' },
            h('button', { type: 'button', class: 'small', onclick: () => {
              userForm.querySelector('[name=name]').value = u.name;
              userForm.querySelector('[name=tags]').value = tagsText(u.tags);
              userForm.querySelector('[name=password]').focus();
            } }, 'Edit'),
            h('button', { type: 'button', class: 'small', onclick: () => {
              permForm.querySelector('[name=user]').value = u.name;
              permForm.querySelector('[name=user]').focus();
            } }, 'Permissions'),
            actionButton('Delete', `Delete user ${u.name}?`, async () => {
              await api.del(`/users/${api.enc(u.name)}`);
              flash(`User ${u.name} deleted.`);
              refreshUsers();
              refreshPermissions();
            }, 'small danger')) },
        ],
      }));
    } catch (error) {
      if (current()) usersBox.replaceChildren(note(error.status === 401 ? 'Users need the administrator tag.' : error.message, 'error'));
    }
  }

  main.append(h('h1', {}, 'Users'), usersBox, section('Add or update a user', userForm),
    section('Permissions', perms.element), section('Topic permissions', topic.element));
  await Promise.all([refreshUsers(), refreshPermissions()]);
}
