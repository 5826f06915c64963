// Queues: one page of the listing at a time, sorted, filtered and paged by the server (never
// the whole list: usable with 10,000 queues), refreshed every 5 s; and a form to add a queue.

import * as api from '../api.js';
import { h, pagedList, field, form, select, flash, section, parseJsonObject } from '../ui.js';
import { count, rate, statRate } from '../format.js';

export const queueLink = (q) => h('a', { href: `#/queues/${api.enc(q.vhost)}/${api.enc(q.name)}` }, q.name);

function features(q) {
  const f = [];
  if (q.durable) f.push('D');
  if (q.auto_delete) f.push('AD');
  if (q.exclusive) f.push('Excl');
  if (q.arguments && Object.keys(q.arguments).length) f.push('Args');
  return h('span', { title: q.arguments ? JSON.stringify(q.arguments) : '' }, f.join(' '));
}

export default async function render({ main, vhost, every }) {
  const path = () => (vhost ? `/queues/${api.enc(vhost)}` : '/queues');
  const columns = [
    { key: 'vhost', label: 'Virtual host', sort: 'vhost' },
    { key: 'name', label: 'Name', sort: 'name', render: queueLink },
    { key: 'type', label: 'Type', render: (q) => q.type || 'classic' },
    { key: 'features', label: 'Features', render: features },
    { key: 'policy', label: 'Policy', sort: 'policy', render: (q) => q.policy || '' },
    { key: 'state', label: 'State', sort: 'state', render: (q) => q.state || '' },
    { key: 'consumers', label: 'Consumers', sort: 'consumers', num: true, render: (q) => count(q.consumers) },
    { key: 'messages_ready', label: 'Ready', sort: 'messages_ready', num: true, render: (q) => count(q.messages_ready) },
    { key: 'messages_unacknowledged', label: 'Unacked', sort: 'messages_unacknowledged', num: true, render: (q) => count(q.messages_unacknowledged) },
    { key: 'messages', label: 'Total', sort: 'messages', num: true, render: (q) => count(q.messages) },
    { key: 'in', label: 'Incoming', sort: 'message_stats.publish_details.rate', num: true, render: (q) => rate(statRate(q.message_stats, 'publish')) },
    { key: 'out', label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', num: true, render: (q) => rate(statRate(q.message_stats, 'deliver_get')) },
    { key: 'ack', label: 'Ack', sort: 'message_stats.ack_details.rate', num: true, render: (q) => rate(statRate(q.message_stats, 'ack')) },
  ];
  const fields = ['name', 'vhost', 'type', 'durable', 'auto_delete', 'exclusive', 'arguments', 'policy', 'state',
    'consumers', 'messages', 'messages_ready', 'messages_unacknowledged',
    'message_stats.publish_details', 'message_stats.deliver_get_details', 'message_stats.ack_details'];
  const list = pagedList({ id: 'queues', path, columns, fields, empty: 'No queues.' });

  const add = form('add-queue', [
    field('Virtual host', h('input', { name: 'vhost', value: vhost || '/', required: true })),
    field('Name', h('input', { name: 'name', required: true })),
    field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
    field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false')),
    field('Arguments (JSON)', h('input', { name: 'arguments', placeholder: '{"x-message-ttl": 60000}' })),
  ], 'Add queue', async (data, f) => {
    const name = data.get('name');
    await api.put(`/queues/${api.enc(data.get('vhost'))}/${api.enc(name)}`, {
      durable: data.get('durable') === 'true', auto_delete: data.get('auto_delete') === 'true',
      arguments: parseJsonObject(data.get('arguments'), 'Arguments'),
    });
    flash(`Queue ${name} declared.`);
    f.querySelector('[name=name]').value = '';
    list.refresh();
  });

  main.append(h('h1', {}, 'Queues', vhost ? ` in ${vhost}` : ''), list.element, section('Add a queue', add));
  await every(5000, list.refresh);
}
