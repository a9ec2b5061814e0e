// Tasks: a filtered, searchable, paged table with bulk actions. Filters and
// the cursor live in the hash (#/tasks?status=dead&search=ada&cursor=50) so a
// view can be linked; the search runs on the server (GET /api/tasks).

import { get, taskPath, withQuery } from '../api.js';
import { bulkSelection } from '../bulk.js';
import { fill, h, relTime } from '../dom.js';
import * as live from '../live.js';
import { listPage, pager, tableView } from '../table.js';
import { STATUSES, TERMINAL, pageHeader, statusBadge, taskHref, taskIdLink } from '../ui.js';

const LIMITS = [25, 50, 100, 200];

/** The columns that lead every table of tasks (here and on the dead letters). */
export const TASK_COLUMNS = [
  { title: 'Id', td: 'mono', cell: (t) => taskIdLink(t.id) },
  { title: 'Type', td: 'type-cell', cell: (t) => t.type },
  { title: 'Queue', cell: (t) => t.queue },
];

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

// The text filters of the hash, sent to the API as they are.
const TEXT_FILTERS = ['status', 'type', 'queue', 'search', 'id_prefix'];
// Time bounds: a datetime-local value in the hash (local time), ISO for the API.
const TIME_FILTERS = { after: 'created_after', before: 'created_before' };

/** The API filter of the page's filters: only those given. */
function apiFilter(filters) {
  const out = {};
  for (const k of TEXT_FILTERS) if (filters[k]) out[k] = filters[k];
  for (const [k, api] of Object.entries(TIME_FILTERS)) {
    const d = filters[k] ? new Date(filters[k]) : null;
    if (d && Number.isFinite(d.getTime())) out[api] = d.toISOString();
  }
  return out;
}

