// One queue: its numbers, consumers and bindings; get messages (with an ack mode), publish to
// it through the default exchange, add and remove bindings, purge, delete.

import * as api from '../api.js';
import { h, note, section, table, field, form, select, flash, actionButton, missingNote, parseJsonObject } from '../ui.js';
import { count, rate, statRate, json, yesNo } from '../format.js';

const ACK_MODES = [
  ['ack_requeue_true', 'Nack message requeue true'],
  ['ack_requeue_false', 'Automatic ack'],
  ['reject_requeue_true', 'Reject requeue true'],
  ['reject_requeue_false', 'Reject requeue false'],
];

export function bindingsTable(rows, vhost, onChange, id) {
  return table({
    id, rows, empty: 'No bindings.', columns: [
      { key: 'source', label: 'From', render: (b) => (b.source === '' ? '(AMQP default)' : h('a', { href: `#/exchanges/${api.enc(vhost)}/${api.enc(b.source)}` }, b.source)) },
      { key: 'destination', label: 'To', render: (b) => h('a', { href: `#/${b.destination_type === 'queue' ? 'queues' : 'exchanges'}/${api.enc(vhost)}/${api.enc(b.destination)}` }, b.destination) },
      { key: 'routing_key', label: 'Routing key' },
      { key: 'arguments', label: 'Arguments', render: (b) => json(b.arguments) },
      { key: 'actions', label: '', render: (b) => (b.source === '' ? '' : actionButton('Unbind', null, async () => {
        const kind = b.destination_type === 'queue' ? 'q' : 'e';
        await api.del(`/bindings/${api.enc(vhost)}/e/${api.enc(b.source)}/${kind}/${api.enc(b.destination)}/${api.enc(b.properties_key)}`);
        flash('Binding removed.');
        onChange();
      }, 'small')) },
    ],
  });
}

function messageView(m, i) {
  return h('div', { class: 'message-view' },
    h('h4', {}, `Message ${i + 1}`),
    h('dl', {},
      h('dt', {}, 'Exchange'), h('dd', {}, m.exchange === '' ? '(AMQP default)' : m.exchange),
      h('dt', {}, 'Routing key'), h('dd', {}, m.routing_key),
      h('dt', {}, 'Redelivered'), h('dd', {}, yesNo(m.redelivered)),
      h('dt', {}, 'Properties'), h('dd', {}, json(m.properties)),
      h('dt', {}, 'Payload'), h('dd', {}, `${m.payload_bytes} bytes, encoding ${m.payload_encoding}`)),
    h('pre', { class: 'payload' }, m.payload));
}

