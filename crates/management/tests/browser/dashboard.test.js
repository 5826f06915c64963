// Warren's dashboard in a real browser: Debian's chromium driven by playwright-core (no browser
// is downloaded). Run by the Rust integration test crates/server/tests/it/dashboard.rs, which
// starts warren and answers this script's requests for AMQP work (declare and publish, run a
// publisher, log in as a user) over stdio: a request is one stderr line "@@warren <id> <json>",
// the answer one stdin line "<id> <json>".
//
// Environment: WARREN_URL (the dashboard, e.g. http://127.0.0.1:15672), WARREN_USER and
// WARREN_PASSWORD (default guest/guest), CHROMIUM (default /usr/bin/chromium),
// WARREN_CONTROL=stdio when the Rust side answers requests (without it the tests that need
// AMQP work are skipped), WARREN_SCREENSHOTS=<dir> to save screenshots of the main pages.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.WARREN_URL || 'http://127.0.0.1:15672').replace(/\/$/, '');
const USER = process.env.WARREN_USER || 'guest';
const PASSWORD = process.env.WARREN_PASSWORD || 'guest';
const SHOTS = process.env.WARREN_SCREENSHOTS || '';
const CONTROLLED = process.env.WARREN_CONTROL === 'stdio';
const RUN = `${process.pid}`;
// Generous for a busy CI machine; the one timing the tests promise (a new queue shows by the
// next 5 s refresh) has its own deadline.
const UI_TIMEOUT = 10000;

// ---- the Rust side: requests over stdio ----
const pending = new Map();
let nextId = 1;
let lines;
function broker(command, args = {}) {
  if (!CONTROLLED) throw new Error('no broker control (WARREN_CONTROL=stdio)');
  if (!lines) {
    lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      const space = line.indexOf(' ');
      const id = Number(line.slice(0, space));
      const answer = JSON.parse(line.slice(space + 1));
      const waiter = pending.get(id);
      if (waiter) { pending.delete(id); waiter(answer); }
      if (pending.size === 0) lines.pause();
    });
  }
  const id = nextId++;
  lines.resume();
  return new Promise((resolve, reject) => {
    pending.set(id, (a) => (a.ok ? resolve(a) : reject(new Error(`broker ${command}: ${a.error}`))));
    process.stderr.write(`@@warren ${id} ${JSON.stringify({ command, ...args })}\n`);
  });
}

// ---- the browser ----
let browser;
let context;
const problems = []; // console errors and uncaught exceptions, with the page they happened on
const apiMissing = new Set(); // API paths that answered 404

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (lines) lines.close();
  process.stdin.destroy(); // let node exit: nothing more will be asked
  await browser?.close();
  if (apiMissing.size) console.log(`# endpoints this broker answered 404 (pages degrade): ${[...apiMissing].sort().join(', ')}`);
});

/** A new page that records console errors and failures. */
async function open() {
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location().url || '';
    // A 404 from an API endpoint this broker does not offer yet: the page shows a note.
    if (/status of 404/.test(msg.text()) && url.includes('/api/')) return;
    problems.push(`${page.url()}: console error: ${msg.text()} (${url})`);
  });
  page.on('pageerror', (err) => problems.push(`${page.url()}: uncaught: ${err.message}`));
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (r.status() === 404 && u.pathname.startsWith('/api/')) apiMissing.add(u.pathname);
    if (r.status() >= 400 && !u.pathname.startsWith('/api/')) problems.push(`${page.url()}: ${r.status()} for ${u.pathname}`);
  });
  page.on('dialog', (d) => d.accept());
  return page;
}

async function login(page, user = USER, password = PASSWORD) {
  await page.goto(`${BASE}/`);
  await page.fill('#login [name=username]', user);
  await page.fill('#login [name=password]', password);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#whoami', { state: 'visible' });
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: join(SHOTS, `dashboard-${name}.png`), fullPage: false });
}

/** Whether the broker offers an API path (some arrive later than the dashboard). */
async function offers(path) {
  const r = await fetch(`${BASE}/api${path}`, { headers: { Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` } });
  return r.status !== 404;
}

async function apiGet(path) {
  const r = await fetch(`${BASE}/api${path}`, { headers: { Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` } });
  assert.equal(r.status, 200, `GET /api${path}`);
  return r.json();
}

