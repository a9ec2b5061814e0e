// Bulk actions on a table of tasks: tick rows (or every task the listing's
// filters match) and cancel, retry or delete them with POST /api/tasks/bulk.
// The selection lives here; the table gets a checkbox column from column.

import { post } from './api.js';
import { h } from './dom.js';
import { confirmAction, toast } from './ui.js';

const ACTIONS = [
  { action: 'cancel', label: 'Cancel', verb: 'cancelled', what: 'Tasks that have not ended will not run (any further).', danger: true },
  { action: 'retry', label: 'Retry', verb: 'queued again', what: 'Ended tasks (dead, cancelled or succeeded) run again as a new attempt.', danger: false },
  { action: 'delete', label: 'Delete', verb: 'deleted', what: 'Tasks and their history are removed (live ones are cancelled first).', danger: true },
];
const MAX_CALLS = 100; // "all matching": calls of up to 10,000 tasks each

/**
 * filter: the API filter of the listing shown ({} for none: acting on every
 * match is then not offered, the API needs a condition). onDone(): called
 * after an action, to reload the page. Returns {bar, column, setPage(ids)}:
 * bar goes above the table, column first among its columns, and setPage()
 * is told the ids shown after each render.
 */
export function bulkSelection({ filter, onDone }) {
  const hasFilter = Object.keys(filter).length > 0;
  const selected = new Set();
  let everything = false; // every task matching the filter, not only the ticked ones
  let pageIds = [];

  const count = h('strong', { id: 'bulk-count', 'aria-live': 'polite' });
  const allLink = h('button', { type: 'button', class: 'btn btn-ghost btn-small', id: 'bulk-all' });
  const clear = h('button', { type: 'button', class: 'btn btn-ghost btn-small', id: 'bulk-clear', text: 'Clear selection' });
  const buttons = ACTIONS.map((a) => {
    const b = h('button', {
      type: 'button', class: a.danger ? 'btn btn-small btn-danger-ghost' : 'btn btn-small', id: `bulk-${a.action}`, text: a.label,
    });
    b.addEventListener('click', () => run(a));
    return b;
  });
  const bar = h('div', { class: 'bulk-bar', id: 'bulk-bar', role: 'region', 'aria-label': 'Bulk actions', hidden: true },
    count, allLink, h('span', { class: 'bulk-actions' }, buttons), clear);
  const pageBox = h('input', { type: 'checkbox', id: 'select-page', 'aria-label': 'Select every task on this page' });

  function sync() {
    const ticked = pageIds.filter((id) => selected.has(id)).length;
    pageBox.checked = everything || (pageIds.length > 0 && ticked === pageIds.length);
    pageBox.indeterminate = !everything && ticked > 0 && ticked < pageIds.length;
    for (const box of document.querySelectorAll('input.row-select')) box.checked = everything || selected.has(box.dataset.id);
    bar.hidden = !everything && selected.size === 0;
    count.textContent = everything ? 'Every task matching these filters is selected.' : `${selected.size} selected`;
    allLink.hidden = !hasFilter || (!everything && !pageBox.checked);
    allLink.textContent = everything ? 'Select only the ticked ones' : 'Select every task matching these filters';
  }

  pageBox.addEventListener('change', () => {
    everything = false;
    for (const id of pageIds) {
      if (pageBox.checked) selected.add(id);
      else selected.delete(id);
    }
    sync();
  });
  allLink.addEventListener('click', () => {
    everything = !everything;
    sync();
  });
  clear.addEventListener('click', () => {
    everything = false;
    selected.clear();
    sync();
  });

  function checkbox(t) {
    const box = h('input', {
      type: 'checkbox', class: 'row-select', 'aria-label': `Select task ${t.id}`,
      checked: everything || selected.has(t.id), dataset: { id: String(t.id) },
    });
    box.addEventListener('change', () => {
      if (everything) {
        // Unticking one row of "every match" leaves the rows shown ticked.
        everything = false;
        pageIds.forEach((id) => selected.add(id));
      }
      if (box.checked) selected.add(String(t.id));
      else selected.delete(String(t.id));
      sync();
    });
    return box;
  }

  async function call(body) {
    let done = 0;
    let failed = 0;
    let first = null;
    let cursor = null;
    for (let i = 0; i < MAX_CALLS; i++) {
      const out = await post('/api/tasks/bulk', cursor === null ? body : { ...body, cursor: String(cursor) });
      done += out.done;
      failed += out.failed_count;
      first = first ?? out.failed[0] ?? null;
      cursor = out.next_cursor ?? null;
      if (cursor === null) break;
    }
    return { done, failed, first };
  }

  async function run(a) {
    const n = everything ? 'every task matching these filters' : `${selected.size} task${selected.size === 1 ? '' : 's'}`;
    if (!(await confirmAction(`${a.label} ${n}?`, a.what, `${a.label} tasks`, a.danger))) return;
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const r = await call(everything ? { action: a.action, filter } : { action: a.action, ids: [...selected] });
      const why = r.first ? ` (${r.first.id}: ${r.first.error})` : '';
      toast(`${r.done} task${r.done === 1 ? '' : 's'} ${a.verb}${r.failed ? `; ${r.failed} not${why}` : ''}`, r.failed ? 'error' : 'ok');
      everything = false;
      selected.clear();
      sync();
      onDone();
    } catch (err) {
      toast(err && err.message ? err.message : String(err), 'error');
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  return {
    bar,
    column: { title: '', class: 'select-cell', head: () => pageBox, cell: checkbox },
    setPage(ids) {
      pageIds = ids.map(String);
      const shown = new Set(pageIds);
      for (const id of [...selected]) if (!shown.has(id)) selected.delete(id);
      sync();
    },
  };
}
