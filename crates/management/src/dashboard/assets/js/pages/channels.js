// Channels: the listing paged by the server: mode, prefetch, unacked, unconfirmed, rates. The
// columns are shared with a connection's page.

import * as api from '../api.js';
import { h, pagedList } from '../ui.js';
import { count, rate, statRate } from '../format.js';

export function mode(c) {
  return [c.confirm ? 'C' : '', c.transactional ? 'T' : ''].join('');
}

export const channelLink = (c) => h('a', { href: `#/channels/${api.enc(c.name)}` }, c.name);

/** The columns of a channel table; `withOwner` adds the vhost and user. */
export function channelColumns(withOwner = false) {
  return [
    { key: 'name', label: 'Channel', sort: 'name', render: channelLink },
    withOwner ? { key: 'vhost', label: 'Virtual host', sort: 'vhost' } : null,
    withOwner ? { key: 'user', label: 'User', sort: 'user' } : null,
    { key: 'mode', label: 'Mode', render: mode },
    { key: 'state', label: 'State', sort: 'state' },
    { key: 'consumer_count', label: 'Consumers', sort: 'consumer_count', num: true, render: (c) => count(c.consumer_count) },
    { key: 'prefetch_count', label: 'Prefetch', num: true, render: (c) => count(c.prefetch_count) },
    { key: 'messages_unacknowledged', label: 'Unacked', sort: 'messages_unacknowledged', num: true, render: (c) => count(c.messages_unacknowledged) },
    { key: 'messages_unconfirmed', label: 'Unconfirmed', num: true, render: (c) => count(c.messages_unconfirmed) },
    { key: 'publish', label: 'Publish', num: true, sort: 'message_stats.publish_details.rate', render: (c) => rate(statRate(c.message_stats, 'publish')) },
    { key: 'deliver', label: 'Deliver / get', num: true, sort: 'message_stats.deliver_get_details.rate', render: (c) => rate(statRate(c.message_stats, 'deliver_get')) },
    { key: 'ack', label: 'Ack', num: true, sort: 'message_stats.ack_details.rate', render: (c) => rate(statRate(c.message_stats, 'ack')) },
  ].filter(Boolean);
}

export default async function render({ main, vhost, every }) {
  const path = () => (vhost ? `/vhosts/${api.enc(vhost)}/channels` : '/channels');
  const list = pagedList({ id: 'channels', path, columns: channelColumns(true), empty: 'No channels.' });
  main.append(h('h1', {}, 'Channels'), h('p', { class: 'note' }, 'Mode: C = confirms, T = transactional.'), list.element);
  await every(5000, list.refresh);
}
