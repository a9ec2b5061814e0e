// Workers: who is registered, what each runs, when it last beat. The list
// is fetched again when the stats' worker counts change, and otherwise at
// most every 5 s (heartbeats are not events); ages tick locally.

import { get } from '../api.js';
import { fill, fmtNumber, h, keyedFill, relTime, shortId } from '../dom.js';
import * as live from '../live.js';
import { emptyRow, errorBox, pageHeader, statusBadge, tableWrap } from '../ui.js';

const SLOW_REFRESH = 5; // seconds between fetches when nothing changed

export function mount(main) {
  let alive = true;
  const tbody = h('tbody');
  const rows = new Map();
  const errorSlot = h('div');
  const summary = h('p', { class: 'subtitle' });
  const table = h('table', { class: 'table', id: 'workers-table' },
    h('thead', {}, h('tr', {},
      ['Worker', 'State', 'Host', 'PID', 'Queues', 'Running', 'Processed', 'Failed', 'Started', 'Last heartbeat']
        .map((t, i) => h('th', { text: t, class: [3, 6, 7].includes(i) ? 'num' : '' })))),
    tbody);

  fill(main,
    pageHeader('Workers', 'A worker is stale after two missed heartbeats'),
    summary, errorSlot, tableWrap(table));

  function state(w) {
    if (w.stale) return 'stale';
    if (w.stopping) return 'stopping';
    return 'live';
  }

  function row(w) {
    const running = Array.isArray(w.running) ? w.running : [];
    const conc = Number(w.concurrency) || 0;
    const load = conc ? running.length / conc : 0;
    const meter = h('meter', { min: '0', max: String(conc || 1), value: String(running.length), 'aria-label': 'slots in use' });
    return h('tr', { class: w.stale ? 'row-stale' : '', dataset: { worker: String(w.id), state: state(w) } },
      h('td', { class: 'mono nowrap', text: w.id }),
      h('td', {}, statusBadge(state(w))),
      h('td', { text: w.host ?? '—' }),
      h('td', { class: 'num mono', text: w.pid ?? '—' }),
      h('td', {}, (Array.isArray(w.queues) ? w.queues : []).map((q) => h('span', { class: 'chip', text: q === '*' ? 'all queues' : q }))),
      h('td', { class: 'running-cell' },
        h('div', { class: 'slots' }, meter, h('span', { text: `${running.length} / ${conc}`, title: `${Math.round(load * 100)} % of the slots in use` })),
        running.length ? h('ul', { class: 'running-list' }, running.slice(0, 5).map((r) =>
          h('li', {}, h('a', { href: `#/tasks/${encodeURIComponent(r.id)}`, class: 'mono', text: shortId(r.id) }), ' ',
            h('span', { class: 'muted', text: `${r.type ?? ''}` }))),
        running.length > 5 ? h('li', { class: 'muted', text: `+${running.length - 5} more` }) : null) : null),
      h('td', { class: 'num', text: fmtNumber(Number(w.processed) || 0) }),
      h('td', { class: 'num', text: fmtNumber(Number(w.failed) || 0) }),
      h('td', { class: 'nowrap' }, relTime(w.started_at)),
      h('td', { class: w.stale ? 'nowrap stale-text' : 'nowrap' }, relTime(w.last_heartbeat)));
  }

  async function load() {
    let out;
    try {
      out = await get('/api/workers');
    } catch (err) {
      if (alive) fill(errorSlot, errorBox(err));
      return;
    }
    if (!alive) return;
    fill(errorSlot);
    const list = out.workers || [];
    const stale = list.filter((w) => w.stale).length;
    summary.textContent = `${list.length - stale} live, ${stale} stale · ${fmtNumber(list.reduce((a, w) => a + (Number(w.concurrency) || 0), 0))} slots`;
    if (!list.length) {
      rows.clear();
      fill(tbody, emptyRow(10, 'No worker is registered. Start one with `nexq run` or `nexq worker`.'));
      return;
    }
    list.sort((a, b) => Number(a.stale) - Number(b.stale) || String(a.host).localeCompare(String(b.host)) || (a.pid - b.pid));
    keyedFill(tbody, rows, list, (w) => w.id, row);
  }

  const refresh = live.refresher(load);
  let lastSig = JSON.stringify(live.state.stats?.workers ?? null);
  let ticks = 0;
  const offStats = live.on('stats', (stats) => {
    const sig = JSON.stringify(stats.workers);
    ticks += 1;
    if (sig !== lastSig || ticks >= SLOW_REFRESH || tbody.querySelector('.running-list')) {
      lastSig = sig;
      ticks = 0;
      refresh();
    }
  });
  const offTask = live.on('task', refresh);
  load();
  return () => {
    alive = false;
    refresh.stop();
    offStats();
    offTask();
  };
}
