// Virtual host and user limits (RabbitMQ's max-connections, max-queues, max-channels): a table
// of the limits set, with Edit (fills the form) and Clear buttons per limit, and a form that
// sets one. Shared by the limits page (every vhost or user), a vhost's page and a user's page
// (`name` fixes the owner). Without `editable` (the user is no administrator) the block only
// lists.

import * as api from './api.js';
import { h, note, table, field, form, select, flash, actionButton, missingNote } from './ui.js';
import { count } from './format.js';

const KINDS = {
  vhost: { what: 'Virtual host', api: 'vhost-limits', names: ['max-connections', 'max-queues'] },
  user: { what: 'User', api: 'user-limits', names: ['max-connections', 'max-channels'] },
};

/** kind: 'vhost' or 'user'. Returns {element, form, refresh}. */
export function limitsBlock({ kind, name, editable, current }) {
  const spec = KINDS[kind];
  const box = h('div', { id: `${kind}-limits` });
  const path = name ? `/${spec.api}/${api.enc(name)}` : `/${spec.api}`;
  const limitPath = (owner, limit) => `/${spec.api}/${api.enc(owner)}/${api.enc(limit)}`;

  const setForm = editable ? form(`${kind}-limit-form`, [
    name ? h('input', { type: 'hidden', name: 'owner', value: name })
      : field(spec.what, h('input', { name: 'owner', required: true, value: kind === 'vhost' ? '/' : '' })),
    field('Limit', select('limit', spec.names, spec.names[0])),
    field('Value', h('input', { name: 'value', type: 'number', step: 1, required: true, title: 'A negative value means no limit' })),
  ], 'Set limit', async (data) => {
    const owner = data.get('owner');
    await api.put(limitPath(owner, data.get('limit')), { value: Number(data.get('value')) });
    flash(`${data.get('limit')} of ${owner} set to ${data.get('value')}.`);
    refresh();
  }) : null;

  const columns = [
    // The owner's page is the administrator's.
    name ? null : { key: 'owner', label: spec.what, render: (r) => (editable ? h('a', { href: `#/${kind}s/${api.enc(r.owner)}` }, r.owner) : r.owner) },
    { key: 'limit', label: 'Limit' },
    { key: 'value', label: 'Value', num: true, render: (r) => count(r.value) },
    editable ? { key: 'actions', label: '', render: (r) => h('span', { class: 'row-actions' },
      h('button', { type: 'button', class: 'small', onclick: () => {
        for (const k of ['owner', 'limit', 'value']) setForm.querySelector(`[name="${k}"]`).value = r[k];
      } }, 'Edit'),
      actionButton('Clear', `Clear ${r.limit} of ${r.owner}?`, async () => {
        await api.del(limitPath(r.owner, r.limit));
        flash(`${r.limit} of ${r.owner} cleared.`);
        refresh();
      }, 'small danger')) } : null,
  ].filter(Boolean);

  async function refresh() {
    try {
      const answer = await api.get(path);
      const rows = answer.flatMap((entry) => Object.entries(entry.value || {})
        .map(([limit, value]) => ({ owner: entry[kind], limit, value })));
      if (current()) box.replaceChildren(table({ id: `${kind}-limits-table`, rows, columns, empty: 'No limits set.' }));
    } catch (error) {
      if (current()) box.replaceChildren(error.missing ? missingNote(`/api${path}`) : note(error.message, 'error'));
    }
  }
  return { element: h('div', {}, box, setForm), form: setForm, refresh };
}
