// What every list page shares: the table (columns declared once, header and
// cell together), the one cursor pager, and the page skeleton (error slot,
// bounded refresh, subscriptions that end with the page).

import { withQuery } from './api.js';
import { fill, h, keyedFill } from './dom.js';
import * as live from './live.js';
import { errorBox } from './ui.js';

// A column of a table, declared once (header and cells together):
//   title  header text ('' for none)
//   class  class of the header and of every cell ('num', 'num hide-narrow')
//   td     class of the cells when it differs from the header's: a string or item => string
//   th     more header attributes ({title: ...}), optional
//   head   () => the header's content instead of title (a checkbox), optional
//   attrs  item => more cell attributes ({title: ...}), optional
//   cell   item => the cell's content: text, nodes or arrays of them (text stays text)

function headCell(col) {
  if (col.head) return h('th', { class: col.class, ...col.th }, col.head());
  return h('th', { class: col.class, ...col.th, text: col.title ?? '' });
}

function bodyCell(col, item) {
  const cls = typeof col.td === 'function' ? col.td(item) : col.td ?? col.class;
  return h('td', { class: cls, ...(col.attrs ? col.attrs(item) : null) }, col.cell(item));
}

/**
 * Wrap a table so that only it scrolls sideways on narrow screens, and say
 * so: while columns are out of sight the edge they hide behind is shaded
 * (classes can-left / can-right) and a hint line shows above the table.
 */
function tableWrap(table) {
  const scroller = h('div', { class: 'table-scroller' }, table);
  const wrap = h('div', { class: 'table-wrap' },
    h('p', { class: 'scroll-hint', 'aria-hidden': 'true', text: 'More columns: scroll sideways ⇆' }), scroller);
  const update = () => {
    const max = scroller.scrollWidth - scroller.clientWidth;
    wrap.classList.toggle('can-left', scroller.scrollLeft > 1);
    wrap.classList.toggle('can-right', scroller.scrollLeft < max - 1);
  };
  scroller.addEventListener('scroll', update, { passive: true });
  const observer = new ResizeObserver(update);
  observer.observe(scroller);
  observer.observe(table);
  return wrap;
}

/**
 * A table of `columns` whose rows are keyed by `key(item)`: a row whose item
 * did not change is kept across show() calls (rows under the pointer survive a
 * live refresh). `row(item)` gives each <tr>'s attributes (dataset, class).
 * Returns {el, table, tbody, show(items, emptyText)}: el is the table in its
 * scrolling wrapper; with no items, show() puts one row spanning every column
 * that says emptyText.
 */
export function tableView({ id, class: cls, columns, key, row = () => ({}) }) {
  const tbody = h('tbody');
  const rows = new Map();
  const table = h('table', { class: cls ? `table ${cls}` : 'table', id },
    h('thead', {}, h('tr', {}, columns.map(headCell))),
    tbody);
  const build = (item) => h('tr', row(item), columns.map((col) => bodyCell(col, item)));
  return {
    el: tableWrap(table),
    table,
    tbody,
    show(items, emptyText) {
      if (items.length) {
        keyedFill(tbody, rows, items, key, build);
        return;
      }
      rows.clear();
      fill(tbody, h('tr', { class: 'empty' }, h('td', { colspan: columns.length, text: emptyText })));
    },
  };
}

/**
 * The pager of a cursor-paged list: « First, ‹ Newer, Older ›. The cursor
 * rides in the hash (`path` plus the `base` filters every link keeps), and
 * with `newer` so do the cursors of the pages before (`trail`), so a page can
 * be linked and ‹ Newer and Back work. Returns {el, cursor, show(nextCursor)}:
 * cursor is this page's ('' for the first); show() draws the links for the
 * API's next_cursor (null or undefined on the last page).
 */
export function pager(path, params, base, { newer = true } = {}) {
  const cursor = params.get('cursor') || '';
  const trail = newer ? (params.get('trail') || '').split('.').filter((c) => /^\d+$/.test(c)) : [];
  const el = h('div', { class: 'pager' });
  const link = (text, extra, id) => h('a', { class: 'btn', id, href: withQuery(path, { ...base, ...extra }), text });
  return {
    el,
    cursor,
    show(next) {
      const prev = trail[trail.length - 1];
      fill(el,
        cursor ? link('« First', {}) : null,
        cursor && newer ? link('‹ Newer', { cursor: prev === '0' ? '' : prev, trail: trail.slice(0, -1).join('.') }) : null,
        next !== null && next !== undefined
          ? link('Older ›', { cursor: next, trail: newer ? [...trail, cursor || '0'].join('.') : '' }, 'next-page')
          : null);
    },
  };
}

/**
 * The skeleton of a list page. `fetch()` gets the data from the API and
 * `render(data)` shows it; a failed fetch shows the API's error in errorSlot
 * until a good one clears it, and nothing renders once the page is left.
 * Returns {errorSlot, alive(), show(data), load(), refresh, on(kind, fn),
 * every(ms, fn), start()}: refresh() is load() debounced and at most once a
 * second; on() and every() subscribe to the live stream or a timer until the
 * page is left; start() loads once and returns the cleanup app.js calls.
 */
export function listPage(fetch, render) {
  let alive = true;
  const errorSlot = h('div');
  const stops = [];
  const show = (data) => {
    if (!alive) return;
    fill(errorSlot);
    render(data);
  };
  const load = async () => {
    let data;
    try {
      data = await fetch();
    } catch (err) {
      if (alive) fill(errorSlot, errorBox(err));
      return;
    }
    show(data);
  };
  const refresh = live.refresher(load);
  stops.push(refresh.stop);
  return {
    errorSlot,
    alive: () => alive,
    show,
    load,
    refresh,
    on(kind, fn) {
      stops.push(live.on(kind, fn));
    },
    every(ms, fn) {
      const timer = setInterval(fn, ms);
      stops.push(() => clearInterval(timer));
    },
    start() {
      load();
      return () => {
        alive = false;
        stops.forEach((stop) => stop());
      };
    },
  };
}
