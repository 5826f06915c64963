// Policies and operator policies: list, add, edit (the form is filled from a row), delete.
// Without the policymaker tag the policies are only listed; operator policies are the
// administrator's, as in RabbitMQ.

import * as api from '../api.js';
import { can, needs } from '../roles.js';
import { h, note, section, table, field, form, select, flash, actionButton, parseJsonObject } from '../ui.js';

function policyBlock({ title, kind, current, editable }) {
  const box = h('div', { id: `${kind}-list` });
  const definition = h('textarea', { name: 'definition', rows: 3, placeholder: '{"max-length": 1000}' });
  const pform = form(`${kind}-form`, [
    field('Virtual host', h('input', { name: 'vhost', value: '/', required: true })),
    field('Name', h('input', { name: 'name', required: true })),
    field('Pattern', h('input', { name: 'pattern', required: true, placeholder: '^orders\\.' })),
    field('Apply to', select('apply-to', kind === 'policies'
      ? [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges']]
      : [['queues', 'Queues']], kind === 'policies' ? 'all' : 'queues')),
    field('Priority', h('input', { name: 'priority', type: 'number', value: '0' })),
    field('Definition (JSON)', definition),
  ], `Add / update ${kind === 'policies' ? 'policy' : 'operator policy'}`, async (data, f) => {
    const name = data.get('name');
    await api.put(`/${kind}/${api.enc(data.get('vhost'))}/${api.enc(name)}`, {
      pattern: data.get('pattern'), 'apply-to': data.get('apply-to'), priority: Number(data.get('priority')) || 0,
      definition: parseJsonObject(data.get('definition'), 'Definition'),
    });
    flash(`Policy ${name} saved.`);
    f.reset();
    refresh();
  });

  async function refresh() {
    try {
      const rows = await api.get(`/${kind}`);
      if (!current()) return;
      box.replaceChildren(table({
        id: `${kind}-table`, rows, empty: 'None.', columns: [
          { key: 'vhost', label: 'Virtual host' }, { key: 'name', label: 'Name' }, { key: 'pattern', label: 'Pattern' },
          { key: 'apply-to', label: 'Apply to' },
          { key: 'definition', label: 'Definition', render: (p) => h('code', {}, JSON.stringify(p.definition)) },
          { key: 'priority', label: 'Priority', num: true },
          editable ? { key: 'actions', label: '', render: (p) => h('span', { class: 'row-actions' },
            h('button', { type: 'button', class: 'small', onclick: () => {
              for (const k of ['vhost', 'name', 'pattern', 'apply-to', 'priority']) pform.querySelector(`[name="${k}"]`).value = p[k];
              definition.value = JSON.stringify(p.definition, null, 1);
            } }, 'Edit'),
            actionButton('Delete', `Delete policy ${p.name}?`, async () => {
              await api.del(`/${kind}/${api.enc(p.vhost)}/${api.enc(p.name)}`);
              flash(`Policy ${p.name} deleted.`);
              refresh();
            }, 'small danger')) } : null,
        ].filter(Boolean),
      }));
    } catch (error) {
      if (current()) box.replaceChildren(note(error.status === 401 ? 'Policies need the policymaker or administrator tag.' : error.message, 'error'));
    }
  }
  return { element: section(title, box, editable ? pform : note(needs('policymaker', 'Changing policies'), 'note needs-tag')), refresh };
}

export default async function render({ main, current }) {
  const policies = policyBlock({ title: 'User policies', kind: 'policies', current, editable: can('policymaker') });
  main.append(h('h1', {}, 'Policies'), policies.element);
  if (!can('administrator')) {
    await policies.refresh();
    return;
  }
  const operator = policyBlock({ title: 'Operator policies', kind: 'operator-policies', current, editable: true });
  main.append(operator.element);
  await Promise.all([policies.refresh(), operator.refresh()]);
}
