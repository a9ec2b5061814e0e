// Workers: who is registered, what each runs, when it last beat. The list
// is fetched again when the stats' worker counts change, and otherwise at
// most every 5 s (heartbeats are not events); ages tick locally.

import { get } from '../api.js';
import { fill, fmtNumber, h, relTime, shortId } from '../dom.js';
import * as live from '../live.js';
import { listPage, tableView } from '../table.js';
import { pageHeader, statusBadge, taskHref } from '../ui.js';

const SLOW_REFRESH = 5; // seconds between fetches when nothing changed

function state(w) {
  if (w.stale) return 'stale';
  if (w.stopping) return 'stopping';
  return 'live';
}

// How many of a worker's slots are in use, and the first few tasks it runs.
function running(w) {
  const list = Array.isArray(w.running) ? w.running : [];
  const conc = Number(w.concurrency) || 0;
  const load = conc ? list.length / conc : 0;
  const meter = h('meter', { min: '0', max: String(conc || 1), value: String(list.length), 'aria-label': 'slots in use' });
  return [
    h('div', { class: 'slots' }, meter, h('span', { text: `${list.length} / ${conc}`, title: `${Math.round(load * 100)} % of the slots in use` })),
    list.length ? h('ul', { class: 'running-list' }, list.slice(0, 5).map((r) =>
      h('li', {}, h('a', { href: taskHref(r.id), class: 'mono', text: shortId(r.id) }), ' ',
        h('span', { class: 'muted', text: `${r.type ?? ''}` }))),
    list.length > 5 ? h('li', { class: 'muted', text: `+${list.length - 5} more` }) : null) : null,
  ];
}

const COLUMNS = [
  { title: 'Worker', td: 'mono nowrap', cell: (w) => w.id },
  { title: 'State', cell: (w) => statusBadge(state(w)) },
  { title: 'Host', cell: (w) => w.host ?? '—' },
  { title: 'PID', class: 'num', td: 'num mono', cell: (w) => w.pid ?? '—' },
  { title: 'Queues', cell: (w) => (Array.isArray(w.queues) ? w.queues : []).map((q) => h('span', { class: 'chip', text: q === '*' ? 'all queues' : q })) },
  { title: 'Running', td: 'running-cell', cell: running },
  { title: 'Processed', class: 'num', cell: (w) => fmtNumber(Number(w.processed) || 0) },
  { title: 'Failed', class: 'num', cell: (w) => fmtNumber(Number(w.failed) || 0) },
  { title: 'Started', td: 'nowrap', cell: (w) => relTime(w.started_at) },
  { title: 'Last heartbeat', td: (w) => (w.stale ? 'nowrap stale-text' : 'nowrap'), cell: (w) => relTime(w.last_heartbeat) },
];

export function mount(main) {
  const summary = h('p', { class: 'subtitle' });
  const table = tableView({
    id: 'workers-table',
    columns: COLUMNS,
    key: (w) => w.id,
    row: (w) => ({ class: w.stale ? 'row-stale' : '', dataset: { worker: String(w.id), state: state(w) } }),
  });

  const page = listPage(() => get('/api/workers'), (out) => {
    const list = out.workers || [];
    const stale = list.filter((w) => w.stale).length;
    summary.textContent = `${list.length - stale} live, ${stale} stale · ${fmtNumber(list.reduce((a, w) => a + (Number(w.concurrency) || 0), 0))} slots`;
    list.sort((a, b) => Number(a.stale) - Number(b.stale) || String(a.host).localeCompare(String(b.host)) || (a.pid - b.pid));
    table.show(list, 'No worker is registered. Start one with `nexq run` or `nexq worker`.');
  });

  fill(main,
    pageHeader('Workers', 'A worker is stale after two missed heartbeats'),
    summary, page.errorSlot, table.el);

  let lastSig = JSON.stringify(live.state.stats?.workers ?? null);
  let ticks = 0;
  page.on('stats', (stats) => {
    const sig = JSON.stringify(stats.workers);
    ticks += 1;
    if (sig !== lastSig || ticks >= SLOW_REFRESH || table.tbody.querySelector('.running-list')) {
      lastSig = sig;
      ticks = 0;
      page.refresh();
    }
  });
  page.on('task', page.refresh);
  return page.start();
}