export function mount(main, route) {
  const p = route.params;
  const filters = {
    ...Object.fromEntries([...TEXT_FILTERS, ...Object.keys(TIME_FILTERS)].map((k) => [k, p.get(k) || ''])),
    limit: LIMITS.includes(Number(p.get('limit'))) ? Number(p.get('limit')) : 50,
  };
  const query = apiFilter(filters);
  const hasFilters = Object.keys(query).length > 0;

  const statusSel = h('select', { name: 'status', id: 'f-status' },
    h('option', { value: '', text: 'All statuses' }),
    STATUSES.map((s) => h('option', { value: s, text: s, selected: s === filters.status })));
  const typeInput = h('input', { name: 'type', id: 'f-type', placeholder: 'any type', value: filters.type, list: 'known-types', autocomplete: 'off' });
  const typeList = h('datalist', { id: 'known-types' });
  const queueSel = h('select', { name: 'queue', id: 'f-queue' }, h('option', { value: '', text: 'All queues' }));
  const limitSel = h('select', { name: 'limit', id: 'f-limit', 'aria-label': 'rows per page' },
    LIMITS.map((n) => h('option', { value: String(n), text: `${n} / page`, selected: n === filters.limit })));
  const searchInput = h('input', { name: 'search', id: 'f-search', type: 'search', placeholder: 'type, queue or payload', value: filters.search, autocomplete: 'off', spellcheck: 'false' });
  const prefixInput = h('input', { name: 'id_prefix', id: 'f-prefix', placeholder: 'id starts with', value: filters.id_prefix, autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const afterInput = h('input', { name: 'after', id: 'f-after', type: 'datetime-local', step: '1', value: filters.after });
  const beforeInput = h('input', { name: 'before', id: 'f-before', type: 'datetime-local', step: '1', value: filters.before });
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
    location.hash = withQuery('#/tasks', {
      status: statusSel.value, type: typeInput.value.trim(), queue: queueSel.value,
      search: searchInput.value.trim(), id_prefix: prefixInput.value.trim(),
      after: afterInput.value, before: beforeInput.value,
      limit: Number(limitSel.value) === 50 ? '' : limitSel.value,
    });
  };
  for (const el of [statusSel, queueSel, limitSel, typeInput, searchInput, prefixInput, afterInput, beforeInput]) {
    el.addEventListener('change', apply);
  }
  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tasks' },
    h('label', {}, h('span', { text: 'Search' }), searchInput),
    h('label', {}, h('span', { text: 'Status' }), statusSel),
    h('label', {}, h('span', { text: 'Type' }), typeInput, typeList),
    h('label', {}, h('span', { text: 'Queue' }), queueSel),
    h('label', {}, h('span', { text: 'Id prefix' }), prefixInput),
    h('label', {}, h('span', { text: 'Created after' }), afterInput),
    h('label', {}, h('span', { text: 'Created before' }), beforeInput),
    h('label', {}, h('span', { text: 'Rows' }), limitSel),
    h('button', { type: 'submit', class: 'btn', text: 'Apply' }),
    hasFilters ? h('a', { class: 'btn btn-ghost', href: '#/tasks', text: 'Clear' }) : null);
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
      location.hash = taskHref(id);
    } catch (err) {
      idError.textContent = err.status === 404 ? `No task with id “${id}”.` : err.message;
      idError.hidden = false;
    }
  });

  const { limit: _limit, ...kept } = filters;
  const pages = pager('#/tasks', p, { ...kept, limit: filters.limit === 50 ? '' : filters.limit });
  const bulk = bulkSelection({ filter: query, onDone: () => page.load() });
  const table = tableView({
    id: 'tasks-table',
    class: 'tasks-table',
    key: (t) => t.id,
    row: (t) => ({ dataset: { id: String(t.id), status: String(t.status) } }),
    columns: [
      bulk.column,
      ...TASK_COLUMNS,
      { title: 'Priority', class: 'num hide-narrow', cell: (t) => t.priority },
      { title: 'Status', cell: (t) => statusBadge(t.status) },
      { title: 'Attempt', class: 'num hide-narrow', cell: (t) => `${t.attempt}/${(Number(t.max_retries) || 0) + 1}` },
      { title: 'Progress', class: 'hide-narrow', cell: (t) => (TERMINAL.has(t.status) ? null : progressBar(t.progress, true)) },
      { title: 'Created', td: 'nowrap', cell: (t) => relTime(t.created_at) },
    ],
  });
  const summary = h('span', { class: 'muted', 'aria-live': 'polite' });

  const page = listPage(() => get(withQuery('/api/tasks', { ...query, limit: filters.limit, cursor: pages.cursor })), (out) => {
    // A rare match may leave a page short, or empty, before the index's end: the walk per call is bounded.
    const more = out.next_cursor !== null && out.next_cursor !== undefined;
    table.show(out.tasks, hasFilters
      ? (more ? 'No match among the tasks searched so far: look further with Older ›.' : 'No task matches these filters.')
      : 'No tasks yet.');
    bulk.setPage(out.tasks.map((t) => t.id));
    const types = new Set([...typeList.options].map((o) => o.value));
    for (const t of out.tasks) if (!types.has(t.type)) {
      types.add(t.type);
      typeList.append(h('option', { value: t.type }));
    }
    setQueues(out.tasks.map((t) => t.queue));
    const n = out.tasks.length;
    summary.textContent = `${n} task${n === 1 ? '' : 's'} on this page`;
    pages.show(out.next_cursor);
  });

  fill(main,
    pageHeader('Tasks', 'Newest first', h('a', { class: 'btn btn-primary', href: '#/new', text: 'New task' })),
    h('div', { class: 'toolbar' }, filterForm, h('div', { class: 'id-box' }, idForm, idError)),
    bulk.bar,
    page.errorSlot,
    table.el,
    h('div', { class: 'table-foot' }, summary, pages.el));

  let lastCounts = JSON.stringify(live.state.stats?.counts ?? null);
  page.on('task', page.refresh);
  page.on('attempt', page.refresh);
  page.on('stats', (stats) => {
    setQueues((stats.queues || []).map((q) => q.name));
    // Changes made by other processes only show in the counts.
    const counts = JSON.stringify(stats.counts);
    if (counts !== lastCounts) {
      lastCounts = counts;
      page.refresh();
    } else if (table.tbody.querySelector('[data-status="running"]')) page.refresh();
  });
  return page.start();
}
