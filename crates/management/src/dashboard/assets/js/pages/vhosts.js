// Virtual hosts: list (with their message counts and limits), add, edit the description and
// tags, delete. Each vhost has its own page (permissions, topic permissions, limits).

import * as api from '../api.js';
import { h, note, section, table, field, form, flash, actionButton } from '../ui.js';
import { count } from '../format.js';

export default async function render({ main, current }) {
  const box = h('div', { id: 'vhosts' });
  const vform = form('vhost-form', [
    field('Name', h('input', { name: 'name', required: true })),
    field('Description', h('input', { name: 'description' })),
    field('Tags (comma-separated)', h('input', { name: 'tags' })),
  ], 'Add / update virtual host', async (data, f) => {
    const name = data.get('name');
    await api.put(`/vhosts/${api.enc(name)}`, { description: data.get('description'), tags: data.get('tags') });
    flash(`Virtual host ${name} saved.`);
    f.reset();
    refresh();
  });

  async function refresh() {
    try {
      const rows = await api.get('/vhosts');
      if (!current()) return;
      box.replaceChildren(table({
        id: 'vhosts-table', rows, empty: 'No virtual hosts.', columns: [
          { key: 'name', label: 'Name', render: (v) => h('a', { href: `#/vhosts/${api.enc(v.name)}` }, v.name) },
          { key: 'description', label: 'Description' },
          { key: 'tags', label: 'Tags', render: (v) => (Array.isArray(v.tags) ? v.tags.join(', ') : v.tags || '') },
          { key: 'messages', label: 'Messages', num: true, render: (v) => count(v.messages) },
          { key: 'actions', label: '', render: (v) => h('span', { class: 'row-actions' },
            h('button', { type: 'button', class: 'small', onclick: () => {
              vform.querySelector('[name=name]').value = v.name;
              vform.querySelector('[name=description]').value = v.description || '';
              vform.querySelector('[name=tags]').value = Array.isArray(v.tags) ? v.tags.join(',') : v.tags || '';
            } }, 'Edit'),
            actionButton('Delete', `Delete virtual host ${v.name} and everything in it?`, async () => {
              await api.del(`/vhosts/${api.enc(v.name)}`);
              flash(`Virtual host ${v.name} deleted.`);
              refresh();
            }, 'small danger')) },
        ],
      }));
    } catch (error) {
      if (current()) box.replaceChildren(note(error.message, 'error'));
    }
  }

  main.append(h('h1', {}, 'Virtual hosts'), box, section('Add or update a virtual host', vform));
  await refresh();
}
