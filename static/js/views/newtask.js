// New task: a form for POST /api/tasks. The payload is parsed in the page
// (JSON.parse, never eval) and every field is checked against the API's own
// rules before anything is sent; the server's answer is shown if it differs.
// Choosing a registered type (GET /api/types: this server's handlers and the
// live workers') fills in the queue, priority, retries and timeout its tasks
// get; a field left at that default is not sent, so the server applies it.

import { get, post } from '../api.js';
import { fill, h } from '../dom.js';
import * as live from '../live.js';
import { pageHeader, panel, taskHref, toast } from '../ui.js';

const QUEUE_RE = /^[^\s\u001c-\u001f\u0085\ufeff:|,*/?#%]+$/;
const SOLID_RE = /[^\s\u001c-\u001f\u0085\ufeff]/;
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const WEBHOOK_RE = /^https?:\/\/[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(\/[!-~]*)?$/;
const MAX_DELAY = 10 * 365 * 86400;
const MAX_PARENTS = 1000;

function field(id, label, input, hint) {
  const err = h('p', { class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true });
  input.id = id;
  input.setAttribute('aria-describedby', `${id}-error${hint ? ` ${id}-hint` : ''}`);
  const wrap = h('div', { class: 'field' },
    h('label', { for: id, text: label }), input,
    hint ? h('p', { class: 'hint', id: `${id}-hint`, text: hint }) : null, err);
  return {
    wrap,
    input,
    error(msg) {
      err.hidden = !msg;
      err.textContent = msg || '';
      if (msg) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}

// The fields a type's defaults fill in: [body key, field name in `f`].
const DEFAULTED = [['queue', 'queue'], ['priority', 'priority'], ['max_retries', 'retries'], ['timeout', 'timeout']];

export function mount(main, route) {
  let alive = true;
  const types = h('datalist', { id: 'type-options' });
  const queues = h('datalist', { id: 'queue-options' });
  const f = {
    pick: field('nt-pick', 'Registered type', h('select', { name: 'pick' }, h('option', { value: '', text: 'Choose…' })),
      'Fills in the defaults of its tasks.'),
    type: field('nt-type', 'Task type', h('input', { name: 'type', required: true, maxlength: '200', list: 'type-options', autocomplete: 'off', spellcheck: 'false', placeholder: 'send_email' }),
      'The name a handler is registered under.'),
    payload: field('nt-payload', 'Payload (JSON)', h('textarea', { name: 'payload', rows: '10', spellcheck: 'false', class: 'mono', value: '{\n  \n}' }),
      'Any JSON value: object, array, string, number, true, false or null.'),
    priority: field('nt-priority', 'Priority', h('select', { name: 'priority' },
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((p) => h('option', {
        value: String(p), selected: p === 5,
        text: p === 9 ? '9 · high' : p === 5 ? '5 · normal' : p === 0 ? '0 · low' : String(p),
      })))),
    queue: field('nt-queue', 'Queue', h('input', { name: 'queue', value: 'default', maxlength: '100', list: 'queue-options', autocomplete: 'off', spellcheck: 'false' })),
    delay: field('nt-delay', 'Delay (seconds)', h('input', { name: 'delay', type: 'number', min: '0', step: 'any', placeholder: 'run now', inputmode: 'decimal' })),
    retries: field('nt-retries', 'Max retries', h('input', { name: 'max_retries', type: 'number', min: '0', max: '1000', step: '1', placeholder: 'handler default' })),
    timeout: field('nt-timeout', 'Timeout (seconds)', h('input', { name: 'timeout', type: 'number', min: '0', step: 'any', placeholder: 'handler default' })),
    unique: field('nt-unique', 'Unique key', h('input', { name: 'unique_key', maxlength: '1024', autocomplete: 'off', placeholder: 'none' }),
      'While a live task holds this key, enqueueing returns that task.'),
    runAt: field('nt-run-at', 'Run at', h('input', { name: 'run_at', type: 'datetime-local', step: '1' }),
      'Your local time; instead of a delay.'),
    expires: field('nt-expires', 'Expires in (seconds)', h('input', { name: 'expires_in', type: 'number', min: '0', step: 'any', placeholder: 'never', inputmode: 'decimal' }),
      'Cancelled if not started by then.'),
    webhook: field('nt-webhook', 'Webhook URL', h('input', { name: 'webhook', type: 'url', maxlength: '2048', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://example.com/hook' }),
      'Notified (signed POST) when the task succeeds or dies.'),
    parents: field('nt-depends', 'Waits for (task ids)', h('textarea', { name: 'depends_on', rows: '2', spellcheck: 'false', class: 'mono', placeholder: 'none' }),
      'Ids separated by spaces, commas or lines: runs once they all succeed.'),
    onFailure: field('nt-on-failure', 'If a parent fails', h('select', { name: 'on_parent_failure' },
      h('option', { value: 'cancel', text: 'cancel this task' }), h('option', { value: 'run', text: 'run it anyway' }))),
  };
  const payloadStatus = h('p', { class: 'json-status', id: 'payload-status', 'aria-live': 'polite' });
  const formError = h('div', { class: 'error-box', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'nt-submit', text: 'Enqueue task' });
  const format = h('button', { type: 'button', class: 'btn btn-small', text: 'Format JSON' });
  const advanced = h('details', { class: 'advanced' },
    h('summary', { text: 'More options' }),
    h('div', { class: 'form-grid' }, f.runAt.wrap, f.expires.wrap, f.unique.wrap, f.webhook.wrap),
    h('div', { class: 'form-grid' }, f.parents.wrap, f.onFailure.wrap));

  // What the defaulted fields hold when no registered type is chosen (the
  // form's own starting values), and what the chosen type's defaults are.
  const generic = Object.fromEntries(DEFAULTED.map(([key, name]) => [key, f[name].input.value]));
  let baseline = { ...generic };
  const registered = new Map();
  const text = (v) => (v === null || v === undefined ? '' : String(v));

  /** Follow the typed type's defaults in every field the user left at the previous ones. */
  function prefill() {
    const type = registered.get(f.type.input.value);
    const next = type ? Object.fromEntries(DEFAULTED.map(([key]) => [key, text(type.defaults[key])])) : generic;
    for (const [key, name] of DEFAULTED) {
      if (f[name].input.value === baseline[key]) f[name].input.value = next[key];
    }
    baseline = next;
    f.pick.input.value = type ? type.type : '';
  }

  const form = h('form', { class: 'task-form', id: 'new-task-form', novalidate: true },
    h('div', { class: 'form-grid' },
      f.pick.wrap, f.type.wrap, f.queue.wrap, f.priority.wrap, f.retries.wrap, f.timeout.wrap, f.delay.wrap),
    f.payload.wrap,
    h('div', { class: 'json-bar' }, payloadStatus, format),
    advanced,
    formError,
    h('div', { class: 'form-actions' }, submit, h('a', { class: 'btn btn-ghost', href: '#/tasks', text: 'Cancel' })),
    types, queues);

  fill(main, pageHeader('New task', 'Enqueue a task by hand'), panel(null, form));

  function parsePayload() {
    const text = f.payload.input.value;
    if (!text.trim()) return { ok: true, value: null, empty: true };
    try {
      return { ok: true, value: JSON.parse(text) };
    } catch (err) {
      return { ok: false, message: err.message };
    }
  }

  function num(input, { min = 0, max = Infinity, integer = false, exclusive = false } = {}) {
    const raw = input.value.trim();
    if (raw === '') return { value: undefined };
    const n = Number(raw);
    if (!Number.isFinite(n)) return { error: 'must be a number' };
    if (integer && !Number.isInteger(n)) return { error: 'must be a whole number' };
    if (exclusive ? n <= min : n < min) return { error: exclusive ? `must be more than ${min}` : `must be at least ${min}` };
    if (n > max) return { error: `must be at most ${max}` };
    return { value: n };
  }

  /** The request body, or null (with the fields' errors shown). */
  function check() {
    let ok = true;
    const body = {};
    const type = f.type.input.value;
    const typeErr = !type ? 'Give a task type.' : type.length > 200 ? 'At most 200 characters.'
      : CONTROL_RE.test(type) ? 'No control characters (newline, tab, …).'
        : !SOLID_RE.test(type) ? 'Needs a character other than spaces.' : null;
    f.type.error(f.type.input.dataset.touched ? typeErr : null);
    if (typeErr) ok = false;
    body.type = type;

    const payload = parsePayload();
    if (payload.ok) {
      payloadStatus.className = 'json-status ok';
      payloadStatus.textContent = payload.empty ? 'Empty: the payload will be null.' : `Valid JSON (${Array.isArray(payload.value) ? 'array' : payload.value === null ? 'null' : typeof payload.value}).`;
      f.payload.error(null);
      body.payload = payload.value;
    } else {
      payloadStatus.className = 'json-status bad';
      payloadStatus.textContent = 'Not valid JSON.';
      f.payload.error(payload.message);
      ok = false;
    }

    const queue = f.queue.input.value.trim();
    const queueErr = queue && (queue.length > 100 || !QUEUE_RE.test(queue))
      ? 'No spaces, “:”, “|”, “,”, “*”, “/”, “?”, “#” or “%”; at most 100 characters.' : null;
    f.queue.error(queueErr);
    if (queueErr) ok = false;
    if (queue && queue !== baseline.queue) body.queue = queue;

    if (f.priority.input.value !== baseline.priority) body.priority = Number(f.priority.input.value);
    for (const [key, fld, opts] of [
      ['schedule_in', f.delay, { max: MAX_DELAY }],
      ['max_retries', f.retries, { max: 1000, integer: true }],
      ['timeout', f.timeout, { exclusive: true, max: 365 * 86400 }],
    ]) {
      const r = num(fld.input, opts);
      fld.error(r.error ? `This ${r.error}.` : null);
      if (r.error) ok = false;
      else if (r.value !== undefined && fld.input.value.trim() !== baseline[key]) body[key] = r.value;
    }
    const unique = f.unique.input.value;
    if (unique) body.unique_key = unique;
    ok = moreOptions(body) && ok;
    // Disabled while an error is on screen (an untouched empty type is not).
    submit.disabled = Boolean(form.querySelector('.field-error:not([hidden])'));
    return ok ? body : null;
  }

  /** The "More options" fields into `body`; false (errors shown) if one is wrong. */
  function moreOptions(body) {
    let ok = true;
    const runAt = f.runAt.input.value ? new Date(f.runAt.input.value) : null;
    const runAtErr = runAt && !Number.isFinite(runAt.getTime()) ? 'Not a date and time.'
      : runAt && body.schedule_in !== undefined ? 'Give a delay or a time to run at, not both.' : null;
    f.runAt.error(runAtErr);
    if (runAtErr) ok = false;
    else if (runAt) body.run_at = runAt.toISOString();
    const expires = num(f.expires.input, { exclusive: true, max: MAX_DELAY });
    f.expires.error(expires.error ? `This ${expires.error}.` : null);
    if (expires.error) ok = false;
    else if (expires.value !== undefined) body.expires_in = expires.value;
    const hook = f.webhook.input.value.trim();
    const hookErr = hook && !WEBHOOK_RE.test(hook) ? 'An http(s) URL with a host name or address.' : null;
    f.webhook.error(hookErr);
    if (hookErr) ok = false;
    else if (hook) body.webhook = hook;
    const parents = f.parents.input.value.split(/[\s,]+/).filter(Boolean);
    const parentErr = parents.length > MAX_PARENTS ? `At most ${MAX_PARENTS} ids.`
      : new Set(parents).size !== parents.length ? 'An id is given twice.'
        : parents.some((p) => p.length > 256 || /[|:]/.test(p)) ? 'Not a task id (at most 256 characters, no “|” or “:”).' : null;
    f.parents.error(parentErr);
    if (parentErr) ok = false;
    else if (parents.length) {
      body.depends_on = parents;
      if (f.onFailure.input.value !== 'cancel') body.on_parent_failure = f.onFailure.input.value;
    }
    return ok;
  }

  form.addEventListener('input', (ev) => {
    if (ev.target === f.pick.input && f.pick.input.value) f.type.input.value = f.pick.input.value;
    if (ev.target === f.type.input || ev.target === f.pick.input) {
      f.type.input.dataset.touched = '1';
      prefill();
    }
    formError.hidden = true;
    check();
  });
  format.addEventListener('click', () => {
    const p = parsePayload();
    if (p.ok && !p.empty) f.payload.input.value = JSON.stringify(p.value, null, 2);
    check();
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    f.type.input.dataset.touched = '1';
    const body = check();
    if (!body) {
      const bad = form.querySelector('[aria-invalid="true"]');
      if (bad) bad.focus();
      return;
    }
    submit.disabled = true;
    try {
      const task = await post('/api/tasks', body);
      if (!alive) return;
      toast(task.created_at && Date.now() / 1000 - task.created_at > 5 && body.unique_key
        ? 'A live task already holds this unique key: showing it' : 'Task enqueued', 'ok');
      location.hash = taskHref(task.id);
    } catch (err) {
      if (!alive) return;
      formError.hidden = false;
      fill(formError, h('strong', { text: 'Not enqueued. ' }), h('span', { text: err.message }));
      submit.disabled = false;
    }
  });

  // Suggestions: types and queues seen recently.
  const addOptions = (list, values) => {
    const have = new Set([...list.options].map((o) => o.value));
    for (const v of values) if (v && !have.has(v)) {
      have.add(v);
      list.append(h('option', { value: v }));
    }
  };
  addOptions(queues, (live.state.stats?.queues || []).map((q) => q.name));
  get('/api/types').then((out) => {
    if (!alive) return;
    for (const t of out.types || []) {
      registered.set(t.type, t);
      f.pick.input.append(h('option', { value: t.type, text: `${t.type} · ${t.defaults.queue}` }));
    }
    addOptions(types, [...registered.keys()]);
    const wanted = route?.params?.get('type');  // #/new?type=... from the Types page
    if (wanted && !f.type.input.value) f.type.input.value = wanted;
    prefill();
    check();
  }, () => {});
  get('/api/tasks?limit=200').then((page) => {
    if (!alive) return;
    addOptions(types, page.tasks.map((t) => t.type));
    addOptions(queues, page.tasks.map((t) => t.queue));
  }, () => {});
  check();
  f.type.input.focus();
  return () => {
    alive = false;
  };
}
