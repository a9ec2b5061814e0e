// One task: facts, progress, payload, result, error and traceback, the
// attempts timeline, and the actions its status allows. Sections are only
// rebuilt when their data changed, so selecting text in them survives the
// live refresh.

import { del, get, post, taskPath } from '../api.js';
import { fill, fmtDuration, fmtRelative, fmtTime, h, jsonView, setText, shortId } from '../dom.js';
import * as live from '../live.js';
import { TERMINAL, confirmAction, errorBox, panel, runAction, statusBadge, taskHref, toast } from '../ui.js';
import { progressBar } from './tasks.js';

// Hand-backs (a worker shut down) and deferrals (a limit) do not use up a
// retry: the task's "Attempt n of m" counts only the other attempts.
const NOT_COUNTED = new Set(['handed_back', 'deferred']);
const TIMELINE_OUTCOMES = ['succeeded', 'failed', 'lost', 'cancelled', 'timeout', 'running', ...NOT_COUNTED];

export function mount(main, route) {
  let alive = true;
  let id;
  try {
    id = decodeURIComponent(route.match[1]);
  } catch {
    id = route.match[1];
  }
  let task = null;
  const memo = {};
  const openTracebacks = new Set();

  const title = h('h1', { class: 'task-title', text: 'Task' });
  const badge = h('span', { class: 'task-status' });
  const actions = h('div', { class: 'page-actions' });
  const errorSlot = h('div');
  const facts = h('dl', { class: 'facts facts-grid' });
  const progressSlot = h('div', { class: 'progress-slot' });
  const payloadSlot = h('div');
  const resultSlot = h('div');
  const errorPanel = h('section', { class: 'panel panel-error', hidden: true });
  const attemptsList = h('ol', { class: 'timeline', id: 'attempts' });
  const webhookList = h('ol', { class: 'timeline', id: 'webhook-deliveries' });
  const webhookPanel = h('section', { class: 'panel', hidden: true },
    h('h2', { class: 'panel-title', text: 'Webhook deliveries' }), webhookList);

  fill(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/tasks', text: 'Tasks' }), ' › ', h('span', { class: 'mono', text: id })),
    h('div', { class: 'page-header' },
      h('div', {}, h('div', { class: 'title-row' }, title, badge),
        h('p', { class: 'subtitle mono', id: 'task-id', text: id })),
      actions),
    errorSlot,
    h('div', { class: 'task-layout' },
      h('div', { class: 'stack' },
        panel('Summary', facts, progressSlot),
        errorPanel,
        panel('Payload', payloadSlot),
        panel('Result', resultSlot)),
      h('div', { class: 'stack' }, panel('Attempts', attemptsList), webhookPanel)));

  /** Rebuild `slot` with build() only when `key`'s data changed. */
  function section(key, data, build) {
    const s = JSON.stringify(data) ?? 'undefined';
    if (memo[key] === s) return;
    memo[key] = s;
    build();
  }

  function fact(label, value, cls) {
    return [h('dt', { text: label }), h('dd', { class: cls, text: value ?? '—' })];
  }

  // Parents (depends_on) and children as links to their own task pages.
  function taskLinks(label, ids) {
    if (!Array.isArray(ids) || !ids.length) return null;
    return [h('dt', { text: label }), h('dd', { class: 'mono task-links' },
      ...ids.map((id) => h('a', { href: taskHref(String(id)), title: String(id), text: shortId(String(id)) })))];
  }

  function show(t) {
    task = t;
    setText(title, t.type);
    fill(badge, statusBadge(t.status));
    section('actions', t.status, () => fill(actions, ...buttons(t)));
    const now = live.serverNow();
    const ran = t.started_at && t.finished_at ? fmtDuration(t.finished_at - t.started_at) : null;
    fill(facts,
      fact('Queue', t.queue),
      fact('Priority', String(t.priority)),
      fact('Attempt', `${t.attempt} of ${(Number(t.max_retries) || 0) + 1}`),
      fact('Timeout', typeof t.timeout === 'number' ? fmtDuration(t.timeout) : 'none'),
      fact('Unique key', t.unique_key ?? 'none', t.unique_key ? 'mono' : 'muted'),
      // Shown as text, never as a link: it is data like any other.
      t.webhook ? fact('Webhook', t.webhook, 'mono') : null,
      taskLinks('Waits for', t.depends_on),
      t.depends_on && t.depends_on.length ? fact('If a parent fails', t.on_parent_failure === 'run' ? 'run anyway' : 'cancel this task') : null,
      taskLinks('Followed by', t.children),
      t.expires_at ? fact('Expires', `${fmtTime(t.expires_at)} (${fmtRelative(t.expires_at, now)})`) : null,
      fact('Created', `${fmtTime(t.created_at)} (${fmtRelative(t.created_at, now)})`),
      t.scheduled_at ? fact({ retrying: 'Next attempt', scheduled: 'Scheduled for' }[t.status] ?? 'Was due',
        `${fmtTime(t.scheduled_at)} (${fmtRelative(t.scheduled_at, now)})`) : null,
      t.started_at ? fact('Started', fmtTime(t.started_at)) : null,
      t.finished_at ? fact('Finished', `${fmtTime(t.finished_at)}${ran ? ` · ran ${ran}` : ''}`) : null);
    section('progress', [t.progress, TERMINAL.has(t.status)], () => fill(progressSlot, t.progress
      ? [h('h3', { text: TERMINAL.has(t.status) ? 'Progress (last reported)' : 'Progress' }), progressBar(t.progress)] : null));
    section('payload', t.payload, () => fill(payloadSlot, jsonView(t.payload)));
    section('result', [t.status, t.result], () => fill(resultSlot, t.result !== null && t.result !== undefined
      ? jsonView(t.result)
      : h('p', { class: 'muted', text: t.status === 'succeeded' ? 'The handler returned nothing.'
        : TERMINAL.has(t.status) ? 'No result: the task did not succeed.' : 'No result yet.' })));
    section('error', t.error, () => {
      errorPanel.hidden = !t.error;
      if (!t.error) return;
      fill(errorPanel,
        h('h2', { class: 'panel-title', text: 'Error' }),
        h('p', { class: 'error-line' },
          h('strong', { class: 'error-type', text: t.error.type ?? 'Error' }), ': ',
          h('span', { class: 'error-message', text: t.error.message ?? '' })),
        t.error.traceback ? h('pre', { class: 'traceback', text: t.error.traceback }) : null);
    });
    section('attempts', t.attempts, () => fill(attemptsList, attempts(t)));
    section('webhooks', t.webhook_deliveries, () => {
      const list = Array.isArray(t.webhook_deliveries) ? t.webhook_deliveries : [];
      webhookPanel.hidden = !list.length;
      fill(webhookList, list.slice().reverse().map((d) => h('li', { class: `timeline-item outcome-${d && d.ok ? 'succeeded' : 'failed'}` },
        h('div', { class: 'timeline-head' },
          h('strong', { text: `Delivery #${d?.attempt ?? '?'}` }),
          h('span', { class: d && d.ok ? 'badge badge-succeeded' : 'badge badge-failed', text: d && d.ok ? 'delivered' : 'failed' }),
          d?.status ? h('span', { class: 'muted', text: `HTTP ${d.status}` }) : null),
        h('div', { class: 'timeline-meta muted', text: `${fmtTime(d?.at)} · on “${d?.event ?? '?'}”` }),
        d?.error ? h('p', { class: 'error-line', text: String(d.error) }) : null)));
    });
  }

  function attempts(t) {
    const list = [...(t.attempts || [])].sort((a, b) => b.number - a.number);
    if (!list.length) {
      return h('li', { class: 'timeline-empty muted', text: TERMINAL.has(t.status) ? 'No attempt was recorded.' : 'Not run yet.' });
    }
    return list.map((a) => {
      const outcome = a.outcome ?? (t.status === 'running' ? 'running' : 'pending');
      const details = a.traceback ? h('details', { class: 'tb', open: openTracebacks.has(a.number) },
        h('summary', { text: 'Traceback' }), h('pre', { class: 'traceback', text: a.traceback })) : null;
      if (details) details.addEventListener('toggle', () => {
        if (details.open) openTracebacks.add(a.number);
        else openTracebacks.delete(a.number);
      });
      return h('li', { class: `timeline-item outcome-${TIMELINE_OUTCOMES.includes(outcome) ? outcome : 'other'}` },
        h('div', { class: 'timeline-head' },
          h('strong', { text: `#${a.number}` }), statusBadge(outcome),
          a.started_at && a.finished_at ? h('span', { class: 'muted', text: fmtDuration(a.finished_at - a.started_at) }) : null,
          NOT_COUNTED.has(outcome) ? h('span', { class: 'muted', text: 'not counted against the retries' }) : null),
        h('div', { class: 'timeline-meta muted' },
          h('span', { text: a.started_at ? fmtTime(a.started_at) : 'not started' }),
          a.worker ? h('span', { class: 'mono', text: ` · ${a.worker}` }) : null),
        a.error_type || a.error_message
          ? h('p', { class: 'error-line' }, h('strong', { text: a.error_type ?? 'Error' }), ': ', h('span', { text: a.error_message ?? '' }))
          : null,
        details);
    });
  }

  function buttons(t) {
    const out = [];
    if (!TERMINAL.has(t.status)) {
      const b = h('button', { type: 'button', class: 'btn', id: 'btn-cancel', text: 'Cancel' });
      b.addEventListener('click', async () => {
        if (!(await confirmAction('Cancel this task?', `Task ${t.id} (${t.type}) will not run${t.status === 'running' ? ' any further' : ''}.`, 'Cancel task', true))) return;
        const out2 = await runAction(b, () => post(`${taskPath(t.id)}/cancel`), 'Task cancelled');
        if (out2 && alive) show(out2);
      });
      out.push(b);
    }
    if (TERMINAL.has(t.status)) {
      // Any ended task runs again as a new attempt with a fresh retry budget.
      const label = { dead: 'Requeue from dead', cancelled: 'Retry', succeeded: 'Run again' }[t.status];
      const b = h('button', { type: 'button', class: 'btn btn-primary', id: 'btn-retry', text: label });
      b.addEventListener('click', async () => {
        if (t.status === 'succeeded' && !(await confirmAction('Run this task again?',
          `Task ${t.id} (${t.type}) succeeded; it runs once more as a new attempt.`, 'Run again'))) return;
        const out2 = await runAction(b, () => post(`${taskPath(t.id)}/retry`), 'Task queued again');
        if (out2 && alive) show(out2);
      });
      out.push(b);
    }
    const d = h('button', { type: 'button', class: 'btn btn-danger-ghost', id: 'btn-delete', text: 'Delete' });
    d.addEventListener('click', async () => {
      if (!(await confirmAction('Delete this task?', `Task ${t.id} and its history will be removed${TERMINAL.has(t.status) ? '' : ' (it is cancelled first)'}.`, 'Delete', true))) return;
      const ok = await runAction(d, () => del(taskPath(t.id)));
      if (ok) {
        toast('Task deleted', 'ok');
        if (alive) location.hash = '#/tasks';
      }
    });
    out.push(d);
    return out;
  }

  // Deliveries follow the task's end: keep looking for 10 minutes until one lands.
  function webhookPending(t) {
    if (!t.webhook || !t.finished_at) return false;
    const list = Array.isArray(t.webhook_deliveries) ? t.webhook_deliveries : [];
    return !list.some((d) => d && d.ok) && live.serverNow() - t.finished_at < 600;
  }

  async function load() {
    try {
      const t = await get(taskPath(id));
      if (alive) {
        fill(errorSlot);
        show(t);
      }
    } catch (err) {
      if (!alive) return;
      fill(errorSlot, errorBox(err));
      if (err.status === 404 && task) {
        // Deleted or expired while open: keep what was shown, say so.
        fill(actions);
      }
    }
  }

  const refresh = live.refresher(load);
  const mine = (ev) => ev && ev.id === id && refresh();
  const offs = [
    live.on('task', mine),
    live.on('attempt', mine),
    // Progress and other processes' changes have no event here: while the
    // task is live, look again with each stats tick (at most once a second).
    live.on('stats', () => task && (!TERMINAL.has(task.status) || webhookPending(task)) && refresh()),
  ];
  load();
  return () => {
    alive = false;
    refresh.stop();
    offs.forEach((off) => off());
  };
}
