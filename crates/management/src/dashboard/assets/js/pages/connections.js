// Connections: the listing paged by the server, each linking to its page and with a button that
// closes it (DELETE /api/connections/{name}, with the reason in X-Reason).

import * as api from '../api.js';
import { h, pagedList, actionButton, flash } from '../ui.js';
import { bytes, count } from '../format.js';

export default async function render({ main, vhost, every }) {
  const path = () => (vhost ? `/vhosts/${api.enc(vhost)}/connections` : '/connections');
  let list;
  const columns = [
    { key: 'name', label: 'Name', sort: 'name', render: (c) => h('a', { href: `#/connections/${api.enc(c.name)}` }, c.name) },
    { key: 'vhost', label: 'Virtual host', sort: 'vhost' },
    { key: 'user', label: 'User', sort: 'user' },
    { key: 'state', label: 'State', sort: 'state' },
    { key: 'protocol', label: 'Protocol' },
    { key: 'ssl', label: 'TLS', render: (c) => (c.ssl ? 'yes' : '') },
    { key: 'client', label: 'Client', render: (c) => { const p = c.client_properties || {}; return [p.product, p.version].filter(Boolean).join(' '); } },
    { key: 'channels', label: 'Channels', sort: 'channels', num: true, render: (c) => count(c.channels) },
    { key: 'recv', label: 'From client', num: true, sort: 'recv_oct_details.rate', render: (c) => (c.recv_oct_details ? `${bytes(c.recv_oct_details.rate)}/s` : '—') },
    { key: 'send', label: 'To client', num: true, sort: 'send_oct_details.rate', render: (c) => (c.send_oct_details ? `${bytes(c.send_oct_details.rate)}/s` : '—') },
    { key: 'close', label: '', render: (c) => actionButton('Close', `Close connection ${c.name}?`, async () => {
      await api.del(`/connections/${api.enc(c.name)}`, { 'X-Reason': 'Closed via the Warren dashboard' });
      flash(`Connection ${c.name} closed.`);
      list.refresh();
    }, 'small danger') },
  ];
  list = pagedList({ id: 'connections', path, columns, empty: 'No connections.' });
  main.append(h('h1', {}, 'Connections'), list.element);
  await every(5000, list.refresh);
}
