// Safe DOM building and formatting.
//
// Every value that comes from the API reaches the page through textContent
// or a text node: nothing here parses HTML, so a payload such as
// `<img src=x onerror=alert(1)>` is shown as those characters, never run.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open', 'required', 'multiple']);

/** A link target we made ourselves: an in-page hash route or a same-site path. */
export function safeHref(v) {
  const s = String(v);
  return s.startsWith('#') || (s.startsWith('/') && !s.startsWith('//')) ? s : '#';
}

/**
 * h('a', {class: 'x', href: '#/tasks', on: {click: fn}}, 'text', child)
 * Attribute names always come from our code; values and children are text.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'href') el.setAttribute('href', safeHref(v));
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace every child of el (text-only, like h()). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Set text only when it changed (keeps selection and avoids layout work). */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

// -- formatting --------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');

/** Unix seconds -> local "2025-11-22 08:58:03" (empty for null). */
export function fmtTime(ts) {
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return '—';
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Seconds -> "850 ms", "12.3 s", "4 min 05 s", "2 h 10 min", "3 d 4 h". */
export function fmtDuration(sec) {
  if (typeof sec !== 'number' || !Number.isFinite(sec)) return '—';
  const s = Math.abs(sec);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(Math.floor(s % 60))} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** "5 s ago" / "in 2 min" relative to now (unix seconds). */
export function fmtRelative(ts, now) {
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return '—';
  const d = ts - now;
  if (Math.abs(d) < 1) return 'just now';
  const s = Math.abs(d);
  let text;
  if (s < 60) text = `${Math.round(s)} s`;
  else if (s < 3600) text = `${Math.round(s / 60)} min`;
  else if (s < 86400) text = `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  else text = `${(s / 86400).toFixed(s < 864000 ? 1 : 0)} d`;
  return d < 0 ? `${text} ago` : `in ${text}`;
}

export function fmtNumber(n, digits = 0) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A rate: "0", "0.35", "12.4", "1,250". */
export function fmtRate(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n === 0) return '0';
  if (n < 1) return n.toFixed(2);
  if (n < 100) return n.toFixed(1);
  return fmtNumber(n);
}

export function shortId(id) {
  const s = String(id);
  return s.length > 14 ? `${s.slice(0, 6)}…${s.slice(-6)}` : s;
}

// -- JSON ------------------------------------------------------------------

const JSON_SPAN_LIMIT = 200_000; // characters; past that, plain text is faster

/** Pretty, highlighted JSON in a <pre>: built from text nodes only. */
export function jsonView(value) {
  const pre = h('pre', { class: 'json' });
  if (value === undefined) {
    pre.textContent = '—';
    return pre;
  }
  const plain = JSON.stringify(value, null, 2) ?? String(value);
  if (plain.length > JSON_SPAN_LIMIT) {
    pre.textContent = plain;
    return pre;
  }
  const frag = document.createDocumentFragment();
  const out = (text, cls) => frag.append(cls ? h('span', { class: cls, text }) : document.createTextNode(text));
  const walk = (v, ind) => {
    if (v === null) out('null', 'j-null');
    else if (Array.isArray(v)) {
      if (!v.length) return out('[]');
      out('[\n');
      v.forEach((x, i) => {
        out(ind + '  ');
        walk(x, ind + '  ');
        out(i < v.length - 1 ? ',\n' : '\n');
      });
      out(ind + ']');
    } else if (typeof v === 'object') {
      const keys = Object.keys(v);
      if (!keys.length) return out('{}');
      out('{\n');
      keys.forEach((k, i) => {
        out(ind + '  ');
        out(JSON.stringify(k), 'j-key');
        out(': ');
        walk(v[k], ind + '  ');
        out(i < keys.length - 1 ? ',\n' : '\n');
      });
      out(ind + '}');
    } else if (typeof v === 'string') out(JSON.stringify(v), 'j-str');
    else if (typeof v === 'number') out(String(v), 'j-num');
    else if (typeof v === 'boolean') out(String(v), 'j-bool');
    else out(String(v));
  };
  walk(value, '');
  pre.append(frag);
  return pre;
}

/** One-line JSON for table cells, cut to `max` characters. */
export function jsonInline(value, max = 80) {
  const s = JSON.stringify(value) ?? '';
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

// -- live-friendly rendering -------------------------------------------------------

let clockOffset = 0; // the server's clock minus ours (seconds), set from stats events

export function setClockOffset(seconds) {
  clockOffset = seconds;
}

/** The server's clock now, unix seconds. */
export function serverNow() {
  return Date.now() / 1000 + clockOffset;
}

/** "5 s ago" that keeps itself current (see tickRelativeTimes). */
export function relTime(ts) {
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return h('span', { class: 'muted', text: '—' });
  return h('time', {
    class: 'rel', datetime: new Date(ts * 1000).toISOString(), title: fmtTime(ts),
    dataset: { ts: String(ts) }, text: fmtRelative(ts, serverNow()),
  });
}

/** Update every relTime() on the page; app.js calls this once a second. */
export function tickRelativeTimes(root = document) {
  const now = serverNow();
  for (const el of root.querySelectorAll('time.rel[data-ts]')) setText(el, fmtRelative(Number(el.dataset.ts), now));
}

/**
 * Render `items` into `parent`, reusing the element of an item whose data
 * (JSON) did not change: rows under the pointer survive a live refresh.
 * `cache` is a Map kept by the caller between calls.
 */
export function keyedFill(parent, cache, items, keyFn, build) {
  const next = new Map();
  const nodes = items.map((item) => {
    const key = keyFn(item);
    const sig = JSON.stringify(item);
    const old = cache.get(key);
    const node = old && old.sig === sig ? old.node : build(item);
    next.set(key, { sig, node });
    return node;
  });
  cache.clear();
  for (const [k, v] of next) cache.set(k, v);
  const current = parent.children;
  if (current.length !== nodes.length || nodes.some((n, i) => current[i] !== n)) parent.replaceChildren(...nodes);
}
