// Tasks: a filtered, paged table. Filters and the cursor live in the hash
// (#/tasks?status=dead&queue=emails&cursor=50) so a view can be linked.

import { get, taskPath, withQuery } from '../api.js';
import { fill, h, keyedFill, relTime, shortId } from '../dom.js';
import * as live from '../live.js';
import { STATUSES, emptyRow, errorBox, pageHeader, statusBadge, tableWrap } from '../ui.js';

const LIMITS = [25, 50, 100, 200];

function hashFor(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `#/tasks${s ? `?${s}` : ''}`;
}

/** A progress bar for a task's {fraction, message}, or null. */
export function progressBar(progress, compact = false) {
  if (!progress || typeof progress !== 'object') return null;
  const f = typeof progress.fraction === 'number' ? Math.max(0, Math.min(1, progress.fraction)) : null;
  const bar = h('progress', { class: 'progress', max: '1', 'aria-label': 'progress' });
  if (f !== null) bar.value = f;
  return h('span', { class: compact ? 'progress-wrap compact' : 'progress-wrap' },
    bar,
    h('span', { class: 'progress-text', text: f !== null ? `${Math.round(f * 100)} %` : '' }),
    !compact && progress.message ? h('span', { class: 'progress-msg', text: String(progress.message) }) : null);
}

