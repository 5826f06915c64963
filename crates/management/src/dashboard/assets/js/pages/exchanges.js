// Exchanges: the listing paged by the server, and a form to add an exchange.

import * as api from '../api.js';
import { h, pagedList, field, form, select, flash, section, parseJsonObject } from '../ui.js';
import { rate, statRate } from '../format.js';

/** The API's name for an exchange in paths: the default exchange is amq.default. */
export const pathName = (name) => (name === '' ? 'amq.default' : name);

export const exchangeLink = (e) =>
  h('a', { href: `#/exchanges/${api.enc(e.vhost)}/${api.enc(pathName(e.name))}` }, e.name === '' ? '(AMQP default)' : e.name);

function features(e) {
  const f = [];
  if (e.durable) f.push('D');
  if (e.auto_delete) f.push('AD');
  if (e.internal) f.push('I');
  if (e.arguments && Object.keys(e.arguments).length) f.push('Args');
  return f.join(' ');
}

export default async function render({ main, vhost, every }) {
  const path = () => (vhost ? `/exchanges/${api.enc(vhost)}` : '/exchanges');
  const columns = [
    { key: 'vhost', label: 'Virtual host', sort: 'vhost' },
    { key: 'name', label: 'Name', sort: 'name', render: exchangeLink },
    { key: 'type', label: 'Type', sort: 'type' },
    { key: 'features', label: 'Features', render: features },
    { key: 'policy', label: 'Policy', render: (e) => e.policy || '' },
    { key: 'in', label: 'Message rate in', num: true, sort: 'message_stats.publish_in_details.rate', render: (e) => rate(statRate(e.message_stats, 'publish_in')) },
    { key: 'out', label: 'Message rate out', num: true, sort: 'message_stats.publish_out_details.rate', render: (e) => rate(statRate(e.message_stats, 'publish_out')) },
  ];
  const fields = ['name', 'vhost', 'type', 'durable', 'auto_delete', 'internal', 'arguments', 'policy',
    'message_stats.publish_in_details', 'message_stats.publish_out_details'];
  const list = pagedList({ id: 'exchanges', path, columns, fields, empty: 'No exchanges.' });
  const add = form('add-exchange', [
    field('Virtual host', h('input', { name: 'vhost', value: vhost || '/', required: true })),
    field('Name', h('input', { name: 'name', required: true })),
    field('Type', select('type', ['direct', 'fanout', 'headers', 'topic', 'x-consistent-hash', 'x-delayed-message'], 'direct')),
    field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
    field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false')),
    field('Internal', select('internal', [['false', 'No'], ['true', 'Yes']], 'false')),
    field('Arguments (JSON)', h('input', { name: 'arguments' })),
  ], 'Add exchange', async (data, f) => {
    const name = data.get('name');
    await api.put(`/exchanges/${api.enc(data.get('vhost'))}/${api.enc(name)}`, {
      type: data.get('type'), durable: data.get('durable') === 'true', auto_delete: data.get('auto_delete') === 'true',
      internal: data.get('internal') === 'true', arguments: parseJsonObject(data.get('arguments'), 'Arguments'),
    });
    flash(`Exchange ${name} declared.`);
    f.querySelector('[name=name]').value = '';
    list.refresh();
  });
  main.append(h('h1', {}, 'Exchanges', vhost ? ` in ${vhost}` : ''), list.element, section('Add an exchange', add));
  await every(5000, list.refresh);
}
