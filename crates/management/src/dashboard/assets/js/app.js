// The dashboard's shell: hash routes (#/queues/%2F/orders, as RabbitMQ's UI), the login gate,
// the header (user, virtual host filter, log out, the pages the user's tags allow), and a
// page's timers, which stop when the page is left. Each page lives in pages/<name>.js and
// exports render(ctx).

import * as api from './api.js';
import { can, needs } from './roles.js';
import { h, note } from './ui.js';
import login from './pages/login.js';
import overview from './pages/overview.js';
import queues from './pages/queues.js';
import queue from './pages/queue.js';
import exchanges from './pages/exchanges.js';
import exchange from './pages/exchange.js';
import connections from './pages/connections.js';
import connection from './pages/connection.js';
import channels from './pages/channels.js';
import channel from './pages/channel.js';
import users from './pages/users.js';
import user from './pages/user.js';
import vhosts from './pages/vhosts.js';
import vhost from './pages/vhost.js';
import policies from './pages/policies.js';
import limits from './pages/limits.js';
import definitions from './pages/definitions.js';

// [pattern, page, nav entry, title, tag needed]; groups are path segments, percent-decoded.
const routes = [
  [/^\/?$/, overview, 'overview'],
  [/^\/queues$/, queues, 'queues'],
  [/^\/queues\/([^/]+)\/([^/]+)$/, queue, 'queues'],
  [/^\/exchanges$/, exchanges, 'exchanges'],
  [/^\/exchanges\/([^/]+)\/([^/]*)$/, exchange, 'exchanges'],
  [/^\/connections$/, connections, 'connections'],
  [/^\/connections\/([^/]+)$/, connection, 'connections'],
  [/^\/channels$/, channels, 'channels'],
  [/^\/channels\/([^/]+)$/, channel, 'channels'],
  [/^\/users$/, users, 'users', 'Users', 'administrator'],
  [/^\/users\/([^/]+)$/, user, 'users', 'User', 'administrator'],
  [/^\/vhosts$/, vhosts, 'vhosts', 'Virtual hosts', 'administrator'],
  [/^\/vhosts\/([^/]+)$/, vhost, 'vhosts', 'Virtual host', 'administrator'],
  [/^\/policies$/, policies, 'policies'],
  [/^\/limits$/, limits, 'limits'],
  [/^\/definitions$/, definitions, 'definitions', 'Definitions', 'administrator'],
];

const VHOST_KEY = 'warren.vhost';
let timers = [];
let generation = 0;

function stopTimers() {
  for (const t of timers) clearInterval(t);
  timers = [];
}

/** The selected virtual host ('' for all). */
export const currentVhost = () => sessionStorage.getItem(VHOST_KEY) || '';

async function showHeader() {
  document.getElementById('nav').hidden = false;
  document.getElementById('session').hidden = false;
  document.getElementById('whoami').textContent = api.userName();
  for (const a of document.querySelectorAll('#nav a')) a.hidden = !can(a.dataset.role);
  const select = document.getElementById('vhost-filter');
  try {
    const list = await api.get('/vhosts?columns=name');
    const chosen = currentVhost();
    select.replaceChildren(h('option', { value: '' }, 'All'),
      ...list.map((v) => h('option', { value: v.name, selected: v.name === chosen }, v.name)));
  } catch { /* the filter stays at "All" */ }
}

function hideHeader() {
  document.getElementById('nav').hidden = true;
  document.getElementById('session').hidden = true;
}

/** Reads the user's tags again (they may have changed since the login); false if refused. */
async function refreshTags() {
  try {
    const me = await api.whoami();
    api.setTags(me && me.tags);
    return true;
  } catch (error) {
    if (error.status === 401) { api.logout(); return false; }
    return true; // the broker is unreachable: keep what we knew
  }
}

async function route() {
  stopTimers();
  const mine = ++generation;
  const main = document.getElementById('main');
  const path = location.hash.replace(/^#/, '') || '/';
  if (!api.loggedIn()) {
    hideHeader();
    main.replaceChildren();
    await login({ main, done: () => { showHeader(); if (location.hash === '#/login') location.hash = '#/'; else route(); } });
    return;
  }
  if (path === '/login') { location.hash = '#/'; return; }
  for (const [pattern, page, nav, title, role] of routes) {
    const m = path.match(pattern);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.nav === nav);
    main.replaceChildren();
    if (!can(role)) {
      main.append(h('h1', {}, title), note(needs(role), 'note needs-tag'));
      return;
    }
    const ctx = {
      main,
      params: m.slice(1).map(decodeURIComponent),
      vhost: currentVhost(),
      // Runs fn now and every `ms` while this page is shown.
      every: (ms, fn) => {
        if (mine !== generation) return;
        timers.push(setInterval(() => { if (mine === generation) fn(); }, ms));
        return fn();
      },
      current: () => mine === generation,
    };
    try {
      await page(ctx);
    } catch (error) {
      if (mine === generation) main.append(note(`This page failed: ${error.message}`, 'error'));
    }
    return;
  }
  main.replaceChildren(h('h1', {}, 'Not found'), note(`No page at ${path}.`), h('a', { href: '#/' }, 'Overview'));
}

async function start() {
  api.hooks.onLoginFailed = () => { api.logout(); route(); };
  document.getElementById('logout').addEventListener('click', () => { api.logout(); hideHeader(); location.hash = '#/login'; route(); });
  document.getElementById('vhost-filter').addEventListener('change', (e) => {
    sessionStorage.setItem(VHOST_KEY, e.target.value);
    route();
  });
  window.addEventListener('hashchange', route);
  if (api.loggedIn() && await refreshTags()) showHeader();
  route();
}

start();