export function mount(main, route) {
  let alive = true;
  const p = route.params;
  const filters = {
    status: p.get('status') || '',
    type: p.get('type') || '',
    queue: p.get('queue') || '',
    limit: LIMITS.includes(Number(p.get('limit'))) ? Number(p.get('limit')) : 50,
  };
  const cursor = p.get('cursor') || '';
  // Previous pages' cursors ride along in the hash too, so Back works.
  const trail = (p.get('trail') || '').split('.').filter((c) => /^\d+$/.test(c));

  const statusSel = h('select', { name: 'status', id: 'f-status' },
    h('option', { value: '', text: 'All statuses' }),
    STATUSES.map((s) => h('option', { value: s, text: s, selected: s === filters.status })));
  const typeInput = h('input', { name: 'type', id: 'f-type', placeholder: 'any type', value: filters.type, list: 'known-types', autocomplete: 'off' });
  const typeList = h('datalist', { id: 'known-types' });
  const queueSel = h('select', { name: 'queue', id: 'f-queue' }, h('option', { value: '', text: 'All queues' }));
  const limitSel = h('select', { name: 'limit', id: 'f-limit', 'aria-label': 'rows per page' },
    LIMITS.map((n) => h('option', { value: String(n), text: `${n} / page`, selected: n === filters.limit })));
  const idInput = h('input', { name: 'id', id: 'f-id', placeholder: 'task id', autocomplete: 'off', spellcheck: 'false' });
  const idError = h('p', { class: 'form-error', role: 'alert', hidden: true });

  function setQueues(names) {
    const have = new Set([...queueSel.options].map((o) => o.value));
    const all = new Set(names);
    if (filters.queue) all.add(filters.queue);
    for (const name of [...all].sort()) {
      if (!have.has(name)) queueSel.append(h('option', { value: name, text: name, selected: name === filters.queue }));
    }
  }
  setQueues((live.state.stats?.queues || []).map((q) => q.name));

  const apply = () => {
    location.hash = hashFor({
      status: statusSel.value, type: typeInput.value.trim(), queue: queueSel.value,
      limit: Number(limitSel.value) === 50 ? '' : limitSel.value,
    });
  };
  for (const el of [statusSel, queueSel, limitSel, typeInput]) el.addEventListener('change', apply);
  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tasks' },
    h('label', {}, h('span', { text: 'Status' }), statusSel),
    h('label', {}, h('span', { text: 'Type' }), typeInput, typeList),
    h('label', {}, h('span', { text: 'Queue' }), queueSel),
    h('label', {}, h('span', { text: 'Rows' }), limitSel),
    h('button', { type: 'submit', class: 'btn', text: 'Apply' }),
    filters.status || filters.type || filters.queue
      ? h('a', { class: 'btn btn-ghost', href: '#/tasks', text: 'Clear' }) : null);
  filterForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    apply();
  });

  const idForm = h('form', { class: 'id-search', role: 'search', 'aria-label': 'Find a task by id' },
    h('label', { for: 'f-id', class: 'sr-only', text: 'Task id' }), idInput,
    h('button', { type: 'submit', class: 'btn', text: 'Open' }));
  idForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = idInput.value.trim();
    idError.hidden = true;
    if (!id) return;
    try {
      await get(taskPath(id));
      location.hash = `#/tasks/${encodeURIComponent(id)}`;
    } catch (err) {
      idError.textContent = err.status === 404 ? `No task with id “${id}”.` : err.message;
      idError.hidden = false;
    }
  });

  const tbody = h('tbody');
  const rowCache = new Map();
  const table = h('table', { class: 'table tasks-table', id: 'tasks-table' },
    h('thead', {}, h('tr', {},
      ['Id', 'Type', 'Queue', 'Priority', 'Status', 'Attempt', 'Progress', 'Created'].map((t, i) =>
        h('th', { text: t, class: i === 3 || i === 5 ? 'num hide-narrow' : i === 6 ? 'hide-narrow' : '' })))),
    tbody);
  const pager = h('div', { class: 'pager' });
  const errorSlot = h('div');
  const summary = h('span', { class: 'muted', 'aria-live': 'polite' });

  fill(main,
    pageHeader('Tasks', 'Newest first', h('a', { class: 'btn btn-primary', href: '#/new', text: 'New task' })),
    h('div', { class: 'toolbar' }, filterForm, h('div', { class: 'id-box' }, idForm, idError)),
    errorSlot,
    tableWrap(table),
    h('div', { class: 'table-foot' }, summary, pager));

  function row(t) {
    const link = `#/tasks/${encodeURIComponent(t.id)}`;
    return h('tr', { dataset: { id: String(t.id), status: String(t.status) } },
      h('td', { class: 'mono' }, h('a', { href: link, title: String(t.id) },
        h('span', { class: 'id-full', text: t.id }), h('span', { class: 'id-short', text: shortId(t.id) }))),
      h('td', { class: 'type-cell', text: t.type }),
      h('td', { text: t.queue }),
      h('td', { class: 'num hide-narrow', text: t.priority }),
      h('td', {}, statusBadge(t.status)),
      h('td', { class: 'num hide-narrow', text: `${t.attempt}/${(Number(t.max_retries) || 0) + 1}` }),
      h('td', { class: 'hide-narrow' }, ['succeeded', 'dead', 'cancelled'].includes(t.status) ? null : progressBar(t.progress, true)),
      h('td', { class: 'nowrap' }, relTime(t.created_at)));
  }

  async function load() {
    let page;
    try {
      page = await get(withQuery('/api/tasks', {
        status: filters.status, type: filters.type, queue: filters.queue, limit: filters.limit, cursor,
      }));
    } catch (err) {
      if (alive) fill(errorSlot, errorBox(err));
      return;
    }
    if (!alive) return;
    fill(errorSlot);
    if (page.tasks.length) keyedFill(tbody, rowCache, page.tasks, (t) => t.id, row);
    else {
      rowCache.clear();
      fill(tbody, emptyRow(8, filters.status || filters.type || filters.queue
        ? 'No task matches these filters.' : 'No tasks yet.'));
    }
    const types = new Set([...typeList.options].map((o) => o.value));
    for (const t of page.tasks) if (!types.has(t.type)) {
      types.add(t.type);
      typeList.append(h('option', { value: t.type }));
    }
    setQueues(page.tasks.map((t) => t.queue));
    const n = page.tasks.length;
    summary.textContent = `${n} task${n === 1 ? '' : 's'} on this page`;
    const base = { status: filters.status, type: filters.type, queue: filters.queue, limit: filters.limit === 50 ? '' : filters.limit };
    const prevTrail = trail.slice(0, -1);
    fill(pager,
      cursor ? h('a', { class: 'btn', href: hashFor(base), text: '« First' }) : null,
      cursor ? h('a', { class: 'btn', href: hashFor({ ...base, cursor: trail[trail.length - 1] === '0' ? '' : trail[trail.length - 1], trail: prevTrail.join('.') }), text: '‹ Newer' }) : null,
      page.next_cursor !== null && page.next_cursor !== undefined
        ? h('a', { class: 'btn', id: 'next-page', href: hashFor({ ...base, cursor: page.next_cursor, trail: [...trail, cursor || '0'].join('.') }), text: 'Older ›' })
        : null);
  }

  const refresh = live.refresher(load);
  let lastCounts = JSON.stringify(live.state.stats?.counts ?? null);
  const offTask = live.on('task', refresh);
  const offAttempt = live.on('attempt', refresh);
  const offStats = live.on('stats', (stats) => {
    setQueues((stats.queues || []).map((q) => q.name));
    // Changes made by other processes only show in the counts.
    const counts = JSON.stringify(stats.counts);
    if (counts !== lastCounts) {
      lastCounts = counts;
      refresh();
    } else if (tbody.querySelector('[data-status="running"]')) refresh();
  });
  load();

  return () => {
    alive = false;
    refresh.stop();
    offTask();
    offAttempt();
    offStats();
  };
}
