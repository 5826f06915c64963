// The management API client: every call carries the logged-in user's basic-auth credentials
// (kept in sessionStorage, so they last as long as the tab) and answers parsed JSON or throws
// an ApiError with RabbitMQ's {error, reason}.

const AUTH_KEY = 'warren.auth';
const USER_KEY = 'warren.user';
const TAGS_KEY = 'warren.tags';

/** A refused or failed API call. `missing` is true when the path is unknown (404). */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.reason || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.missing = status === 404;
  }
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function login(user, password) {
  sessionStorage.setItem(AUTH_KEY, base64(`${user}:${password}`));
  sessionStorage.setItem(USER_KEY, user);
}

export function logout() {
  sessionStorage.removeItem(AUTH_KEY);
  sessionStorage.removeItem(USER_KEY);
  sessionStorage.removeItem(TAGS_KEY);
}

export function loggedIn() {
  return sessionStorage.getItem(AUTH_KEY) !== null;
}

export function userName() {
  return sessionStorage.getItem(USER_KEY) || '';
}

/** Keeps the user's tags, as /api/whoami gives them (a list, or RabbitMQ's comma-separated text). */
export function setTags(tags) {
  const list = Array.isArray(tags) ? tags : String(tags || '').split(',');
  sessionStorage.setItem(TAGS_KEY, JSON.stringify(list.map((t) => String(t).trim()).filter(Boolean)));
}

/** The user's tags, as last read from /api/whoami. */
export function tags() {
  try { return JSON.parse(sessionStorage.getItem(TAGS_KEY) || '[]'); } catch { return []; }
}

/** Called when the broker refuses the stored credentials (set by the app). */
export const hooks = { onLoginFailed: () => {} };

/** Percent-encodes one path segment (vhost `/` becomes `%2F`). */
export const enc = (segment) => encodeURIComponent(segment);

/** Builds a query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Calls the API: `path` is under /api. `body` (an object) is sent as JSON. Extra headers
 * (e.g. X-Reason) may be given. Answers the parsed JSON, or null for an empty answer.
 */
export async function call(method, path, body, headers = {}, { quiet = false } = {}) {
  const init = {
    method,
    headers: { Authorization: `Basic ${sessionStorage.getItem(AUTH_KEY) || ''}`, ...headers },
    // The credentials travel in our own header: 'omit' keeps the browser from showing its
    // own login prompt when the broker answers 401 with a Basic challenge.
    credentials: 'omit',
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const response = await fetch(`/api${path}`, init);
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = { reason: text }; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (!quiet && response.status === 401 && parsed && parsed.error === 'not_authorized') hooks.onLoginFailed();
    throw error;
  }
  return parsed;
}

export const get = (path) => call('GET', path);
/** Checks the stored credentials without treating a refusal as a logout. */
export const whoami = () => call('GET', '/whoami', undefined, {}, { quiet: true });
export const put = (path, body) => call('PUT', path, body ?? {});
export const post = (path, body) => call('POST', path, body ?? {});
export const del = (path, headers) => call('DELETE', path, undefined, headers);
