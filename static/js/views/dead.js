// Dead letters: tasks out of retries. Requeue one, requeue all, purge all
// (of one queue when the filter names one).

import { get, post, taskPath, withQuery } from '../api.js';
import { fill, h, relTime } from '../dom.js';
import * as live from '../live.js';
import { listPage, pager, tableView } from '../table.js';
import { confirmAction, pageHeader, runAction } from '../ui.js';
import { TASK_COLUMNS } from './tasks.js';

const LIMIT = 50;

export function mount(main, route) {
  const queue = route.params.get('queue') || '';
  const pages = pager('#/dead', route.params, { queue }, { newer: false });
  const summary = h('span', { class: 'muted' });
  const scope = queue ? `queue “${queue}”` : 'every queue';

  const queueSel = h('select', { id: 'dead-queue', name: 'queue' }, h('option', { value: '', text: 'All queues' }));
  const names = new Set((live.state.stats?.queues || []).map((q) => q.name));
  if (queue) names.add(queue);
  for (const n of [...names].sort()) queueSel.append(h('option', { value: n, text: n, selected: n === queue }));
  queueSel.addEventListener('change', () => {
    location.hash = withQuery('#/dead', { queue: queueSel.value });
  });

  const body = queue ? { queue } : {};
  const requeueAll = h('button', { type: 'button', class: 'btn btn-primary', id: 'dead-requeue-all', text: 'Requeue all' });
  requeueAll.addEventListener('click', async () => {
    if (!(await confirmAction('Requeue every dead task?', `Every dead task of ${scope} runs again as a new attempt.`, 'Requeue all'))) return;
    await runAction(requeueAll, () => post('/api/dead/requeue', body), (out) => `${out.requeued} task(s) requeued`);
    page.refresh();
  });
  const purge = h('button', { type: 'button', class: 'btn btn-danger', id: 'dead-purge', text: 'Purge' });
  purge.addEventListener('click', async () => {
    if (!(await confirmAction('Purge dead letters?', `Every dead task of ${scope} is deleted for good.`, 'Purge', true))) return;
    // Without a queue the API wants "all" said out loud.
    await runAction(purge, () => post('/api/dead/purge', queue ? { queue } : { all: true }), (out) => `${out.purged} task(s) purged`);
    page.refresh();
  });

  function requeueButton(t) {
    const btn = h('button', { type: 'button', class: 'btn btn-small', text: 'Requeue', dataset: { id: String(t.id) } });
    btn.addEventListener('click', async () => {
      await runAction(btn, () => post(`${taskPath(t.id)}/retry`), 'Task requeued');
      page.refresh();
    });
    return btn;
  }

  function errorText(t) {
    const err = t.error || {};
    return [
      err.type ? h('strong', { text: err.type }) : null,
      err.type ? ': ' : null,
      h('span', { class: 'clip', text: err.message ?? '—' }),
    ];
  }

  const table = tableView({
    id: 'dead-table',
    key: (t) => t.id,
    row: (t) => ({ dataset: { id: String(t.id) } }),
    columns: [
      ...TASK_COLUMNS,
      { title: 'Error', td: 'error-cell', cell: errorText },
      { title: 'Attempts', class: 'num', cell: (t) => t.attempt },
      { title: 'Died', td: 'nowrap', cell: (t) => relTime(t.finished_at) },
      { title: '', td: 'actions', cell: requeueButton },
    ],
  });

  const page = listPage(() => get(withQuery('/api/dead', { queue, limit: LIMIT, cursor: pages.cursor })), (out) => {
    table.show(out.tasks, 'No dead letters.');
    requeueAll.disabled = purge.disabled = !out.tasks.length && !pages.cursor;
    summary.textContent = `${out.tasks.length} on this page`;
    pages.show(out.next_cursor);
  });

  fill(main,
    pageHeader('Dead letters', 'Tasks that used up their retries', requeueAll, purge),
    h('div', { class: 'toolbar' }, h('label', { class: 'inline-label' }, h('span', { text: 'Queue' }), queueSel)),
    page.errorSlot, table.el, h('div', { class: 'table-foot' }, summary, pages.el));

  let lastDead = live.state.stats?.counts?.dead;
  page.on('stats', (stats) => {
    if (stats.counts?.dead !== lastDead) {
      lastDead = stats.counts?.dead;
      page.refresh();
    }
  });
  page.on('task', (ev) => ev && ev.status === 'dead' && page.refresh());
  return page.start();
}
