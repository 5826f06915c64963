// DOM helpers shared by the pages: element building (text only, never HTML from data), tables,
// notes, forms, a flash line, and the paged server-side listing used for queues, exchanges,
// connections and channels.

import { ApiError, get } from './api.js';

/** Creates an element: h('a', {href: '#/'}, 'text', child, ...). Text is always text. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A short message: kind is 'note', 'error' or 'ok'. */
export const note = (text, kind = 'note') => h('p', { class: kind }, text);

/** A note for an endpoint this broker does not offer (yet). */
export function missingNote(path) {
  return note(`This broker does not offer ${path} (it answered 404): nothing to show.`, 'note missing');
}

/** Shows a passing message under the header. */
export function flash(text, kind = 'ok') {
  const box = document.getElementById('flash');
  box.replaceChildren(h('p', { class: kind }, text));
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => box.replaceChildren(), 6000);
}

/** Reports an error from an action in the flash line. */
export function flashError(error) {
  flash(error instanceof ApiError ? `${error.status}: ${error.message}` : String(error), 'error');
}

/** A section with a heading. */
export const section = (title, ...children) => h('section', {}, h('h2', {}, title), ...children);

/**
 * A table. columns: [{key, label, render?(row), sort?: apiSortKey, num?: bool}].
 * sort: {key, reverse}, onSort(key) makes sortable headers clickable.
 */
export function table({ columns, rows, empty = 'Nothing here.', sort, onSort, id }) {
  const head = h('tr', {}, columns.map((c) => {
    const sortable = onSort && c.sort;
    const mark = sort && sortable && sort.key === c.sort ? (sort.reverse ? ' ▼' : ' ▲') : '';
    return h('th', { class: [c.num ? 'num' : '', sortable ? 'sortable' : ''].join(' ').trim() || undefined,
      dataset: sortable ? { sort: c.sort } : undefined,
      onclick: sortable ? () => onSort(c.sort) : undefined }, c.label + mark);
  }));
  const body = rows.length === 0
    ? [h('tr', {}, h('td', { colSpan: columns.length, class: 'empty' }, empty))]
    : rows.map((r) => h('tr', {}, columns.map((c) =>
      h('td', { class: c.num ? 'num' : undefined }, c.render ? c.render(r) : value(r, c.key)))));
  return h('table', { id }, h('thead', {}, head), h('tbody', {}, body));
}

/** Label-value pairs as a definition list; each value carries data-field (its label, lower case). */
export function details(pairs) {
  return h('dl', { class: 'totals' },
    pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { field: k.toLowerCase() } }, v)]));
}

/** A dotted path into an object (`message_stats.publish_details.rate`). */
export function value(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/** A labelled form field. */
export function field(label, input) {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}

/** A form whose submit calls `action(formData)`; errors go to the flash line. */
export function form(id, fields, submitLabel, action) {
  const f = h('form', { id, class: 'inline-form' }, fields, h('button', { type: 'submit' }, submitLabel));
  f.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = f.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await action(new FormData(f), f);
    } catch (error) {
      flashError(error);
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

/** A <select> with options given as strings or [value, label] pairs. */
export function select(name, options, selected) {
  return h('select', { name }, options.map((o) => {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === selected }, label);
  }));
}

/** A button that asks before it acts, then runs `action`; errors go to the flash line. */
export function actionButton(label, question, action, cls = 'danger') {
  return h('button', {
    type: 'button', class: cls, onclick: async (event) => {
      if (question && !window.confirm(question)) return;
      event.target.disabled = true;
      try { await action(); } catch (error) { flashError(error); } finally { event.target.disabled = false; }
    },
  }, label);
}

/** Parses a JSON object typed by the user ('' is {}); throws a readable error. */
export function parseJsonObject(text, what) {
  if (!text.trim()) return {};
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`${what} is not valid JSON: ${e.message}`); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what} must be a JSON object`);
  return v;
}

/**
 * A listing paged, sorted and filtered by the server (RabbitMQ's page, page_size, name,
 * use_regex, sort, sort_reverse, columns): never more than one page is fetched, so it stays
 * usable with 10,000 queues. Returns {element, refresh}.
 */
export function pagedList({ id, path, columns, fields, empty, defaultSort = 'name' }) {
  const state = { page: 1, pageSize: 100, name: '', regex: false, sort: defaultSort, reverse: false };
  const filter = h('input', { type: 'search', placeholder: 'Filter by name', class: 'filter', 'aria-label': 'Filter' });
  const regex = h('input', { type: 'checkbox' });
  const sizes = select('page_size', ['25', '100', '500'], '100');
  const summary = h('span', { class: 'summary' });
  const prev = h('button', { type: 'button', class: 'prev' }, '‹ Previous');
  const next = h('button', { type: 'button', class: 'next' }, 'Next ›');
  const holder = h('div', { class: 'table-holder' });
  const element = h('div', { class: 'paged', id },
    h('div', { class: 'controls' }, filter, h('label', {}, regex, ' Regex'),
      h('label', {}, 'Page size ', sizes), prev, summary, next),
    holder);
  let timer;
  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.name = filter.value; state.page = 1; refresh(); }, 300);
  });
  regex.addEventListener('change', () => { state.regex = regex.checked; state.page = 1; refresh(); });
  sizes.addEventListener('change', () => { state.pageSize = Number(sizes.value); state.page = 1; refresh(); });
  prev.addEventListener('click', () => { if (state.page > 1) { state.page -= 1; refresh(); } });
  next.addEventListener('click', () => { state.page += 1; refresh(); });
  const onSort = (key) => {
    if (state.sort === key) state.reverse = !state.reverse; else { state.sort = key; state.reverse = false; }
    refresh();
  };
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const q = new URLSearchParams({ page: state.page, page_size: state.pageSize, name: state.name,
      use_regex: state.regex, pagination: true, sort: state.sort, sort_reverse: state.reverse });
    if (fields) q.set('columns', fields.join(','));
    let answer;
    try {
      answer = await get(`${path()}?${q}`);
    } catch (error) {
      if (mine !== seq) return;
      if (error instanceof ApiError && error.status === 400 && state.page > 1) {
        state.page = 1; // the filter shrank the listing under the current page
        refresh();
        return;
      }
      summary.textContent = '';
      holder.replaceChildren(error.missing ? missingNote(`/api${path()}`) : note(error.message, 'error'),
        table({ columns, rows: [], empty: 'Nothing to show.' }));
      prev.disabled = next.disabled = true;
      return;
    }
    if (mine !== seq) return;
    const items = Array.isArray(answer) ? answer : answer.items || [];
    const pageCount = answer.page_count || 1;
    state.page = Math.min(state.page, pageCount);
    summary.textContent = Array.isArray(answer) ? `${items.length} items`
      : `Page ${answer.page} of ${pageCount} · ${answer.filtered_count} shown of ${answer.total_count}`;
    prev.disabled = state.page <= 1;
    next.disabled = state.page >= pageCount;
    holder.replaceChildren(table({ columns, rows: items, empty, sort: { key: state.sort, reverse: state.reverse }, onSort }));
  }
  return { element, refresh };
}
