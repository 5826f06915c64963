// Number, rate, size and time formatting for the pages.

const numberFormat = new Intl.NumberFormat('en');

/** A count: 12,345 (or — when unknown). */
export const count = (n) => (typeof n === 'number' ? numberFormat.format(n) : '—');

/** A rate per second: 12.3/s. */
export function rate(n) {
  if (typeof n !== 'number') return '—';
  return `${n >= 100 ? Math.round(n) : n.toFixed(1)}/s`;
}

/** A size in bytes: 1.5 GiB. */
export function bytes(n) {
  if (typeof n !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** A duration in milliseconds: 3d 4h, 5m 2s. */
export function duration(ms) {
  if (typeof ms !== 'number') return '—';
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** The rate at `path`_details.rate of a stats object (message_stats.publish → its rate). */
export function statRate(stats, name) {
  const d = stats && stats[`${name}_details`];
  return d && typeof d.rate === 'number' ? d.rate : undefined;
}

/** A JSON value shown compactly ({} shown as empty). */
export function json(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object' && Object.keys(v).length === 0) return '';
  return JSON.stringify(v);
}

/** Yes/no for booleans. */
export const yesNo = (b) => (b === undefined ? '—' : b ? 'yes' : 'no');
