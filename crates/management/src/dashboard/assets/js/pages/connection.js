// One connection: its details, the client's properties, its channels, and a button that closes
// it (DELETE /api/connections/{name}, with the reason typed in X-Reason).

import * as api from '../api.js';
import { h, note, section, table, field, form, flash, details } from '../ui.js';
import { bytes, count, yesNo } from '../format.js';
import { channelColumns } from './channels.js';

/** A client property's value: nested tables (capabilities) as nested lists. */
function propertyValue(v) {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    return h('dl', { class: 'props' }, Object.entries(v).flatMap(([k, x]) => [h('dt', {}, k), h('dd', {}, propertyValue(x))]));
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const perSecond = (d) => (d ? `${bytes(d.rate)}/s` : '—');
const endpoint = (host, port) => (host ? `${host}:${port}` : '—');

export default async function render({ main, params, every, current }) {
  const [name] = params;
  const base = `/connections/${api.enc(name)}`;
  const summary = h('div', { id: 'connection-summary' });
  const properties = h('div', { id: 'client-properties' });
  const channels = h('div', { id: 'connection-channels' });
  let gone = false;

  const refresh = async () => {
    if (gone) return;
    let c;
    try {
      c = await api.get(base);
    } catch (error) {
      if (!current()) return;
      gone = error.missing;
      summary.replaceChildren(error.missing ? note(`There is no connection ${name} (it may have closed).`, 'note missing') : note(error.message, 'error'));
      return;
    }
    if (!current()) return;
    summary.replaceChildren(details([
      ['User', c.user], ['Virtual host', c.vhost], ['State', c.state], ['Protocol', c.protocol],
      ['Client-provided name', c.user_provided_name || ''], ['Peer', endpoint(c.peer_host, c.peer_port)],
      ['Local', endpoint(c.host, c.port)], ['TLS', yesNo(c.ssl)], ['Authentication', c.auth_mechanism || '—'],
      ['Channels', count(c.channels)], ['Channel max', count(c.channel_max)], ['Frame max', count(c.frame_max)],
      ['Heartbeat', typeof c.timeout === 'number' ? `${c.timeout}s` : '—'],
      ['Connected at', c.connected_at ? new Date(c.connected_at).toLocaleString() : '—'],
      ['From client', perSecond(c.recv_oct_details)], ['To client', perSecond(c.send_oct_details)],
    ]));
    const props = Object.entries(c.client_properties || {}).map(([key, value]) => ({ key, value }));
    properties.replaceChildren(table({
      id: 'client-properties-table', rows: props, empty: 'The client sent no properties.',
      columns: [{ key: 'key', label: 'Property' }, { key: 'value', label: 'Value', render: (p) => propertyValue(p.value) }],
    }));
    try {
      const rows = await api.get(`${base}/channels`);
      if (current()) channels.replaceChildren(table({ id: 'connection-channels-table', rows, columns: channelColumns(), empty: 'No channels.' }));
    } catch (error) {
      if (current()) channels.replaceChildren(note(error.message, 'error'));
    }
  };

  const close = form('close-connection', [
    field('Reason', h('input', { name: 'reason', value: 'Closed via the Warren dashboard', size: 40 })),
  ], 'Force close', async (data) => {
    if (!window.confirm(`Close connection ${name}?`)) return;
    await api.del(base, { 'X-Reason': data.get('reason') });
    flash(`Connection ${name} closed.`);
    location.hash = '#/connections';
  });
  close.querySelector('button[type=submit]').classList.add('danger');

  main.append(h('h1', {}, `Connection ${name}`), section('Details', summary), section('Client properties', properties),
    section('Channels', channels), section('Close this connection', close));
  await every(5000, refresh);
}
