// The REST API client: JSON in and out, bearer token from sessionStorage,
// and one shared token prompt when the server answers 401.

import { askToken } from './ui.js';

const TOKEN_KEY = 'nexq.token';

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lives until the page is left */
  }
  tokenListeners.forEach((fn) => fn(Boolean(token)));
}

const tokenListeners = new Set();
export function onTokenChange(fn) {
  tokenListeners.add(fn);
  return () => tokenListeners.delete(fn);
}

export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

// Several requests may hit a 401 at once: they all wait on one prompt.
let pendingPrompt = null;

/**
 * Ask for the token after a 401; resolves true when a new one was stored,
 * false when the user dismissed the form.
 */
export function needToken() {
  if (!pendingPrompt) {
    const refused = Boolean(getToken());
    pendingPrompt = askToken(refused).then((token) => {
      pendingPrompt = null;
      if (token) setToken(token);
      return Boolean(token);
    });
  }
  return pendingPrompt;
}

/** Call the API; returns the decoded JSON or throws ApiError. */
export async function api(method, path, body) {
  for (;;) {
    const init = {
      method,
      cache: 'no-store',
      headers: authHeaders({ Accept: 'application/json' }),
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network', 'The Nexq server cannot be reached.');
    }
    if (resp.status === 401) {
      if (await needToken()) continue;
      throw new ApiError(401, 'unauthorized', 'An API token is needed to see this page.');
    }
    let data = null;
    try {
      data = await resp.json();
    } catch {
      /* not JSON (e.g. a proxy's error page) */
    }
    if (!resp.ok) {
      const err = data && data.error ? data.error : {};
      throw new ApiError(resp.status, err.code || `http_${resp.status}`,
        err.message || `HTTP ${resp.status}`, err.details ?? null);
    }
    return data;
  }
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const del = (path) => api('DELETE', path);

/** "/api/tasks?status=dead&limit=50" from a dict, skipping empty values. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export const taskPath = (id) => `/api/tasks/${encodeURIComponent(id)}`;
export const queuePath = (name, action) => `/api/queues/${encodeURIComponent(name)}/${action}`;
