// Dead letters: tasks out of retries. Requeue one, requeue all, purge all
// (of one queue when the filter names one).

import { get, post, taskPath, withQuery } from '../api.js';
import { fill, h, keyedFill, relTime, shortId } from '../dom.js';
import * as live from '../live.js';
import { confirmAction, emptyRow, errorBox, pageHeader, runAction, tableWrap } from '../ui.js';

const LIMIT = 50;

export function mount(main, route) {
  let alive = true;
  const queue = route.params.get('queue') || '';
  const cursor = route.params.get('cursor') || '';
  const tbody = h('tbody');
  const rows = new Map();
  const errorSlot = h('div');
  const pager = h('div', { class: 'pager' });
  const summary = h('span', { class: 'muted' });
  const scope = queue ? `queue “${queue}”` : 'every queue';

  const queueSel = h('select', { id: 'dead-queue', name: 'queue' }, h('option', { value: '', text: 'All queues' }));
  const names = new Set((live.state.stats?.queues || []).map((q) => q.name));
  if (queue) names.add(queue);
  for (const n of [...names].sort()) queueSel.append(h('option', { value: n, text: n, selected: n === queue }));
  queueSel.addEventListener('change', () => {
    location.hash = queueSel.value ? `#/dead?queue=${encodeURIComponent(queueSel.value)}` : '#/dead';
  });

  const body = queue ? { queue } : {};
  const requeueAll = h('button', { type: 'button', class: 'btn btn-primary', id: 'dead-requeue-all', text: 'Requeue all' });
  requeueAll.addEventListener('click', async () => {
    if (!(await confirmAction('Requeue every dead task?', `Every dead task of ${scope} runs again as a new attempt.`, 'Requeue all'))) return;
    await runAction(requeueAll, () => post('/api/dead/requeue', body), (out) => `${out.requeued} task(s) requeued`);
    refresh();
  });
  const purge = h('button', { type: 'button', class: 'btn btn-danger', id: 'dead-purge', text: 'Purge' });
  purge.addEventListener('click', async () => {
    if (!(await confirmAction('Purge dead letters?', `Every dead task of ${scope} is deleted for good.`, 'Purge', true))) return;
    await runAction(purge, () => post('/api/dead/purge', body), (out) => `${out.purged} task(s) purged`);
    refresh();
  });

  const table = h('table', { class: 'table', id: 'dead-table' },
    h('thead', {}, h('tr', {},
      ['Id', 'Type', 'Queue', 'Error', 'Attempts', 'Died', ''].map((t, i) => h('th', { text: t, class: i === 4 ? 'num' : '' })))),
    tbody);

  fill(main,
    pageHeader('Dead letters', 'Tasks that used up their retries', requeueAll, purge),
    h('div', { class: 'toolbar' }, h('label', { class: 'inline-label' }, h('span', { text: 'Queue' }), queueSel)),
    errorSlot, tableWrap(table), h('div', { class: 'table-foot' }, summary, pager));

  function row(t) {
    const btn = h('button', { type: 'button', class: 'btn btn-small', text: 'Requeue', dataset: { id: String(t.id) } });
    btn.addEventListener('click', async () => {
      await runAction(btn, () => post(`${taskPath(t.id)}/retry`), 'Task requeued');
      refresh();
    });
    const err = t.error || {};
    return h('tr', { dataset: { id: String(t.id) } },
      h('td', { class: 'mono' }, h('a', { href: `#/tasks/${encodeURIComponent(t.id)}`, title: String(t.id) },
        h('span', { class: 'id-full', text: t.id }), h('span', { class: 'id-short', text: shortId(t.id) }))),
      h('td', { class: 'type-cell', text: t.type }),
      h('td', { text: t.queue }),
      h('td', { class: 'error-cell' },
        err.type ? h('strong', { text: err.type }) : null,
        err.type ? ': ' : null,
        h('span', { class: 'clip', text: err.message ?? '—' })),
      h('td', { class: 'num', text: t.attempt }),
      h('td', { class: 'nowrap' }, relTime(t.finished_at)),
      h('td', { class: 'actions' }, btn));
  }

  async function load() {
    let page;
    try {
      page = await get(withQuery('/api/dead', { queue, limit: LIMIT, cursor }));
    } catch (err) {
      if (alive) fill(errorSlot, errorBox(err));
      return;
    }
    if (!alive) return;
    fill(errorSlot);
    if (page.tasks.length) keyedFill(tbody, rows, page.tasks, (t) => t.id, row);
    else {
      rows.clear();
      fill(tbody, emptyRow(7, 'No dead letters.'));
    }
    requeueAll.disabled = purge.disabled = !page.tasks.length && !cursor;
    summary.textContent = `${page.tasks.length} on this page`;
    const q = queue ? `queue=${encodeURIComponent(queue)}&` : '';
    fill(pager,
      cursor ? h('a', { class: 'btn', href: `#/dead${queue ? `?queue=${encodeURIComponent(queue)}` : ''}`, text: '« First' }) : null,
      page.next_cursor !== null && page.next_cursor !== undefined
        ? h('a', { class: 'btn', href: `#/dead?${q}cursor=${page.next_cursor}`, text: 'Older ›' }) : null);
  }

  const refresh = live.refresher(load);
  let lastDead = live.state.stats?.counts?.dead;
  const offStats = live.on('stats', (stats) => {
    if (stats.counts?.dead !== lastDead) {
      lastDead = stats.counts?.dead;
      refresh();
    }
  });
  const offTask = live.on('task', (ev) => ev && ev.status === 'dead' && refresh());
  load();
  return () => {
    alive = false;
    refresh.stop();
    offStats();
    offTask();
  };
}
