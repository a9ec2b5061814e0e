// Queues: depth, counts, rates and pause / resume. The table follows the
// stream's stats events; rates come from the change of each queue's
// counters over the last ~15 seconds (live.queueRate).

import { get, post, queuePath } from '../api.js';
import { fill, fmtNumber, fmtRate, h } from '../dom.js';
import * as live from '../live.js';
import { listPage, tableView } from '../table.js';
import { pageHeader, runAction, statusBadge, toast } from '../ui.js';

// Shown (and compared) as text, so float noise does not rebuild a row.
const rateText = (r) => (r ? { succeeded: fmtRate(r.succeeded), dead: fmtRate(r.dead) } : null);

export function mount(main) {
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

  function pauseButton({ q, paused }) {
    const btn = h('button', {
      type: 'button', class: paused ? 'btn btn-small btn-primary' : 'btn btn-small',
      text: paused ? 'Resume' : 'Pause', dataset: { queue: q.name, action: paused ? 'resume' : 'pause' },
    });
    btn.addEventListener('click', async () => {
      const action = paused ? 'resume' : 'pause';
      const out = await runAction(btn, () => post(queuePath(q.name, action)),
        `Queue “${q.name}” ${action === 'pause' ? 'paused' : 'resumed'}`);
      if (out && page.alive()) {
        pending.set(q.name, Boolean(out.paused));
        setTimeout(() => pending.delete(q.name), 2500);
        page.refresh();
      }
    });
    return btn;
  }

  const count = (key) => ({ q }) => fmtNumber(Number(q[key]) || 0);
  const table = tableView({
    id: 'queues-table',
    key: (it) => it.q.name,
    row: ({ q, paused }) => ({ dataset: { queue: q.name }, class: paused ? 'row-paused' : '' }),
    columns: [
      { title: 'Queue', cell: ({ q, paused }) => [
        h('a', { href: `#/tasks?queue=${encodeURIComponent(q.name)}`, class: 'queue-name', text: q.name }),
        paused ? [' ', statusBadge('paused')] : null,
        nodesLine(q)] },
      { title: 'Pending', class: 'num', td: 'num strong', cell: count('pending') },
      { title: 'Depth by priority', td: 'depth-cell', cell: ({ q }) => depthBar(q) },
      { title: 'Running', class: 'num', cell: count('running') },
      { title: 'Scheduled', class: 'num', cell: count('scheduled') },
      { title: 'Done / s', class: 'num', cell: ({ rate }) => (rate ? rate.succeeded : '—') },
      { title: 'Dead / s', class: 'num', cell: ({ rate }) => (rate ? rate.dead : '—') },
      { title: 'Succeeded', class: 'num', cell: count('succeeded') },
      { title: 'Dead', class: 'num', cell: ({ q }) => (Number(q.dead)
        ? h('a', { href: `#/dead?queue=${encodeURIComponent(q.name)}`, text: fmtNumber(Number(q.dead)) }) : '0') },
      { title: 'Cancelled', class: 'num', cell: count('cancelled') },
      { title: '', td: 'actions', cell: pauseButton },
    ],
  });

  const page = listPage(async () => (await get('/api/queues')).queues || [], (queues) => {
    // Several store nodes: a node line under each name; the cells get narrower to make room.
    table.table.classList.toggle('has-nodes', queues.some((q) => Array.isArray(q.nodes) && q.nodes.length > 0));
    table.show(queues.map((q) => ({
      q, paused: pending.has(q.name) ? pending.get(q.name) : Boolean(q.paused), rate: rateText(live.queueRate(q.name)),
    })), 'No queues yet: a queue appears with its first task.');
  });

  // A queue with no task yet (say, before a deploy) can be paused in advance.
  const pauseName = h('input', { id: 'pause-name', name: 'queue', placeholder: 'queue name', autocomplete: 'off', spellcheck: 'false', maxlength: '100', required: true });
  const pauseError = h('p', { class: 'form-error', id: 'pause-error', role: 'alert', hidden: true });
  const pauseSubmit = h('button', { type: 'submit', class: 'btn', id: 'pause-submit', text: 'Pause' });
  const pauseForm = h('form', { class: 'pause-form', 'aria-label': 'Pause a queue' },
    h('label', { for: 'pause-name', class: 'inline-label' }, h('span', { text: 'Pause a queue…' })),
    h('div', { class: 'id-search' }, pauseName, pauseSubmit), pauseError);
  pauseForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = pauseName.value.trim();
    pauseError.hidden = true;
    if (!name) return;
    pauseSubmit.disabled = true;
    try {
      await post(queuePath(name, 'pause'));
      toast(`Queue “${name}” paused`, 'ok');
      pauseName.value = '';
      pending.set(name, true);
      setTimeout(() => pending.delete(name), 2500);
      page.load();
    } catch (err) {
      pauseError.textContent = err.message;
      pauseError.hidden = false;
    } finally {
      pauseSubmit.disabled = false;
    }
  });

  fill(main,
    pageHeader('Queues', 'Pending depth, throughput and pausing; paused queues keep their tasks but workers stop claiming them', pauseForm),
    page.errorSlot,
    table.el);

  page.on('stats', (stats) => page.show(stats.queues || []));
  if (live.state.stats) page.show(live.state.stats.queues || []);
  return page.start();
}
