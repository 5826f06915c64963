// Users and their permissions: add, edit (tags, password) and delete users; set and clear a
// user's permissions in a virtual host.

import * as api from '../api.js';
import { h, note, section, table, field, form, flash, actionButton } from '../ui.js';

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

const tagsText = (t) => (Array.isArray(t) ? t.join(', ') : t || '');

export default async function render({ main, current }) {
  const usersBox = h('div', { id: 'users' });
  const permsBox = h('div', { id: 'permissions' });

  const userForm = form('user-form', [
    field('Username', h('input', { name: 'name', required: true, autocomplete: 'off' })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'unchanged when editing' })),
    field('Tags (comma-separated)', h('input', { name: 'tags', list: 'tag-names' })),
    h('datalist', { id: 'tag-names' }, TAGS.map((t) => h('option', { value: t }))),
  ], 'Add / update user', async (data, f) => {
    const name = data.get('name');
    const body = { tags: data.get('tags') };
    if (data.get('password')) {
      body.password = data.get('password');
    } else {
      // Editing without a new password keeps the stored hash, as RabbitMQ's UI does.
      try {
        const existing = await api.get(`/users/${api.enc(name)}`);
        body.password_hash = existing.password_hash || '';
        if (existing.hashing_algorithm) body.hashing_algorithm = existing.hashing_algorithm;
      } catch (error) {
        if (!error.missing) throw error;
        body.password_hash = ''; // a new user without a password cannot log in with one
      }
    }
    await api.put(`/users/${api.enc(name)}`, body);
    flash(`User ${name} saved.`);
    f.reset();
    refreshUsers();
  });

  const permForm = form('permission-form', [
    field('User', h('input', { name: 'user', required: true })),
    field('Virtual host', h('input', { name: 'vhost', value: '/', required: true })),
    field('Configure regexp', h('input', { name: 'configure', value: '.*' })),
    field('Write regexp', h('input', { name: 'write', value: '.*' })),
    field('Read regexp', h('input', { name: 'read', value: '.*' })),
  ], 'Set permission', async (data) => {
    await api.put(`/permissions/${api.enc(data.get('vhost'))}/${api.enc(data.get('user'))}`,
      { configure: data.get('configure'), write: data.get('write'), read: data.get('read') });
    flash(`Permissions of ${data.get('user')} in ${data.get('vhost')} set.`);
    refreshPermissions();
  });

  async function refreshUsers() {
    try {
      const rows = await api.get('/users');
      if (!current()) return;
      usersBox.replaceChildren(table({
        id: 'users-table', rows, empty: 'No users.', columns: [
          { key: 'name', label: 'Name' },
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

  async function refreshPermissions() {
    try {
      const rows = await api.get('/permissions');
      if (!current()) return;
      permsBox.replaceChildren(table({
        id: 'permissions-table', rows, empty: 'No permissions.', columns: [
          { key: 'user', label: 'User' }, { key: 'vhost', label: 'Virtual host' },
          { key: 'configure', label: 'Configure' }, { key: 'write', label: 'Write' }, { key: 'read', label: 'Read' },
          { key: 'clear', label: '', render: (p) => actionButton('Clear', `Clear the permissions of ${p.user} in ${p.vhost}?`, async () => {
            await api.del(`/permissions/${api.enc(p.vhost)}/${api.enc(p.user)}`);
            flash('Permissions cleared.');
            refreshPermissions();
          }, 'small danger') },
        ],
      }));
    } catch (error) {
      if (current()) permsBox.replaceChildren(note(error.message, 'error'));
    }
  }

  main.append(h('h1', {}, 'Users'), usersBox, section('Add or update a user', userForm),
    section('Permissions', permsBox, permForm));
  await Promise.all([refreshUsers(), refreshPermissions()]);
}
