// Live updates: one Server-Sent Events stream for the whole page.
//
// The API checks the bearer token on /api/events like on every /api route,
// and EventSource cannot send an Authorization header, so the stream is read
// with fetch() and a ReadableStream. When the server goes away (restart,
// network) the stream reconnects with exponential backoff and jitter; a
// stream silent for longer than STALL_MS (stats come every second) is
// treated as dead too.

import { authHeaders, needToken, onTokenChange } from './api.js';
import { serverNow, setClockOffset } from './dom.js';

export { serverNow };

const STALL_MS = 25_000; // stats come every second; a slow store may hold one ~10 s
const MAX_BACKOFF_MS = 30_000;
const HISTORY = 180; // per-second samples kept for the live chart (3 min)

const listeners = new Map(); // kind -> Set(fn)

/** Subscribe to 'stats', 'task', 'attempt', 'connection' or 'store-error'. */
export function on(kind, fn) {
  if (!listeners.has(kind)) listeners.set(kind, new Set());
  listeners.get(kind).add(fn);
  return () => listeners.get(kind).delete(fn);
}

function emit(kind, data) {
  for (const fn of listeners.get(kind) || []) {
    try {
      fn(data);
    } catch (err) {
      console.error('nexq: listener failed', err);
    }
  }
}

// -- state the views read ----------------------------------------------------

export const state = {
  connection: { status: 'connecting', retryAt: null },
  stats: null, // the last stats event (see nexq/api/stats.py snapshot)
  storeError: null, // message of the last 'error' event, cleared by the next stats
  rates: [], // [{t, processed, failed}] per second, oldest first
  queueRates: new Map(), // queue -> [{t, succeeded, dead}] samples (last ~15 s)
};

/** Feed a stats snapshot (from the stream or a direct GET /api/stats). */
export function ingestStats(stats) {
  if (!stats || typeof stats.time !== 'number') return;
  const prev = state.stats;
  setClockOffset(stats.time - Date.now() / 1000);
  state.storeError = null;
  if (prev && stats.time > prev.time && Array.isArray(stats.throughput) && Array.isArray(prev.throughput)) {
    const dt = stats.time - prev.time;
    const d = throughputDelta(prev.throughput, stats.throughput);
    state.rates.push({ t: stats.time, processed: d.processed / dt, failed: d.failed / dt });
    if (state.rates.length > HISTORY) state.rates.splice(0, state.rates.length - HISTORY);
  }
  for (const q of stats.queues || []) {
    const list = state.queueRates.get(q.name) || [];
    list.push({ t: stats.time, succeeded: Number(q.succeeded) || 0, dead: Number(q.dead) || 0 });
    while (list.length > 2 && stats.time - list[0].t > 15) list.shift();
    state.queueRates.set(q.name, list);
  }
  state.stats = stats;
  emit('stats', stats);
}

/** Completions added between two per-minute series (which slide over time). */
function throughputDelta(before, after) {
  const old = new Map(before.map((b) => [b.minute, b]));
  const first = before.length ? before[0].minute : -Infinity;
  let processed = 0;
  let failed = 0;
  for (const b of after) {
    if (b.minute < first) continue;
    const o = old.get(b.minute);
    processed += Math.max(0, b.processed - (o ? o.processed : 0));
    failed += Math.max(0, b.failed - (o ? o.failed : 0));
  }
  return { processed, failed };
}

/** A queue's completions and deaths per second over the last ~15 s. */
export function queueRate(name) {
  const list = state.queueRates.get(name);
  if (!list || list.length < 2) return null;
  const a = list[0];
  const b = list[list.length - 1];
  const dt = b.t - a.t;
  if (dt <= 0) return null;
  return { succeeded: Math.max(0, b.succeeded - a.succeeded) / dt, dead: Math.max(0, b.dead - a.dead) / dt };
}

function setConnection(status, retryAt = null) {
  state.connection = { status, retryAt };
  emit('connection', state.connection);
}