export default async function render({ main, params, every, current }) {
  const [vhost, name] = params;
  const base = `/queues/${api.enc(vhost)}/${api.enc(name)}`;
  const summary = h('div', { id: 'queue-summary' });
  const consumers = h('div', { id: 'queue-consumers' });
  const bindings = h('div', { id: 'queue-bindings' });
  const got = h('div', { id: 'got-messages' });

  const refresh = async () => {
    let q;
    try {
      q = await api.get(base);
    } catch (error) {
      if (!current()) return;
      summary.replaceChildren(error.missing ? note(`Queue ${name} not found in ${vhost} (or this broker has no /api/queues).`, 'note missing') : note(error.message, 'error'));
      consumers.replaceChildren(table({ columns: [{ key: 'consumer_tag', label: 'Consumer tag' }], rows: [] }));
      return;
    }
    if (!current()) return;
    const ms = q.message_stats;
    summary.replaceChildren(h('dl', { class: 'totals' },
      [['Type', q.type || 'classic'], ['State', q.state || ''], ['Durable', yesNo(q.durable)],
        ['Auto delete', yesNo(q.auto_delete)], ['Exclusive', yesNo(q.exclusive)], ['Policy', q.policy || ''],
        ['Effective policy', json(q.effective_policy_definition)], ['Arguments', json(q.arguments)],
        ['Ready', count(q.messages_ready)], ['Unacked', count(q.messages_unacknowledged)], ['Total', count(q.messages)],
        ['Consumers', count(q.consumers)], ['Incoming', rate(statRate(ms, 'publish'))],
        ['Deliver / get', rate(statRate(ms, 'deliver_get'))], ['Ack', rate(statRate(ms, 'ack'))]]
        .flatMap(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { field: k.toLowerCase() } }, v)])));
    consumers.replaceChildren(table({
      rows: q.consumer_details || [], empty: 'No consumers.', columns: [
        { key: 'consumer_tag', label: 'Consumer tag' },
        { key: 'channel', label: 'Channel', render: (c) => (c.channel_details || {}).name || '' },
        { key: 'ack_required', label: 'Ack required', render: (c) => yesNo(c.ack_required) },
        { key: 'exclusive', label: 'Exclusive', render: (c) => yesNo(c.exclusive) },
        { key: 'prefetch_count', label: 'Prefetch', num: true },
        { key: 'active', label: 'Active', render: (c) => yesNo(c.active) },
        { key: 'arguments', label: 'Arguments', render: (c) => json(c.arguments) },
      ],
    }));
  };

  const refreshBindings = async () => {
    try {
      const rows = await api.get(`${base}/bindings`);
      if (current()) bindings.replaceChildren(bindingsTable(rows, vhost, refreshBindings, 'bindings'));
    } catch (error) {
      if (current()) bindings.replaceChildren(error.missing ? missingNote(`/api${base}/bindings`) : note(error.message, 'error'));
    }
  };

  const bind = form('bind-queue', [
    field('From exchange', h('input', { name: 'exchange', required: true })),
    field('Routing key', h('input', { name: 'routing_key' })),
    field('Arguments (JSON)', h('input', { name: 'arguments' })),
  ], 'Bind', async (data) => {
    await api.post(`/bindings/${api.enc(vhost)}/e/${api.enc(data.get('exchange'))}/q/${api.enc(name)}`,
      { routing_key: data.get('routing_key'), arguments: parseJsonObject(data.get('arguments'), 'Arguments') });
    flash('Binding added.');
    refreshBindings();
  });

  const get = form('get-messages', [
    field('Ack mode', select('ackmode', ACK_MODES, 'ack_requeue_true')),
    field('Encoding', select('encoding', [['auto', 'Auto string / base64'], ['base64', 'base64']], 'auto')),
    field('Messages', h('input', { name: 'count', type: 'number', min: 1, value: '1' })),
  ], 'Get messages', async (data) => {
    const messages = await api.post(`${base}/get`, {
      count: Number(data.get('count')) || 1, ackmode: data.get('ackmode'), encoding: data.get('encoding'), truncate: 50000,
    });
    got.replaceChildren(...(messages.length ? messages.map(messageView) : [note('Queue is empty.')]));
    refresh();
  });

  const publish = form('publish-message', [
    field('Delivery mode', select('delivery_mode', [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '2')),
    field('Headers (JSON)', h('input', { name: 'headers' })),
    field('Properties (JSON)', h('input', { name: 'properties', placeholder: '{"content_type": "text/plain"}' })),
    field('Payload', h('textarea', { name: 'payload', rows: 3 })),
  ], 'Publish message', async (data) => {
    const properties = parseJsonObject(data.get('properties'), 'Properties');
    properties.delivery_mode = Number(data.get('delivery_mode'));
    const headers = parseJsonObject(data.get('headers'), 'Headers');
    if (Object.keys(headers).length) properties.headers = headers;
    const answer = await api.post(`/exchanges/${api.enc(vhost)}/amq.default/publish`,
      { properties, routing_key: name, payload: data.get('payload'), payload_encoding: 'string' });
    flash(answer && answer.routed === false ? 'Message published, but not routed.' : 'Message published.');
    refresh();
  });

  const dangers = h('div', { class: 'actions' },
    actionButton('Purge messages', `Purge every message of ${name}?`, async () => {
      await api.del(`${base}/contents`);
      flash(`Queue ${name} purged.`);
      refresh();
    }),
    actionButton('Delete queue', `Delete queue ${name}?`, async () => {
      await api.del(base);
      flash(`Queue ${name} deleted.`);
      location.hash = '#/queues';
    }));

  main.append(h('h1', {}, `Queue ${name}`), h('p', { class: 'identity' }, `Virtual host ${vhost}`),
    section('Details', summary), section('Consumers', consumers),
    section('Bindings', bindings, bind), section('Publish message', publish),
    section('Get messages', note('Getting messages is a destructive action unless the ack mode requeues them.'), get, got),
    section('Purge or delete', dangers));
  await Promise.all([every(5000, refresh), refreshBindings()]);
}
