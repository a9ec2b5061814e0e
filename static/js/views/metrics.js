// Metrics: per task type, what Flower and Sidekiq show: how many ran, how
// many succeeded, how long they ran (p50 / p95 / p99) and how long they
// waited in the queue first, over the window and as it went. The figures
// come from GET /api/types/stats: the workers' own records of the newest
// tasks, sampled on the server when this page asks (every 10 s).

import { get, withQuery } from '../api.js';
import { barChart, lineChart } from '../chart.js';
import { fill, fmtDuration, fmtNumber, h } from '../dom.js';
import { listPage, tableView } from '../table.js';
import { pageHeader, panel } from '../ui.js';

// [minutes, label, minutes between time labels on the chart]
const WINDOWS = [[15, '15 min', 5], [60, 'hour', 15], [360, '6 hours', 60], [1440, '24 hours', 360]];
const REFRESH_MS = 10_000;

const percent = (r) => (typeof r === 'number' ? `${(r * 100).toFixed(r === 0 || r === 1 ? 0 : 1)} %` : '—');
const seconds = (v) => (typeof v === 'number' ? fmtDuration(v) : '—');

function columns(link) {
  const q = (kind, p) => ({ title: `${kind === 'runtime' ? 'Run' : 'Wait'} ${p}`, class: 'num', cell: (t) => seconds(t[kind]?.[p]) });
  return [
    { title: 'Type', td: 'type-cell', cell: (t) => h('a', { href: link(t.type), text: t.type }) },
    { title: 'Tasks', class: 'num', cell: (t) => fmtNumber(t.count) },
    { title: 'Success', class: 'num', th: { title: 'succeeded / (succeeded + dead)' }, cell: (t) => percent(t.success_rate) },
    { title: 'Dead', class: 'num', cell: (t) => fmtNumber(t.statuses?.dead ?? 0) },
    q('runtime', 'p50'), q('runtime', 'p95'), q('runtime', 'p99'),
    q('wait', 'p50'), q('wait', 'p95'), q('wait', 'p99'),
  ];
}

export function mount(main, route) {
  const asked = Number(route.params.get('minutes'));
  const minutes = WINDOWS.some(([m]) => m === asked) ? asked : 60;
  let chosen = route.params.get('type') || '';
  const link = (type) => withQuery('#/metrics', { minutes: minutes === 60 ? '' : minutes, type });

  const windowSel = h('select', { id: 'metrics-window', 'aria-label': 'Window' },
    WINDOWS.map(([m, label]) => h('option', { value: String(m), text: `Last ${label}`, selected: m === minutes })));
  windowSel.addEventListener('change', () => {
    location.hash = withQuery('#/metrics', { minutes: windowSel.value, type: chosen });
  });
  const note = h('p', { class: 'muted small', id: 'metrics-note' });
  const table = tableView({
    id: 'metrics-table', columns: columns(link), key: (t) => t.type,
    row: (t) => ({ dataset: { type: String(t.type) }, class: t.type === chosen ? 'row-chosen' : '' }),
  });
  const chartTitle = h('h2', { class: 'panel-title', id: 'metrics-chart-title' });
  const countCanvas = h('canvas', { class: 'chart chart-small', id: 'metrics-counts', role: 'img', 'aria-label': 'tasks per interval' });
  const timeCanvas = h('canvas', { class: 'chart chart-small', id: 'metrics-times', role: 'img', 'aria-label': 'runtime and wait per interval' });
  const key = (cls, text) => [h('span', { class: `key ${cls}` }), ` ${text} `];
  const charts = h('div', { class: 'grid-2 metrics-charts', hidden: true },
    panel(null, h('div', { class: 'panel-head' }, chartTitle,
      h('div', { class: 'legend' }, key('key-processed', 'tasks'), key('key-failed', 'of them dead'))), countCanvas),
    panel(null, h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title', text: 'Seconds' }),
      h('div', { class: 'legend' }, key('key-run50', 'run p50'), key('key-run95', 'run p95'), key('key-wait95', 'wait p95'))),
    timeCanvas));
  const bars = barChart(countCanvas);
  const lines = lineChart(timeCanvas);

  function draw(out) {
    const types = out.types || [];
    if (!types.some((t) => t.type === chosen)) chosen = types.length ? types[0].type : '';
    const t = types.find((x) => x.type === chosen);
    charts.hidden = !t;
    if (!t) return;
    chartTitle.textContent = `${t.type}: tasks`;
    const w = out.window;
    bars.set(t.series.map((b) => ({ minute: b.t, processed: b.count - b.dead, failed: b.dead })));
    const points = (pick) => t.series.filter((b) => typeof pick(b) === 'number').map((b) => ({ t: b.t + w.bucket / 2, v: pick(b) }));
    lines.set({
      now: w.to, window: w.to - w.from, step: WINDOWS.find(([m]) => m === minutes)[2] * 60,
      series: [
        { color: '--c-processed', dots: true, values: points((b) => b.runtime.p50) },
        { color: '--accent', dots: true, values: points((b) => b.runtime.p95) },
        { color: '--s-pending', dots: true, values: points((b) => b.wait.p95) },
      ],
    });
  }

  const page = listPage(() => get(withQuery('/api/types/stats', { minutes })), (out) => {
    table.show(out.types || [], 'No task was created in this window.');
    draw(out);
    for (const tr of table.tbody.querySelectorAll('tr[data-type]')) tr.classList.toggle('row-chosen', tr.dataset.type === chosen);
    const w = out.window;
    note.textContent = w.complete
      ? `All ${fmtNumber(w.sampled)} tasks created in the window.`
      : `The newest ${fmtNumber(w.sampled)} tasks of the window (a sample: there were more).`;
  });

  fill(main,
    pageHeader('Metrics', 'Per task type: outcomes, runtime and queue wait', windowSel),
    page.errorSlot, note, table.el, charts);
  page.every(REFRESH_MS, page.refresh);
  const stop = page.start();
  return () => {
    stop();
    bars.destroy();
    lines.destroy();
  };
}