// -- the stream ----------------------------------------------------------------

let started = false;
let controller = null;
let wake = null; // resolves the current backoff sleep early

export function start() {
  if (started) return;
  started = true;
  run();
}

/** Drop the current stream and reconnect now (e.g. after a new token). */
export function reconnect() {
  if (controller) controller.abort();
  if (wake) wake();
}

const sleep = (ms) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  wake = () => {
    clearTimeout(timer);
    resolve();
  };
});

async function run() {
  let backoff = 1000;
  let serverRetry = null;
  for (;;) {
    controller = new AbortController();
    let gotData = false;
    try {
      const resp = await fetch('/api/events', {
        headers: authHeaders({ Accept: 'text/event-stream' }),
        cache: 'no-store',
        signal: controller.signal,
      });
      if (resp.status === 401) {
        setConnection('unauthorized');
        // Dismissed: wait for a token from elsewhere rather than ask again.
        if (!(await needToken())) await new Promise((resolve) => {
          const off = onTokenChange((has) => {
            if (has) {
              off();
              resolve();
            }
          });
        });
        continue;
      }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      setConnection('live');
      await readStream(resp.body, controller, (field, value) => {
        if (field === 'retry') serverRetry = value;
        else {
          gotData = true;
          dispatch(field, value);
        }
      });
    } catch (err) {
      if (err && err.name !== 'AbortError') console.debug('nexq: event stream ended', err);
    }
    if (gotData) backoff = Math.max(1000, serverRetry || 1000);
    const delay = Math.min(MAX_BACKOFF_MS, backoff) * (0.8 + Math.random() * 0.4);
    setConnection('reconnecting', Date.now() + delay);
    await sleep(delay);
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
  }
}

/** Parse text/event-stream; calls onMessage(eventName, data) per message. */
async function readStream(body, ctrl, onMessage) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let stall = setTimeout(() => ctrl.abort(), STALL_MS);
  let buf = '';
  let event = 'message';
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      clearTimeout(stall);
      stall = setTimeout(() => ctrl.abort(), STALL_MS);
      buf += value;
      const lines = buf.split(/\r\n|\r|\n/);
      buf = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (data.length) onMessage(event, data.join('\n'));
          event = 'message';
          data = [];
        } else if (line.startsWith(':')) {
          continue; // comment / keep-alive
        } else {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          let val = i < 0 ? '' : line.slice(i + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
          else if (field === 'retry' && /^\d+$/.test(val)) onMessage('retry', Number(val));
        }
      }
    }
  } finally {
    clearTimeout(stall);
    reader.cancel().catch(() => {});
  }
}

function dispatch(kind, raw) {
  let data;
  try {
    data = JSON.parse(raw);
  } catch {
    return;
  }
  if (kind === 'stats') ingestStats(data);
  else if (kind === 'error') {
    state.storeError = data && data.error ? String(data.error.message) : 'the store is unavailable';
    emit('store-error', state.storeError);
  } else emit(kind, data);
}

// -- bounded refreshing ------------------------------------------------------------

/**
 * Wrap an async `load` so that requests to run it are debounced and at most
 * one run starts per `minMs` (never two at once). Returns request(); call
 * request.stop() when the view goes away.
 */
export function refresher(load, { minMs = 1000, debounceMs = 150 } = {}) {
  let last = 0;
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;
  const runNow = async () => {
    timer = null;
    if (stopped) return;
    running = true;
    last = Date.now();
    try {
      await load();
    } catch (err) {
      console.error('nexq: refresh failed', err);
    } finally {
      running = false;
      if (again && !stopped) {
        again = false;
        request();
      }
    }
  };
  function request() {
    if (stopped || timer) return;
    if (running) {
      again = true;
      return;
    }
    const wait = Math.max(debounceMs, last + minMs - Date.now());
    timer = setTimeout(runNow, wait);
  }
  request.stop = () => {
    stopped = true;
    clearTimeout(timer);
  };
  return request;
}
