// Types: the task types this server's app and the live workers serve, with
// the defaults a task of each type gets when enqueued here without options.
// Live workers that publish other defaults for a type are flagged.

import { get } from '../api.js';
import { fill, fmtDuration, h, shortId } from '../dom.js';
import { listPage, tableView } from '../table.js';
import { pageHeader, statusBadge } from '../ui.js';

const REFRESH_MS = 5000; // publications change when workers start or stop

function limits(d) {
  const parts = [];
  if (d.concurrency_limit != null) parts.push(`${d.concurrency_limit} at once`);
  if (d.rate_limit) parts.push(d.rate_limit);
  return parts.length ? parts.map((p) => h('span', { class: 'chip', text: p })) : h('span', { class: 'muted', text: 'none' });
}

/** Chips naming who defines a type or cron entry: this server, live workers. */
export function definedBy(here, workers) {
  const list = Array.isArray(workers) ? workers : [];
  return [
    here ? h('span', { class: 'chip', text: 'this server' }) : null,
    list.map((w) => h('span', { class: 'chip mono', title: w, text: shortId(w) })),
    !here && !list.length ? h('span', { class: 'muted', text: 'nobody' }) : null,
  ];
}

function conflicts(t) {
  const list = Array.isArray(t.conflicts) ? t.conflicts : [];
  if (!list.length) return statusBadge('active');
  const who = list.map((c) => `${(c.workers || []).join(', ')}: ${JSON.stringify(c.defaults)}`).join('\n');
  return h('span', { class: 'badge badge-stale', title: `Other defaults published by\n${who}`, text: `${list.length} conflicting` });
}

const COLUMNS = [
  { title: 'Type', td: 'type-cell', cell: (t) => h('a', { href: `#/tasks?type=${encodeURIComponent(t.type)}`, text: t.type }) },
  { title: 'Queue', cell: (t) => h('span', { class: 'chip', text: t.defaults.queue }) },
  { title: 'Priority', class: 'num', cell: (t) => String(t.defaults.priority) },
  { title: 'Max retries', class: 'num', cell: (t) => String(t.defaults.max_retries) },
  { title: 'Timeout', class: 'num', cell: (t) => (t.defaults.timeout == null ? '—' : fmtDuration(t.defaults.timeout)) },
  { title: 'Limits', cell: (t) => limits(t.defaults) },
  { title: 'Served by', cell: (t) => definedBy(t.local, t.workers) },
  { title: 'Defaults', th: { title: 'Whether the live workers agree on the defaults' }, cell: conflicts },
  { title: '', cell: (t) => h('a', { class: 'btn btn-small', href: `#/new?type=${encodeURIComponent(t.type)}`, text: 'New task' }) },
];

export function mount(main) {
  const table = tableView({ id: 'types-table', columns: COLUMNS, key: (t) => t.type, row: (t) => ({ dataset: { type: String(t.type) } }) });
  const page = listPage(() => get('/api/types'), (out) => {
    table.show(out.types || [], 'No type is registered: start a worker of your app (nexq worker --app ...).');
  });
  fill(main,
    pageHeader('Types', 'Task types of this server and of the live workers, with the defaults a new task gets'),
    page.errorSlot, table.el);
  page.every(REFRESH_MS, page.refresh);
  return page.start();
}
