// Overview: live charts of message rates (publish, deliver, ack, confirm) and queued messages
// from /api/overview, polled every 5 s; totals; the node's memory, disk, file descriptors and
// alarms from /api/nodes; the listeners.

import * as api from '../api.js';
import { can, needs } from '../roles.js';
import { LineChart } from '../chart.js';
import { h, note, section, table } from '../ui.js';
import { bytes, count, duration, rate, statRate } from '../format.js';

export const POLL_MS = 5000;

// `limit` is a ceiling (memory, descriptors: "X of Y") or, with `floor`, the least there must
// be (free disk: "X, limit Y").
function gauge(label, used, limit, format, alarm, floor = false) {
  const bound = typeof limit === 'number' ? `${floor ? ', limit' : ' of'} ${format(limit)}` : '';
  const text = typeof used === 'number' ? `${format(used)}${bound}` : 'not reported';
  return h('div', { class: `gauge${alarm ? ' alarm' : ''}` }, h('span', { class: 'label' }, label),
    h('span', { class: 'value' }, text), alarm ? h('span', { class: 'badge' }, 'alarm') : null);
}

function nodeBox(node) {
  const alarms = [];
  if (node.mem_alarm) alarms.push('memory');
  if (node.disk_free_alarm) alarms.push('disk');
  return h('div', { class: 'node' },
    h('h3', {}, node.name, node.running === false ? ' (not running)' : ''),
    h('div', { class: 'gauges' },
      gauge('Memory', node.mem_used, node.mem_limit, bytes, node.mem_alarm),
      gauge('Disk free', node.disk_free, node.disk_free_limit, bytes, node.disk_free_alarm, true),
      gauge('File descriptors', node.fd_used, node.fd_total, count),
      gauge('Sockets', node.sockets_used, node.sockets_total, count),
      gauge('Uptime', node.uptime, undefined, duration)),
    h('p', { class: alarms.length ? 'error alarms' : 'ok alarms' },
      alarms.length ? `Resource alarms: ${alarms.join(', ')} (publishers are blocked)` : 'No resource alarms'));
}

export default async function render({ main, every, current }) {
  const rates = new LineChart({
    id: 'chart-rates', title: 'Message rates', format: rate, series: [
      { key: 'publish', label: 'Publish', color: '#c0392b' },
      { key: 'deliver', label: 'Deliver', color: '#2874a6' },
      { key: 'ack', label: 'Ack', color: '#239b56' },
      { key: 'confirm', label: 'Confirm', color: '#b9770e' },
    ],
  });
  const queued = new LineChart({
    id: 'chart-queued', title: 'Queued messages', format: count, series: [
      { key: 'ready', label: 'Ready', color: '#b9770e' },
      { key: 'unacked', label: 'Unacked', color: '#2874a6' },
      { key: 'total', label: 'Total', color: '#555' },
    ],
  });
  const ratesNote = h('div');
  const totals = h('div', { id: 'totals' });
  const nodes = h('div', { id: 'nodes' });
  const listeners = h('div', { id: 'listeners' });
  const identity = h('p', { class: 'identity' });
  main.append(h('h1', {}, 'Overview'), identity,
    h('div', { class: 'charts' }, rates.element, queued.element), ratesNote,
    section('Totals', totals), section('Nodes', nodes), section('Listeners', listeners));

  const refreshOverview = async () => {
    let o;
    try {
      o = await api.get('/overview');
    } catch (error) {
      if (current()) totals.replaceChildren(note(error.message, 'error'));
      return;
    }
    if (!current()) return;
    identity.textContent = `${o.product_name || 'Warren'} ${o.product_version || ''} · node ${o.node || ''} · cluster ${o.cluster_name || ''}`;
    const ms = o.message_stats || {};
    const confirm = statRate(ms, 'confirm');
    const reported = ['publish', 'deliver_get', 'ack'].some((k) => statRate(ms, k) !== undefined);
    const now = Date.now();
    rates.push(now, {
      publish: statRate(ms, 'publish') ?? 0,
      deliver: statRate(ms, 'deliver_get') ?? statRate(ms, 'deliver') ?? 0,
      ack: statRate(ms, 'ack') ?? 0,
      confirm: confirm ?? 0,
    });
    ratesNote.replaceChildren(reported ? '' : note('This broker reports no message rates yet (message_stats is empty): rates show as 0.', 'note missing'));
    const qt = o.queue_totals || {};
    queued.push(now, { ready: qt.messages_ready, unacked: qt.messages_unacknowledged, total: qt.messages });
    const ot = o.object_totals || {};
    totals.replaceChildren(h('dl', { class: 'totals' },
      ['connections', 'channels', 'exchanges', 'queues', 'consumers'].flatMap((k) => [
        h('dt', {}, k[0].toUpperCase() + k.slice(1)), h('dd', { dataset: { total: k } }, count(ot[k]))]),
      h('dt', {}, 'Messages'), h('dd', { dataset: { total: 'messages' } }, count(qt.messages))));
    listeners.replaceChildren(table({
      columns: [{ key: 'protocol', label: 'Protocol' }, { key: 'ip_address', label: 'Bound to' }, { key: 'port', label: 'Port', num: true }],
      rows: o.listeners || [], empty: 'No listeners reported.',
    }));
  };

  const refreshNodes = async () => {
    if (!can('monitoring')) {
      nodes.replaceChildren(note(needs('monitoring', 'Node details'), 'note needs-tag'));
      return;
    }
    try {
      const list = await api.get('/nodes');
      if (current()) nodes.replaceChildren(...(list.length ? list.map(nodeBox) : [note('No nodes reported.')]));
    } catch (error) {
      if (!current()) return;
      nodes.replaceChildren(error.status === 401
        ? note('Node details need the monitoring or administrator tag.')
        : error.missing ? note('This broker does not offer /api/nodes.', 'note missing') : note(error.message, 'error'));
    }
  };

  await every(POLL_MS, () => Promise.all([refreshOverview(), refreshNodes()]));
}
