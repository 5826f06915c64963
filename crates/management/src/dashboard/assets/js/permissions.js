// A user's permissions and topic permissions in virtual hosts: a table with Edit (fills the
// form) and Clear buttons per row and a form that sets one, shared by the users page (every user and vhost), a user's page
// (its vhosts) and a vhost's page (its users). `scope` is {} for all, {user} or {vhost}.

import * as api from './api.js';
import { h, note, table, field, form, flash, actionButton, missingNote } from './ui.js';

const KINDS = {
  permissions: {
    id: 'permission', what: 'Permissions',
    fields: [['configure', 'Configure regexp', '.*'], ['write', 'Write regexp', '.*'], ['read', 'Read regexp', '.*']],
    clearQuestion: (p) => `Clear the permissions of ${p.user} in ${p.vhost}?`,
  },
  'topic-permissions': {
    id: 'topic-permission', what: 'Topic permissions',
    fields: [['exchange', 'Exchange', 'amq.topic'], ['write', 'Write regexp', '.*'], ['read', 'Read regexp', '.*']],
    // The API clears a user's topic permissions in a vhost for every exchange at once.
    clearQuestion: (p) => `Clear the topic permissions of ${p.user} in ${p.vhost} (for every exchange)?`,
  },
};

function listPath(kind, scope) {
  if (scope.user) return `/users/${api.enc(scope.user)}/${kind}`;
  if (scope.vhost) return `/vhosts/${api.enc(scope.vhost)}/${kind}`;
  return `/${kind}`;
}

/** kind: 'permissions' or 'topic-permissions'. Returns {element, form, refresh}. */
export function permissionsBlock({ kind, scope = {}, current }) {
  const spec = KINDS[kind];
  const box = h('div', { id: `${kind}` });
  const owner = (key, label, value) => (scope[key]
    ? h('input', { type: 'hidden', name: key, value: scope[key] })
    : field(label, h('input', { name: key, value, required: true })));
  const setForm = form(`${spec.id}-form`, [
    owner('user', 'User', ''),
    owner('vhost', 'Virtual host', '/'),
    ...spec.fields.map(([name, label, value]) => field(label, h('input', { name, value }))),
  ], `Set ${spec.what.toLowerCase()}`, async (data) => {
    const body = Object.fromEntries(spec.fields.map(([name]) => [name, data.get(name)]));
    await api.put(`/${kind}/${api.enc(data.get('vhost'))}/${api.enc(data.get('user'))}`, body);
    flash(`${spec.what} of ${data.get('user')} in ${data.get('vhost')} set.`);
    refresh();
  });

  const columns = [
    scope.user ? null : { key: 'user', label: 'User', render: (p) => h('a', { href: `#/users/${api.enc(p.user)}` }, p.user) },
    scope.vhost ? null : { key: 'vhost', label: 'Virtual host', render: (p) => h('a', { href: `#/vhosts/${api.enc(p.vhost)}` }, p.vhost) },
    ...spec.fields.map(([key, label]) => ({ key, label: label.replace(' regexp', '') })),
    { key: 'actions', label: '', render: (p) => h('span', { class: 'row-actions' },
      h('button', { type: 'button', class: 'small', onclick: () => {
        for (const [name] of [['user'], ['vhost'], ...spec.fields]) setForm.querySelector(`[name="${name}"]`).value = p[name];
      } }, 'Edit'),
      actionButton('Clear', spec.clearQuestion(p), async () => {
        await api.del(`/${kind}/${api.enc(p.vhost)}/${api.enc(p.user)}`);
        flash(`${spec.what} of ${p.user} in ${p.vhost} cleared.`);
        refresh();
      }, 'small danger')) },
  ].filter(Boolean);

  async function refresh() {
    const path = listPath(kind, scope);
    try {
      const rows = await api.get(path);
      if (current()) box.replaceChildren(table({ id: `${kind}-table`, rows, columns, empty: `No ${spec.what.toLowerCase()}.` }));
    } catch (error) {
      if (current()) box.replaceChildren(error.missing ? missingNote(`/api${path}`) : note(error.message, 'error'));
    }
  }
  return { element: h('div', {}, box, setForm), form: setForm, refresh };
}