/** Calls the API as the test's user; answers the response (for setup, clean-up and checks). */
function apiCall(method, path, body) {
  const headers = { Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(`${BASE}/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** Polls `check` until it answers something truthy, failing after `ms`. */
async function until(what, check, ms = UI_TIMEOUT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const noProblems = (where) => assert.deepEqual(problems.splice(0), [], `console errors or failed loads on ${where}`);

test('the assets carry their content types, validators and a self-only CSP', async () => {
  for (const [path, type] of [['/', 'text/html'], ['/js/app.js', 'text/javascript'], ['/css/style.css', 'text/css']]) {
    const r = await fetch(`${BASE}${path}`);
    assert.equal(r.status, 200, path);
    assert.ok(r.headers.get('content-type').startsWith(type), `${path}: ${r.headers.get('content-type')}`);
    assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    const again = await fetch(`${BASE}${path}`, { headers: { 'If-None-Match': r.headers.get('etag') } });
    assert.equal(again.status, 304, `${path} revalidates`);
  }
});

test('login refuses a wrong password, accepts the right one, and logout forgets it', async () => {
  const page = await open();
  await page.goto(`${BASE}/`);
  await page.fill('#login [name=username]', USER);
  await page.fill('#login [name=password]', 'not-the-password');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login .error', { timeout: UI_TIMEOUT });
  // The refused login is logged by the browser as a failed load: expected here.
  const refused = problems.splice(0).filter((p) => !/status of 401 .*\/api\/whoami/.test(p));
  assert.deepEqual(refused, []);
  await login(page);
  assert.equal(await page.textContent('#whoami'), USER);
  await page.reload();
  await page.waitForSelector('#main h1:text("Overview")');
  await page.click('#logout');
  await page.waitForSelector('#login');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('warren.auth')), null);
  await page.close();
  noProblems('login');
});

test('every page loads without console errors', async () => {
  const page = await open();
  await login(page);
  const pages = [
    ['#/', 'Overview', '#totals dl'],
    ['#/connections', 'Connections', '#connections table'],
    ['#/channels', 'Channels', '#channels table'],
    ['#/exchanges', 'Exchanges', '#exchanges table'],
    ['#/exchanges/%2F/amq.direct', 'Exchange amq.direct', '#bindings-source > *'],
    ['#/exchanges/%2F/amq.default', 'Exchange (AMQP default)', '#bindings-source > *'],
    ['#/queues', 'Queues', '#queues table'],
    ['#/queues/%2F/no-such-queue', 'Queue no-such-queue', '#queue-summary > *'],
    ['#/connections/no-such-connection', 'Connection no-such-connection', '#connection-summary .missing'],
    ['#/channels/no-such-channel', 'Channel no-such-channel', '#channel-summary .missing'],
    ['#/users', 'Users', '#topic-permissions-table'],
    ['#/users/guest', 'User guest', '#user-limits table'],
    ['#/vhosts', 'Virtual hosts', '#vhosts-table'],
    ['#/vhosts/%2F', 'Virtual host /', '#topic-permissions-table'],
    ['#/policies', 'Policies', '#operator-policies-table'],
    ['#/limits', 'Limits', '#user-limits-table'],
    ['#/definitions', 'Definitions', '#export-definitions'],
  ];
  for (const [hash, title, ready] of pages) {
    await page.goto(`${BASE}/${hash}`);
    await page.waitForSelector(`#main h1:text-is("${title}")`, { timeout: UI_TIMEOUT });
    await page.waitForSelector(ready, { timeout: UI_TIMEOUT });
    assert.equal(await page.locator('#main .error').count(), 0, `${hash} shows an error: ${await page.locator('#main').innerText()}`);
    noProblems(hash);
  }
  await page.close();
});

