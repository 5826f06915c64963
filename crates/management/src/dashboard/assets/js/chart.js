// A small line chart on a <canvas>, written for the overview: a few series sampled every poll,
// the last `capacity` samples drawn against a "nice" y scale, with a legend holding each
// series' latest value (data-series attributes let tests read them).

import { h } from './ui.js';

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export class LineChart {
  /** series: [{key, label, color}], format: value -> text for the legend and axis. */
  constructor({ id, title, series, format, capacity = 60 }) {
    this.series = series;
    this.format = format;
    this.capacity = capacity;
    this.samples = []; // {t, values: {key: number}}
    this.canvas = h('canvas', { width: 640, height: 200, class: 'chart', 'aria-label': title });
    this.legend = h('ul', { class: 'legend' }, series.map((s) => {
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = s.color;
      return h('li', {}, swatch, `${s.label} `, h('strong', { dataset: { series: s.key } }, '—'));
    }));
    this.element = h('figure', { class: 'chart-box', id }, h('figcaption', {}, title), this.canvas, this.legend);
  }

  /** Adds one sample (values keyed by series key; missing ones count as absent). */
  push(t, values) {
    this.samples.push({ t, values });
    if (this.samples.length > this.capacity) this.samples.shift();
    for (const s of this.series) {
      const v = values[s.key];
      this.legend.querySelector(`[data-series="${s.key}"]`).textContent = typeof v === 'number' ? this.format(v) : '—';
    }
    this.element.dataset.samples = String(this.samples.length);
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = c.clientWidth || 640;
    const height = c.clientHeight || 200;
    if (c.width !== Math.round(width * ratio)) { c.width = Math.round(width * ratio); c.height = Math.round(height * ratio); }
    const g = c.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 64; const right = 8; const top = 8; const bottom = 22;
    const w = width - left - right; const hgt = height - top - bottom;
    let max = 0;
    for (const s of this.samples) for (const k of this.series) max = Math.max(max, s.values[k.key] || 0);
    max = niceMax(max);
    g.font = '11px sans-serif';
    g.fillStyle = '#666';
    g.strokeStyle = '#e3e3e3';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i += 1) {
      const y = top + hgt - (hgt * i) / 4;
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + w, y + 0.5); g.stroke();
      g.fillText(this.format((max * i) / 4), left - 6, y);
    }
    const n = this.samples.length;
    if (n === 0) return;
    const t0 = this.samples[0].t; const t1 = this.samples[n - 1].t;
    const span = Math.max(t1 - t0, 1);
    const x = (t) => left + (n === 1 ? w : ((t - t0) / span) * w);
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (const t of [t0, t1]) {
      g.fillText(new Date(t).toLocaleTimeString(), Math.min(Math.max(x(t), left + 30), left + w - 30), top + hgt + 6);
    }
    g.lineWidth = 2;
    for (const s of this.series) {
      g.strokeStyle = s.color;
      g.beginPath();
      let started = false;
      for (const sample of this.samples) {
        const v = sample.values[s.key];
        if (typeof v !== 'number') { started = false; continue; }
        const y = top + hgt - (v / max) * hgt;
        if (started) g.lineTo(x(sample.t), y); else { g.moveTo(x(sample.t), y); started = true; }
      }
      g.stroke();
    }
  }
}
