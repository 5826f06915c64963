// One exchange: its details, bindings from and to it, add a binding, publish a message, delete.

import * as api from '../api.js';
import { h, note, section, field, form, select, flash, actionButton, missingNote, parseJsonObject } from '../ui.js';
import { rate, statRate, json, yesNo } from '../format.js';
import { bindingsTable } from './queue.js';

export default async function render({ main, params, every, current }) {
  const [vhost, name] = params;
  const base = `/exchanges/${api.enc(vhost)}/${api.enc(name || 'amq.default')}`;
  const isDefault = name === '' || name === 'amq.default';
  const summary = h('div', { id: 'exchange-summary' });
  const source = h('div', { id: 'bindings-source' });
  const destination = h('div', { id: 'bindings-destination' });

  const refresh = async () => {
    try {
      const e = await api.get(base);
      if (!current()) return;
      summary.replaceChildren(h('dl', { class: 'totals' },
        [['Type', e.type], ['Durable', yesNo(e.durable)], ['Auto delete', yesNo(e.auto_delete)],
          ['Internal', yesNo(e.internal)], ['Policy', e.policy || ''], ['Arguments', json(e.arguments)],
          ['Message rate in', rate(statRate(e.message_stats, 'publish_in'))],
          ['Message rate out', rate(statRate(e.message_stats, 'publish_out'))]]
          .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
    } catch (error) {
      if (current()) summary.replaceChildren(error.missing ? note(`Exchange ${name} not found in ${vhost} (or this broker has no /api/exchanges).`, 'note missing') : note(error.message, 'error'));
    }
  };
  const refreshBindings = async () => {
    for (const [holder, which] of [[source, 'source'], [destination, 'destination']]) {
      try {
        const rows = await api.get(`${base}/bindings/${which}`);
        if (current()) holder.replaceChildren(bindingsTable(rows, vhost, refreshBindings, `bindings-${which}-table`));
      } catch (error) {
        if (current()) holder.replaceChildren(error.missing ? missingNote(`/api${base}/bindings/${which}`) : note(error.message, 'error'));
      }
    }
  };

  const bind = form('bind-exchange', [
    field('To', select('kind', [['q', 'Queue'], ['e', 'Exchange']], 'q')),
    field('Name', h('input', { name: 'destination', required: true })),
    field('Routing key', h('input', { name: 'routing_key' })),
    field('Arguments (JSON)', h('input', { name: 'arguments' })),
  ], 'Bind', async (data) => {
    await api.post(`/bindings/${api.enc(vhost)}/e/${api.enc(name)}/${data.get('kind')}/${api.enc(data.get('destination'))}`,
      { routing_key: data.get('routing_key'), arguments: parseJsonObject(data.get('arguments'), 'Arguments') });
    flash('Binding added.');
    refreshBindings();
  });

  const publish = form('publish-message', [
    field('Routing key', h('input', { name: 'routing_key' })),
    field('Delivery mode', select('delivery_mode', [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '2')),
    field('Headers (JSON)', h('input', { name: 'headers' })),
    field('Properties (JSON)', h('input', { name: 'properties' })),
    field('Payload', h('textarea', { name: 'payload', rows: 3 })),
  ], 'Publish message', async (data) => {
    const properties = parseJsonObject(data.get('properties'), 'Properties');
    properties.delivery_mode = Number(data.get('delivery_mode'));
    const headers = parseJsonObject(data.get('headers'), 'Headers');
    if (Object.keys(headers).length) properties.headers = headers;
    const answer = await api.post(`${base}/publish`,
      { properties, routing_key: data.get('routing_key'), payload: data.get('payload'), payload_encoding: 'string' });
    flash(answer && answer.routed === false ? 'Message published, but not routed.' : 'Message published and routed.');
  });

  const remove = isDefault || name.startsWith('amq.') ? note('Built-in exchanges cannot be deleted.')
    : actionButton('Delete exchange', `Delete exchange ${name}?`, async () => {
      await api.del(base);
      flash(`Exchange ${name} deleted.`);
      location.hash = '#/exchanges';
    });

  main.append(h('h1', {}, `Exchange ${isDefault ? '(AMQP default)' : name}`), h('p', { class: 'identity' }, `Virtual host ${vhost}`),
    section('Details', summary),
    section('Bindings from this exchange', source, isDefault ? null : bind),
    section('Bindings to this exchange', destination),
    section('Publish message', publish), section('Delete', remove));
  await Promise.all([every(5000, refresh), refreshBindings()]);
}