test('a queue declared over AMQP appears within 5 s with its depth', { skip: !CONTROLLED && 'needs the Rust harness' }, async (t) => {
  if (!(await offers('/queues'))) { t.skip('this broker has no /api/queues yet'); return; }
  const page = await open();
  const listings = [];
  page.on('request', (r) => { const u = new URL(r.url()); if (/^\/api\/queues(\/[^/]+)?$/.test(u.pathname)) listings.push(u); });
  await login(page);
  await page.goto(`${BASE}/#/queues`);
  await page.waitForSelector('#queues table');
  const name = `dash.depth.${RUN}`;
  await page.fill('#queues .filter', name);
  await page.waitForSelector('#queues td.empty');
  await broker('declare', { queue: name, messages: 3 });
  const declared = Date.now();
  const row = page.locator('#queues tbody tr', { has: page.locator(`a:text-is("${name}")`) });
  await row.waitFor({ timeout: 6000 });
  await page.waitForFunction((n) => {
    const r = [...document.querySelectorAll('#queues tbody tr')].find((tr) => tr.textContent.includes(n));
    return r && [...r.cells].some((c) => c.textContent === '3');
  }, name, { timeout: 6000 - (Date.now() - declared) });
  assert.ok(Date.now() - declared <= 6000);
  // Server-side paging: the listing never asks for every queue.
  assert.ok(listings.length > 0 && listings.every((u) => u.searchParams.get('page') && u.searchParams.get('page_size')), listings.join(' '));
  await page.fill('#queues .filter', '');
  await shot(page, 'queues');

  // The queue's page: publish through the default exchange, get with requeue, purge, delete.
  // Counts may lag by one statistics interval (RabbitMQ's is 5 s) and one refresh (5 s).
  const settled = { timeout: 12000 };
  await page.goto(`${BASE}/#/queues/%2F/${encodeURIComponent(name)}`);
  await page.waitForSelector('#queue-summary [data-field="ready"]:text-is("3")', settled);
  await page.fill('#publish-message [name=payload]', 'hello from the dashboard');
  await page.click('#publish-message button[type=submit]');
  await page.waitForSelector('#flash .ok');
  await page.fill('#get-messages [name=count]', '4');
  await page.click('#get-messages button[type=submit]');
  await page.waitForSelector('#got-messages .message-view >> nth=3');
  assert.match(await page.innerText('#got-messages'), /hello from the dashboard/);
  await page.waitForSelector('#queue-summary [data-field="ready"]:text-is("4")', settled);
  await shot(page, 'queue');
  await page.click('button:text("Purge messages")');
  await page.waitForSelector('#queue-summary [data-field="ready"]:text-is("0")', settled);
  await page.click('button:text("Delete queue")');
  await page.waitForURL(/#\/queues$/);
  await page.close();
  noProblems('queues');
});

test('the rate chart moves while a publisher runs', { skip: !CONTROLLED && 'needs the Rust harness', timeout: 60000 }, async () => {
  const page = await open();
  await login(page);
  await page.goto(`${BASE}/#/`);
  await page.waitForSelector('#chart-rates[data-samples="1"]', { timeout: UI_TIMEOUT });
  const image = () => page.evaluate(() => [...document.querySelectorAll('canvas.chart')].map((c) => c.toDataURL()).join());
  const before = await image();
  await broker('publish-start', { queue: `dash.rates.${RUN}` });
  try {
    // Two polls (5 s apart) with the publisher running.
    await page.waitForSelector('#chart-rates[data-samples="3"]', { timeout: 16000 });
    const overview = await apiGet('/overview');
    const reportsRates = overview.message_stats && overview.message_stats.publish_details;
    if (reportsRates) {
      await page.waitForFunction(() => parseFloat(document.querySelector('[data-series="publish"]').textContent) > 0, null, { timeout: 11000 });
    } else {
      console.log('# this broker reports no message rates yet: checking the queued-messages series instead');
      await page.waitForFunction(() => parseFloat(document.querySelector('[data-series="total"]').textContent.replace(/,/g, '')) > 0, null, { timeout: 11000 });
    }
    assert.notEqual(await image(), before, 'the charts changed');
    await shot(page, 'overview');
  } finally {
    await broker('publish-stop');
  }
  await page.close();
  noProblems('overview');
});

test('a user created on the users page connects over AMQP', { skip: !CONTROLLED && 'needs the Rust harness' }, async () => {
  const page = await open();
  await login(page);
  await page.goto(`${BASE}/#/users`);
  await page.waitForSelector('#users-table');
  const user = `dash-user-${RUN}`;
  await page.fill('#user-form [name=name]', user);
  await page.fill('#user-form [name=password]', 's3cret-pw');
  await page.fill('#user-form [name=tags]', 'management');
  await page.click('#user-form button[type=submit]');
  await page.waitForSelector(`#users-table a:text-is("${user}")`, { timeout: UI_TIMEOUT });
  await page.fill('#permission-form [name=user]', user);
  await page.click('#permission-form button[type=submit]');
  await page.waitForSelector(`#permissions-table a:text-is("${user}")`, { timeout: UI_TIMEOUT });
  await shot(page, 'users');
  await broker('amqp-login', { user, password: 's3cret-pw' });
  // Editing the tags keeps the password.
  await page.click(`#users-table tr:has(a:text-is("${user}")) button:text("Edit")`);
  await page.fill('#user-form [name=tags]', 'monitoring');
  await page.click('#user-form button[type=submit]');
  await page.waitForSelector(`#users-table tr:has(a:text-is("${user}")) td:text-is("monitoring")`, { timeout: UI_TIMEOUT });
  await broker('amqp-login', { user, password: 's3cret-pw' });
  await page.click(`#users-table tr:has(a:text-is("${user}")) button:text("Delete")`);
  await page.waitForSelector(`#users-table a:text-is("${user}")`, { state: 'detached', timeout: 5000 });
  await page.close();
  noProblems('users');
});

test('virtual hosts and policies are created, edited and deleted; definitions export and import', async () => {
  const page = await open();
  await login(page);
  const vhost = `dash-vhost-${RUN}`;
  await page.goto(`${BASE}/#/vhosts`);
  await page.fill('#vhost-form [name=name]', vhost);
  await page.fill('#vhost-form [name=description]', 'made by the browser test');
  await page.click('#vhost-form button[type=submit]');
  await page.waitForSelector(`#vhosts-table a:text-is("${vhost}")`, { timeout: UI_TIMEOUT });

  await page.goto(`${BASE}/#/policies`);
  await page.waitForSelector('#policies-table');
  await page.fill('#policies-form [name=vhost]', vhost);
  await page.fill('#policies-form [name=name]', 'limit');
  await page.fill('#policies-form [name=pattern]', '^orders');
  await page.fill('#policies-form [name=definition]', '{"max-length": 10}');
  await page.click('#policies-form button[type=submit]');
  const row = `#policies-table tr:has(td:text-is("${vhost}"))`;
  await page.waitForSelector(`${row} code:text-is('{"max-length":10}')`, { timeout: UI_TIMEOUT });
  await page.click(`${row} button:text("Edit")`);
  await page.fill('#policies-form [name=definition]', '{"max-length": 20}');
  await page.click('#policies-form button[type=submit]');
  await page.waitForSelector(`${row} code:text-is('{"max-length":20}')`, { timeout: UI_TIMEOUT });
  await page.click(`${row} button:text("Delete")`);
  await page.waitForSelector(row, { state: 'detached', timeout: 5000 });

  await page.goto(`${BASE}/#/definitions`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-definitions')]);
  const exported = JSON.parse(await (await import('node:fs/promises')).readFile(await download.path(), 'utf8'));
  assert.ok(exported.vhosts.some((v) => v.name === vhost), 'the export holds the new vhost');
  const imported = `dash-imported-${RUN}`;
  await page.setInputFiles('#definitions-file', {
    name: 'defs.json', mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify({ vhosts: [{ name: imported }], users: [], permissions: [] })),
  });
  await page.click('#import-definitions');
  await page.waitForSelector('#import-result .ok', { timeout: UI_TIMEOUT });
  assert.ok((await apiGet('/vhosts')).some((v) => v.name === imported));

  await page.goto(`${BASE}/#/vhosts`);
  for (const name of [vhost, imported]) {
    await page.click(`#vhosts-table tr:has(a:text-is("${name}")) button:text("Delete")`);
    await page.waitForSelector(`#vhosts-table a:text-is("${name}")`, { state: 'detached', timeout: 5000 });
  }
  await page.close();
  noProblems('admin pages');
});

test('a topic permission set on a user page is in the API, shows on the vhost page and clears', async () => {
  const user = `dash-topic-${RUN}`;
  assert.equal((await apiCall('PUT', `/users/${user}`, { password: 'pw', tags: '' })).status, 201);
  const page = await open();
  await login(page);
  await page.goto(`${BASE}/#/users/${encodeURIComponent(user)}`);
  await page.waitForSelector('#topic-permissions-table td.empty', { timeout: UI_TIMEOUT });
  await page.fill('#topic-permission-form [name=vhost]', '/');
  await page.fill('#topic-permission-form [name=exchange]', 'amq.topic');
  await page.fill('#topic-permission-form [name=write]', '^orders-.*');
  await page.fill('#topic-permission-form [name=read]', '^audit-.*');
  await page.click('#topic-permission-form button[type=submit]');
  await page.waitForSelector('#topic-permissions-table td:text-is("^orders-.*")', { timeout: UI_TIMEOUT });
  assert.deepEqual(await apiGet(`/topic-permissions/%2F/${user}`),
    [{ user, vhost: '/', exchange: 'amq.topic', write: '^orders-.*', read: '^audit-.*' }]);
  // Edit: the row fills the form.
  await page.fill('#topic-permission-form [name=write]', '');
  await page.click('#topic-permissions-table button:text("Edit")');
  assert.equal(await page.inputValue('#topic-permission-form [name=write]'), '^orders-.*');
  await page.fill('#topic-permission-form [name=write]', '^invoices-.*');
  await page.click('#topic-permission-form button[type=submit]');
  await page.waitForSelector('#topic-permissions-table td:text-is("^invoices-.*")', { timeout: UI_TIMEOUT });
  await shot(page, 'user');
  assert.deepEqual(await apiGet(`/topic-permissions/%2F/${user}`),
    [{ user, vhost: '/', exchange: 'amq.topic', write: '^invoices-.*', read: '^audit-.*' }]);

  // The vhost's page lists it with the user, and clears it.
  await page.goto(`${BASE}/#/vhosts/%2F`);
  const row = `#topic-permissions-table tr:has(a:text-is("${user}"))`;
  await page.waitForSelector(`${row} td:text-is("^audit-.*")`, { timeout: UI_TIMEOUT });
  await page.click(`${row} button:text("Clear")`);
  await page.waitForSelector(row, { state: 'detached', timeout: UI_TIMEOUT });
  assert.equal((await apiCall('GET', `/topic-permissions/%2F/${user}`)).status, 404);
  await page.close();
  assert.equal((await apiCall('DELETE', `/users/${user}`)).status, 204);
  noProblems('topic permissions');
});

test('a vhost limit of max-connections 0 set on the limits page refuses AMQP connections; edited and cleared it lets them in', { skip: !CONTROLLED && 'needs the Rust harness' }, async () => {
  const vhost = `dash-limited-${RUN}`;
  assert.equal((await apiCall('PUT', `/vhosts/${vhost}`, {})).status, 201);
  // Creating it over the API gave its creator permissions (as RabbitMQ does): take them back,
  // so they are set from the page.
  assert.equal((await apiCall('DELETE', `/permissions/${encodeURIComponent(vhost)}/${encodeURIComponent(USER)}`)).status, 204);
  const page = await open();
  await login(page);
  // Permissions for the test's user, from the vhost's page.
  await page.goto(`${BASE}/#/vhosts/${encodeURIComponent(vhost)}`);
  await page.waitForSelector('#permissions-table td.empty', { timeout: UI_TIMEOUT });
  await page.fill('#permission-form [name=user]', USER);
  await page.click('#permission-form button[type=submit]');
  await page.waitForSelector(`#permissions-table a:text-is("${USER}")`, { timeout: UI_TIMEOUT });
  await broker('amqp-login', { user: USER, password: PASSWORD, vhost });

  await page.goto(`${BASE}/#/limits`);
  await page.waitForSelector('#vhost-limits-table', { timeout: UI_TIMEOUT });
  await page.fill('#vhost-limit-form [name=owner]', vhost);
  await page.selectOption('#vhost-limit-form [name=limit]', 'max-connections');
  await page.fill('#vhost-limit-form [name=value]', '0');
  await page.click('#vhost-limit-form button[type=submit]');
  const row = `#vhost-limits-table tr:has(a:text-is("${vhost}"))`;
  await page.waitForSelector(`${row} td:text-is("max-connections")`, { timeout: UI_TIMEOUT });
  assert.equal(await page.textContent(`${row} td.num`), '0');
  assert.deepEqual(await apiGet(`/vhost-limits/${encodeURIComponent(vhost)}`), [{ vhost, value: { 'max-connections': 0 } }]);
  await shot(page, 'limits');
  await assert.rejects(broker('amqp-login', { user: USER, password: PASSWORD, vhost }), /could not connect/);

  // Edit: a limit of 3 lets one in.
  await page.click(`${row} button:text("Edit")`);
  await page.fill('#vhost-limit-form [name=value]', '3');
  await page.click('#vhost-limit-form button[type=submit]');
  await page.waitForSelector(`${row} td.num:text-is("3")`, { timeout: UI_TIMEOUT });
  assert.deepEqual(await apiGet(`/vhost-limits/${encodeURIComponent(vhost)}`), [{ vhost, value: { 'max-connections': 3 } }]);
  await broker('amqp-login', { user: USER, password: PASSWORD, vhost });

  await page.click(`${row} button:text("Clear")`);
  await page.waitForSelector(row, { state: 'detached', timeout: UI_TIMEOUT });
  await broker('amqp-login', { user: USER, password: PASSWORD, vhost });
  await page.close();
  assert.equal((await apiCall('DELETE', `/vhosts/${encodeURIComponent(vhost)}`)).status, 204);
  noProblems('limits');
});

test('a connection\'s page shows its client and channels, and closes it', { skip: !CONTROLLED && 'needs the Rust harness' }, async () => {
  const held = `dash.held.${RUN}`;
  await broker('hold-open', { name: held });
  const conn = await until('the held connection is listed',
    async () => (await apiGet('/connections')).find((c) => c.user_provided_name === held));
  const page = await open();
  await login(page);
  await page.goto(`${BASE}/#/connections`);
  await page.click(`#connections a:text-is("${conn.name}")`, { timeout: UI_TIMEOUT });
  await page.waitForSelector(`#main h1:text-is("Connection ${conn.name}")`);
  await page.waitForSelector(`#client-properties-table tr:has(td:text-is("connection_name")) td:text-is("${held}")`, { timeout: UI_TIMEOUT });
  assert.equal(await page.textContent('#connection-summary [data-field="client-provided name"]'), held);
  assert.equal(await page.textContent('#connection-summary [data-field="user"]'), USER);

  // Its channel, and the channel's page with the consumer.
  const link = page.locator('#connection-channels-table tbody a');
  await link.waitFor({ timeout: UI_TIMEOUT });
  assert.equal(await link.count(), 1, 'the held connection has one channel');
  const channel = await link.textContent();
  assert.ok(channel.startsWith(`${conn.name} (`), channel);
  await link.click();
  await page.waitForSelector(`#main h1:text-is("Channel ${channel}")`);
  await page.waitForSelector('#channel-consumers-table td:text-is("dashboard-held")', { timeout: UI_TIMEOUT });
  await page.click(`#channel-summary a:text-is("${conn.name}")`);
  await page.waitForSelector(`#main h1:text-is("Connection ${conn.name}")`);
  await page.waitForSelector('#connection-channels-table a', { timeout: UI_TIMEOUT });
  await shot(page, 'connection');

  await page.fill('#close-connection [name=reason]', 'closed by the browser test');
  await page.click('#close-connection button[type=submit]');
  await page.waitForURL(/#\/connections$/);
  await broker('held-closed');
  await until('the connection is gone from the API', async () => (await apiCall('GET', `/connections/${encodeURIComponent(conn.name)}`)).status === 404);
  await page.close();
  noProblems('connection');
});

test('an API refusal shows its reason', async () => {
  const body = { pattern: '.*', definition: { 'max-length': 'ten' }, 'apply-to': 'queues' };
  const refused = await apiCall('PUT', `/policies/%2F/dash-bad-${RUN}`, body);
  assert.equal(refused.status, 400);
  const { reason } = await refused.json();
  assert.ok(reason, 'the API gives a reason');
  const page = await open();
  await login(page);
  await page.goto(`${BASE}/#/policies`);
  await page.waitForSelector('#policies-table');
  await page.fill('#policies-form [name=name]', `dash-bad-${RUN}`);
  await page.fill('#policies-form [name=pattern]', '.*');
  await page.selectOption('#policies-form [name=apply-to]', 'queues');
  await page.fill('#policies-form [name=definition]', JSON.stringify(body.definition));
  await page.click('#policies-form button[type=submit]');
  await page.waitForSelector('#flash .error', { timeout: UI_TIMEOUT });
  assert.equal(await page.textContent('#flash .error'), `400: ${reason}`);
  // The browser logs the refused call; nothing else may fail.
  assert.deepEqual(problems.splice(0).filter((p) => !/status of 400/.test(p)), []);
  await page.close();
});

test('a user with only the management tag sees no admin pages, and no errors', async () => {
  const user = `dash-mgmt-${RUN}`;
  assert.equal((await apiCall('PUT', `/users/${user}`, { password: 'pw', tags: 'management' })).status, 201);
  assert.equal((await apiCall('PUT', `/permissions/%2F/${user}`, { configure: '.*', write: '.*', read: '.*' })).status, 201);
  const page = await open();
  await login(page, user, 'pw');
  const shown = await page.$$eval('#nav a', (links) => links.filter((a) => !a.hidden).map((a) => a.dataset.nav));
  assert.deepEqual(shown, ['overview', 'connections', 'channels', 'exchanges', 'queues', 'policies', 'limits']);
  const pages = [
    ['#/', 'Overview', '#nodes .needs-tag'],
    ['#/connections', 'Connections', '#connections table'],
    ['#/channels', 'Channels', '#channels table'],
    ['#/exchanges', 'Exchanges', '#exchanges table'],
    ['#/queues', 'Queues', '#queues table'],
    ['#/policies', 'Policies', '#policies-table'],
    ['#/limits', 'Limits', '#vhost-limits-table'],
    ['#/users', 'Users', '.needs-tag'],
    ['#/vhosts/%2F', 'Virtual host', '.needs-tag'],
    ['#/definitions', 'Definitions', '.needs-tag'],
  ];
  for (const [hash, title, ready] of pages) {
    await page.goto(`${BASE}/${hash}`);
    await page.waitForSelector(`#main h1:text-is("${title}")`, { timeout: UI_TIMEOUT });
    await page.waitForSelector(ready, { timeout: UI_TIMEOUT });
    assert.equal(await page.locator('#main .error').count(), 0, `${hash} shows an error: ${await page.locator('#main').innerText()}`);
    noProblems(`${hash} as a management user`);
  }
  // Read-only where the API would refuse a change.
  await page.goto(`${BASE}/#/policies`);
  await page.waitForSelector('#policies-table');
  assert.equal(await page.locator('#policies-form, #operator-policies-table').count(), 0);
  await page.goto(`${BASE}/#/limits`);
  await page.waitForSelector('#vhost-limits-table');
  assert.equal(await page.locator('#vhost-limit-form, #user-limits').count(), 0);
  await page.close();
  assert.equal((await apiCall('DELETE', `/users/${user}`)).status, 204);
  noProblems('management user');
});

test('a policymaker may change policies but sees neither operator policies nor the admin pages', async () => {
  const user = `dash-policymaker-${RUN}`;
  assert.equal((await apiCall('PUT', `/users/${user}`, { password: 'pw', tags: 'policymaker' })).status, 201);
  assert.equal((await apiCall('PUT', `/permissions/%2F/${user}`, { configure: '.*', write: '.*', read: '.*' })).status, 201);
  const page = await open();
  await login(page, user, 'pw');
  const shown = await page.$$eval('#nav a', (links) => links.filter((a) => !a.hidden).map((a) => a.dataset.nav));
  assert.deepEqual(shown, ['overview', 'connections', 'channels', 'exchanges', 'queues', 'policies', 'limits']);
  await page.goto(`${BASE}/#/policies`);
  await page.waitForSelector('#policies-form', { timeout: UI_TIMEOUT });
  assert.equal(await page.locator('#operator-policies-table, #operator-policies-form').count(), 0);
  await page.fill('#policies-form [name=name]', `dash-pm-${RUN}`);
  await page.fill('#policies-form [name=pattern]', '^pm');
  await page.fill('#policies-form [name=definition]', '{"max-length": 5}');
  await page.click('#policies-form button[type=submit]');
  await page.waitForSelector(`#policies-table td:text-is("dash-pm-${RUN}")`, { timeout: UI_TIMEOUT });
  assert.equal((await apiGet(`/policies/%2F/dash-pm-${RUN}`)).pattern, '^pm');
  await page.click(`#policies-table tr:has(td:text-is("dash-pm-${RUN}")) button:text("Delete")`);
  await page.waitForSelector(`#policies-table td:text-is("dash-pm-${RUN}")`, { state: 'detached', timeout: UI_TIMEOUT });
  await page.close();
  assert.equal((await apiCall('DELETE', `/users/${user}`)).status, 204);
  noProblems('policymaker');
});
