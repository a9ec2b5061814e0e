// Cron: the entries of this server's app and of the live workers' apps,
// with their last and next fire. Fetched again when a next fire passes (at
// most once a second); times tick locally.

import { get } from '../api.js';
import { fill, fmtTime, h, jsonInline, relTime, serverNow } from '../dom.js';
import { listPage, tableView } from '../table.js';
import { pageHeader } from '../ui.js';
import { definedBy } from './types.js';

function when(ts) {
  if (typeof ts !== 'number') return h('span', { class: 'muted', text: 'never' });
  return h('span', { class: 'when' }, relTime(ts), h('span', { class: 'muted small', text: fmtTime(ts) }));
}

const COLUMNS = [
  { title: 'Name', td: 'strong', cell: (e) => e.name },
  { title: 'Schedule', cell: (e) => [h('code', { text: e.schedule }), e.timezone ? h('span', { class: 'muted small', text: ` ${e.timezone}` }) : null] },
  { title: 'Task type', td: 'type-cell', cell: (e) => h('a', { href: `#/tasks?type=${encodeURIComponent(e.type)}`, text: e.type }) },
  { title: 'Payload', td: 'mono small', attrs: (e) => ({ title: JSON.stringify(e.payload) ?? '' }), cell: (e) => jsonInline(e.payload, 60) },
  { title: 'Last fire', cell: (e) => when(e.last_fire) },
  { title: 'Next fire', cell: (e) => when(e.next_fire) },
  { title: 'Defined by', cell: (e) => definedBy(e.here, e.workers) },
];

export function mount(main) {
  let nextDue = Infinity;
  const table = tableView({ id: 'cron-table', columns: COLUMNS, key: (e) => e.name, row: (e) => ({ dataset: { cron: String(e.name) } }) });

  const page = listPage(() => get('/api/cron'), (out) => {
    const entries = out.cron || [];
    nextDue = Math.min(Infinity, ...entries.map((e) => (typeof e.next_fire === 'number' ? e.next_fire : Infinity)));
    // Not fired yet (scheduler busy or stopped): look again in 10 s, not every second.
    if (nextDue <= serverNow()) nextDue = serverNow() + 10;
    table.show(entries, 'No cron entries here or on a live worker (app.cron(...) adds one).');
  });

  fill(main,
    pageHeader('Cron', 'Entries of this server and of the live workers; each fire is enqueued once across the cluster'),
    page.errorSlot, table.el);

  // A second's grace: the scheduler records the fire just after its time.
  page.every(1000, () => serverNow() > nextDue + 1 && page.refresh());
  return page.start();
}
