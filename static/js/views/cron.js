// Cron: the app's entries with their last and next fire. Fetched again
// when a next fire passes (at most once a second); times tick locally.

import { get } from '../api.js';
import { fill, fmtTime, h, jsonInline, keyedFill, relTime, serverNow } from '../dom.js';
import * as live from '../live.js';
import { emptyRow, errorBox, pageHeader, tableWrap } from '../ui.js';

export function mount(main) {
  let alive = true;
  let nextDue = Infinity;
  const tbody = h('tbody');
  const rows = new Map();
  const errorSlot = h('div');
  const table = h('table', { class: 'table', id: 'cron-table' },
    h('thead', {}, h('tr', {},
      ['Name', 'Schedule', 'Task type', 'Payload', 'Last fire', 'Next fire'].map((t) => h('th', { text: t })))),
    tbody);

  fill(main,
    pageHeader('Cron', 'Entries of the app; each fire is enqueued once across the cluster'),
    errorSlot, tableWrap(table));

  function when(ts) {
    if (typeof ts !== 'number') return h('span', { class: 'muted', text: 'never' });
    return h('span', { class: 'when' }, relTime(ts), h('span', { class: 'muted small', text: fmtTime(ts) }));
  }

  function row(e) {
    return h('tr', { dataset: { cron: String(e.name) } },
      h('td', { class: 'strong', text: e.name }),
      h('td', {}, h('code', { text: e.schedule }), e.timezone ? h('span', { class: 'muted small', text: ` ${e.timezone}` }) : null),
      h('td', { class: 'type-cell' }, h('a', { href: `#/tasks?type=${encodeURIComponent(e.type)}`, text: e.type })),
      h('td', { class: 'mono small', title: JSON.stringify(e.payload) ?? '', text: jsonInline(e.payload, 60) }),
      h('td', {}, when(e.last_fire)),
      h('td', {}, when(e.next_fire)));
  }

  async function load() {
    let out;
    try {
      out = await get('/api/cron');
    } catch (err) {
      if (alive) fill(errorSlot, errorBox(err));
      return;
    }
    if (!alive) return;
    fill(errorSlot);
    const entries = out.cron || [];
    nextDue = Math.min(Infinity, ...entries.map((e) => (typeof e.next_fire === 'number' ? e.next_fire : Infinity)));
    // Not fired yet (scheduler busy or stopped): look again in 10 s, not every second.
    if (nextDue <= serverNow()) nextDue = serverNow() + 10;
    if (!entries.length) {
      rows.clear();
      fill(tbody, emptyRow(6, 'This app has no cron entries (app.cron(...) adds one).'));
      return;
    }
    keyedFill(tbody, rows, entries, (e) => e.name, row);
  }

  const refresh = live.refresher(load);
  // A second's grace: the scheduler records the fire just after its time.
  const timer = setInterval(() => serverNow() > nextDue + 1 && refresh(), 1000);
  load();
  return () => {
    alive = false;
    refresh.stop();
    clearInterval(timer);
  };
}
