// Queues: depth, counts, rates and pause / resume. The table follows the
// stream's stats events; rates come from the change of each queue's
// counters over the last ~15 seconds (live.queueRate).

import { get, post, queuePath } from '../api.js';
import { fill, fmtNumber, fmtRate, h, keyedFill } from '../dom.js';
import * as live from '../live.js';
import { emptyRow, errorBox, pageHeader, runAction, statusBadge, tableWrap } from '../ui.js';

// Shown (and compared) as text, so float noise does not rebuild a row.
const rateText = (r) => (r ? { succeeded: fmtRate(r.succeeded), dead: fmtRate(r.dead) } : null);

export function mount(main) {
  let alive = true;
  const tbody = h('tbody');
  const rows = new Map();
  const errorSlot = h('div');
  const table = h('table', { class: 'table', id: 'queues-table' },
    h('thead', {}, h('tr', {},
      h('th', { text: 'Queue' }),
      h('th', { class: 'num', text: 'Pending' }), h('th', { text: 'Depth by priority' }),
      h('th', { class: 'num', text: 'Running' }), h('th', { class: 'num', text: 'Scheduled' }),
      h('th', { class: 'num', text: 'Done / s' }), h('th', { class: 'num', text: 'Dead / s' }),
      h('th', { class: 'num', text: 'Succeeded' }), h('th', { class: 'num', text: 'Dead' }),
      h('th', { class: 'num', text: 'Cancelled' }), h('th', { text: '' }))),
    tbody);

  fill(main,
    pageHeader('Queues', 'Pending depth, throughput and pausing; paused queues keep their tasks but workers stop claiming them'),
    errorSlot,
    tableWrap(table));

  // Pause state we just set wins over a stats event sent before it landed.
  const pending = new Map();

  function depthBar(q) {
    const total = Number(q.pending) || 0;
    const bar = h('span', { class: 'depth-bar', title: 'pending tasks by priority, 9 to 0' });
    if (!total) return h('span', { class: 'muted', text: '—' });
    for (let p = 9; p >= 0; p--) {
      const n = Number(q.depth_by_priority?.[p]) || 0;
      if (!n) continue;
      const seg = h('span', { class: `seg seg-p${p}`, title: `P${p}: ${n}` });
      seg.style.flexGrow = String(n);
      bar.append(seg);
    }
    return bar;
  }

  // With several store nodes: where the queue's tasks are, its ring node first.
  function nodesLine(q) {
    if (!Array.isArray(q.nodes) || !q.nodes.length) return null;
    const [ring, ...others] = q.nodes.map(String);
    return h('div', {
      class: 'muted small queue-nodes', dataset: { nodes: q.nodes.join(',') },
      title: 'Store nodes holding tasks of this queue; new tasks go to the first',
    }, 'on ', h('a', { href: '#/nodes', class: 'node-ref', text: ring }),
    others.length ? [' · also on ', others.map((n, i) => [i ? ', ' : '', h('span', { class: 'node-ref', text: n })])] : null);
  }

  function row(item) {
    const { q, paused, rate } = item;
    const btn = h('button', {
      type: 'button', class: paused ? 'btn btn-small btn-primary' : 'btn btn-small',
      text: paused ? 'Resume' : 'Pause', dataset: { queue: q.name, action: paused ? 'resume' : 'pause' },
    });
    btn.addEventListener('click', async () => {
      const action = paused ? 'resume' : 'pause';
      const out = await runAction(btn, () => post(queuePath(q.name, action)),
        `Queue “${q.name}” ${action === 'pause' ? 'paused' : 'resumed'}`);
      if (out && alive) {
        pending.set(q.name, Boolean(out.paused));
        setTimeout(() => pending.delete(q.name), 2500);
        refresh();
      }
    });
    const href = `#/tasks?queue=${encodeURIComponent(q.name)}`;
    return h('tr', { dataset: { queue: q.name }, class: paused ? 'row-paused' : '' },
      h('td', {}, h('a', { href, class: 'queue-name', text: q.name }), paused ? [' ', statusBadge('paused')] : null,
        nodesLine(q)),
      h('td', { class: 'num strong', text: fmtNumber(Number(q.pending) || 0) }),
      h('td', { class: 'depth-cell' }, depthBar(q)),
      h('td', { class: 'num', text: fmtNumber(Number(q.running) || 0) }),
      h('td', { class: 'num', text: fmtNumber(Number(q.scheduled) || 0) }),
      h('td', { class: 'num', text: rate ? rate.succeeded : '—' }),
      h('td', { class: 'num', text: rate ? rate.dead : '—' }),
      h('td', { class: 'num', text: fmtNumber(Number(q.succeeded) || 0) }),
      h('td', { class: 'num' }, Number(q.dead) ? h('a', { href: `#/dead?queue=${encodeURIComponent(q.name)}`, text: fmtNumber(Number(q.dead)) }) : '0'),
      h('td', { class: 'num', text: fmtNumber(Number(q.cancelled) || 0) }),
      h('td', { class: 'actions' }, btn));
  }

  function show(queues) {
    if (!alive) return;
    fill(errorSlot);
    // Several store nodes: a node line under each name; the cells get narrower to make room.
    table.classList.toggle('has-nodes', queues.some((q) => Array.isArray(q.nodes) && q.nodes.length > 0));
    if (!queues.length) {
      rows.clear();
      fill(tbody, emptyRow(11, 'No queues yet: a queue appears with its first task.'));
      return;
    }
    const items = queues.map((q) => ({
      q, paused: pending.has(q.name) ? pending.get(q.name) : Boolean(q.paused), rate: rateText(live.queueRate(q.name)),
    }));
    keyedFill(tbody, rows, items, (it) => it.q.name, row);
  }

  async function load() {
    try {
      const out = await get('/api/queues');
      show(out.queues || []);
    } catch (err) {
      if (alive) fill(errorSlot, errorBox(err));
    }
  }

  const refresh = live.refresher(load);
  const offStats = live.on('stats', (stats) => show(stats.queues || []));
  if (live.state.stats) show(live.state.stats.queues || []);
  load();
  return () => {
    alive = false;
    refresh.stop();
    offStats();
  };
}
