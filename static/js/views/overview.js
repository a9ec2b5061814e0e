// Overview: counts by status, live throughput, queue depth by priority,
// workers and store health. Fed by the stream's stats events (one a second);
// a GET /api/stats at mount fills the page before the first event.

import { get } from '../api.js';
import { barChart, lineChart } from '../chart.js';
import { fill, fmtDuration, fmtNumber, fmtRate, h, setText } from '../dom.js';
import * as live from '../live.js';
import { tableView } from '../table.js';
import { errorBox, pageHeader, panel, statusBadge } from '../ui.js';

const CARDS = [
  ['scheduled', 'Scheduled', 'waiting for their time or a retry'],
  ['pending', 'Pending', 'ready, waiting for a worker'],
  ['running', 'Running', 'held by live workers'],
  ['succeeded', 'Succeeded', 'finished and kept'],
  ['dead', 'Dead', 'out of retries'],
  ['cancelled', 'Cancelled', 'stopped on request'],
];
const PRIORITIES = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0];
const WINDOW = 120; // seconds in the live chart

const depthAt = (q, p) => Number(q.depth_by_priority?.[p]) || 0;
const fmtMiB = (n) => `${(Number(n) / 1048576).toFixed(1)} MiB`;

export function mount(main) {
  let alive = true;
  const cardValues = {};
  const cards = h('div', { class: 'cards' }, CARDS.map(([key, label, hint]) => {
    cardValues[key] = h('span', { class: 'card-value', text: '—' });
    const href = key === 'dead' ? '#/dead' : `#/tasks?status=${key}`;
    return h('a', { class: `card card-${key}`, href, title: hint, dataset: { status: key } },
      h('span', { class: 'card-label', text: label }), cardValues[key]);
  }));

  const nowProcessed = h('strong', { text: '0' });
  const nowFailed = h('strong', { text: '0' });
  const lineCanvas = h('canvas', { class: 'chart', id: 'chart-live', role: 'img', 'aria-label': 'Processed and failed per second' });
  const chartNote = h('p', { class: 'chart-note muted', text: 'collecting samples…' });
  const barCanvas = h('canvas', { class: 'chart chart-small', id: 'chart-minutes', role: 'img', 'aria-label': 'Processed and failed per minute' });
  const minuteTotals = h('span', { class: 'muted' });

  // Each row's heat is its counts against the largest (max rides in the item, so a new max redraws every row).
  const depthTable = tableView({
    class: 'depth',
    key: (it) => it.q.name,
    columns: [
      { title: 'Queue', cell: ({ q }) => [
        h('a', { href: `#/tasks?queue=${encodeURIComponent(q.name)}`, class: 'queue-name', text: q.name }),
        q.paused ? [' ', statusBadge('paused')] : null] },
      ...PRIORITIES.map((p) => ({
        title: `P${p}`, class: 'num', th: { title: `priority ${p}` },
        td: ({ q, max }) => {
          const n = depthAt(q, p);
          return `num heat heat-${n === 0 ? 0 : Math.min(4, 1 + Math.floor((n / max) * 3.999))}`;
        },
        cell: ({ q }) => (depthAt(q, p) ? fmtNumber(depthAt(q, p)) : '·'),
      })),
      { title: 'Total', class: 'num', td: 'num strong', cell: ({ q }) => fmtNumber(Number(q.pending) || 0) },
    ],
  });

  const workerLive = h('span', { class: 'big', text: '—' });
  const workerStale = h('span', { class: 'muted', text: '' });
  const storeStatus = h('span', {});
  const storeKind = h('dd', { text: '—' });
  const storeLatency = h('dd', { text: '—' });
  const storeEvictions = h('dd', { text: '—' });
  const storeAdmission = h('dd', { text: '—' });
  const storeReasons = h('ul', { class: 'store-reasons' });
  const uptime = h('dd', { text: '—' });
  const subscribers = h('dd', { text: '—' });
  const errorSlot = h('div');

  fill(main,
    pageHeader('Overview', 'Live state of the queues, updated every second'),
    errorSlot,
    cards,
    h('div', { class: 'grid-2' },
      panel(null,
        h('div', { class: 'panel-head' },
          h('h2', { class: 'panel-title', text: 'Throughput per second' }),
          h('div', { class: 'legend' },
            h('span', { class: 'key key-processed' }), 'processed ', nowProcessed,
            h('span', { class: 'key key-failed' }), 'failed ', nowFailed)),
        lineCanvas, chartNote),
      panel(null,
        h('div', { class: 'panel-head' },
          h('h2', { class: 'panel-title', text: 'Per minute, last 15 min' }),
          minuteTotals),
        barCanvas)),
    h('div', { class: 'grid-2 grid-wide-left' },
      panel('Queue depth by priority', depthTable.el),
      h('div', { class: 'stack' },
        panel('Workers',
          h('div', { class: 'worker-summary' },
            h('a', { class: 'stat-link', href: '#/workers' }, workerLive, h('span', { text: 'live' })), workerStale)),
        panel('Store',
          h('p', {}, storeStatus),
          storeReasons,
          h('dl', { class: 'facts' },
            h('dt', { text: 'Kind' }), storeKind,
            h('dt', { text: 'Latency' }), storeLatency,
            h('dt', { text: 'Evictions' }), storeEvictions,
            h('dt', { text: 'Admission' }), storeAdmission,
            h('dt', { text: 'Server uptime' }), uptime,
            h('dt', { text: 'Live streams' }), subscribers)))));

  const line = lineChart(lineCanvas);
  const bars = barChart(barCanvas);

  function drawLive() {
    const rates = live.state.rates;
    const now = live.state.stats ? live.state.stats.time : live.serverNow();
    line.set({
      now,
      window: WINDOW,
      series: [
        { color: '--c-processed', fill: true, values: rates.map((r) => ({ t: r.t, v: r.processed })) },
        { color: '--c-failed', fill: true, values: rates.map((r) => ({ t: r.t, v: r.failed })) },
      ],
    });
    const last = rates[rates.length - 1];
    setText(nowProcessed, last ? fmtRate(last.processed) : '0');
    setText(nowFailed, last ? fmtRate(last.failed) : '0');
    chartNote.hidden = rates.length >= 2;
  }

  function show(stats) {
    if (!alive || !stats) return;
    fill(errorSlot);
    for (const [key] of CARDS) setText(cardValues[key], fmtNumber(stats.counts?.[key] ?? 0));
    drawLive();
    const series = (stats.throughput || []).slice(-15);
    bars.set(series);
    const sum = series.reduce((a, b) => ({ p: a.p + b.processed, f: a.f + b.failed }), { p: 0, f: 0 });
    setText(minuteTotals, `${fmtNumber(sum.p)} processed · ${fmtNumber(sum.f)} failed`);
    showDepth(stats.queues || []);
    setText(workerLive, fmtNumber(stats.workers?.live ?? 0));
    const stale = stats.workers?.stale ?? 0;
    setText(workerStale, stale ? `${fmtNumber(stale)} stale` : 'none stale');
    workerStale.className = stale ? 'badge badge-stale' : 'muted';
    showStore(stats.store || {});
    setText(storeKind, stats.store?.kind ?? '—');
    setText(storeLatency, typeof stats.store?.latency_ms === 'number' ? `${stats.store.latency_ms.toFixed(3)} ms` : '—');
    setText(uptime, fmtDuration(stats.uptime));
    setText(subscribers, `${fmtNumber(stats.events?.subscribers ?? 0)} (${fmtNumber(stats.events?.dropped ?? 0)} events dropped)`);
  }

  // Store health: unavailable, else degraded with the guard's reasons
  // (keys evicted, new tasks refused), else healthy; admission per node.
  function showStore(store) {
    const reasons = live.state.storeError ? [] : store.reasons || [];
    const [cls, text] = live.state.storeError ? ['badge-dead', 'unavailable']
      : reasons.length ? ['badge-failed', 'degraded'] : ['badge-succeeded', 'healthy'];
    fill(storeStatus, h('span', { class: `badge ${cls}`, text, dataset: { health: text } }),
      live.state.storeError ? h('span', { class: 'muted', text: ` ${live.state.storeError}` }) : null);
    fill(storeReasons, reasons.map((r) => h('li', { class: 'store-reason', text: r })));
    const evicted = store.evictions_detected ?? 0;
    setText(storeEvictions, evicted ? `${fmtNumber(evicted)} canaries lost` : 'none detected');
    storeEvictions.className = evicted ? 'badge badge-dead' : '';
    const adm = store.admission || [];
    setText(storeAdmission, adm.length
      ? adm.map((a) => `${adm.length > 1 ? `${a.node}: ` : ''}${fmtMiB(a.accounted_bytes)} of ${fmtMiB(a.budget_bytes)}`
        + (a.refusing ? ' (refusing new tasks)' : '')).join(' · ')
      : 'no memory limit');
  }

  let depthSig = null;
  function showDepth(queues) {
    const sig = JSON.stringify(queues.map((q) => [q.name, q.paused, q.pending, q.depth_by_priority]));
    if (sig === depthSig) return;
    depthSig = sig;
    let max = 0;
    for (const q of queues) for (const p of PRIORITIES) max = Math.max(max, depthAt(q, p));
    depthTable.show(queues.map((q) => ({ q, max })), 'No queues yet: enqueue a task to create one.');
  }

  const offStats = live.on('stats', show);
  if (live.state.stats) show(live.state.stats);
  else {
    get('/api/stats?minutes=15').then((stats) => {
      if (alive && !live.state.stats) show(stats);
    }, (err) => {
      if (alive) fill(errorSlot, errorBox(err));
    });
  }

  return () => {
    alive = false;
    offStats();
    line.destroy();
    bars.destroy();
  };
}
