// Nodes: the store nodes, whether each answers and how fast, and per node
// the queues the ring places there with their live tasks. A queue held by a
// node it is no longer placed on, with live tasks left, is draining there:
// workers finish those tasks on that node. Nothing here is an event, so the
// report is fetched again every few seconds.

import { get } from '../api.js';
import { fill, fmtNumber, h, setText } from '../dom.js';
import * as live from '../live.js';
import { listPage, tableView } from '../table.js';
import { pageHeader } from '../ui.js';

const EVERY_MS = 3000;

function fmtLatency(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  return `${fmtNumber(ms, ms < 1 ? 2 : ms < 10 ? 1 : 0)} ms`;
}

const plural = (n, one, many) => `${fmtNumber(n)} ${n === 1 ? one : many}`;

const isDraining = (it) => it.drainingTo !== undefined;
const count = (key) => (it) => fmtNumber(Number(it.counts[key]) || 0);

// A queue the node holds: placed there, or draining there (drainingTo: where it is placed now).
const QUEUE_COLUMNS = [
  { title: 'Queue', cell: (it) => [
    h('a', { href: `#/tasks?queue=${encodeURIComponent(it.q)}`, class: 'queue-name', text: it.q }),
    isDraining(it) ? [' ', h('span', { class: 'badge badge-draining', text: 'draining' }),
      h('div', { class: 'muted small drain-note', text: `placed on ${it.drainingTo || 'another node'}; workers finish these here` })] : null] },
  { title: 'Pending', class: 'num', td: 'num strong', cell: count('pending') },
  { title: 'Scheduled', class: 'num', cell: count('scheduled') },
  { title: 'Running', class: 'num', cell: count('running') },
];

export function mount(main) {
  const summary = h('p', { class: 'subtitle', id: 'nodes-summary' });
  const list = h('div', { class: 'stack nodes', id: 'nodes' });
  const cards = new Map(); // node name -> its card (kept across refreshes)

  function card(name) {
    const badges = h('span', { class: 'node-badges' });
    const latency = h('dd', { class: 'mono', dataset: { fact: 'latency' }, text: '—' });
    const placed = h('dd', { dataset: { fact: 'placed' }, text: '0' });
    const drains = h('dd', { dataset: { fact: 'draining' }, text: '0' });
    const note = h('p', { class: 'node-down', role: 'alert', hidden: true });
    const table = tableView({
      class: 'node-queues',
      columns: QUEUE_COLUMNS,
      key: (it) => `${isDraining(it) ? 'd' : 'p'}:${it.q}`,
      row: (it) => ({ class: isDraining(it) ? 'row-draining' : '', dataset: { queue: it.q, draining: String(isDraining(it)) } }),
    });
    const el = h('section', { class: 'panel node', dataset: { node: name } },
      h('div', { class: 'panel-head' },
        h('div', { class: 'title-row' }, h('h2', { class: 'panel-title node-name mono', text: name }), badges),
        h('dl', { class: 'node-facts' },
          h('div', {}, h('dt', { text: 'Latency' }), latency),
          h('div', {}, h('dt', { text: 'Queues placed' }), placed),
          h('div', {}, h('dt', { text: 'Draining' }), drains))),
      note, table.el);
    return { el, badges, badgeSig: null, latency, placed, draining: drains, note, table };
  }

  // Where the ring places a queue: a node listing it, else the stream's
  // queue figures (their `nodes` start with the ring node).
  function placement(nodes) {
    const where = new Map();
    for (const q of live.state.stats?.queues || []) {
      if (Array.isArray(q.nodes) && q.nodes.length) where.set(String(q.name), String(q.nodes[0]));
    }
    for (const n of nodes) for (const q of n.queues || []) where.set(String(q), String(n.name));
    return where;
  }

  function update(c, n, where) {
    const reachable = Boolean(n.reachable);
    const queues = Array.isArray(n.queues) ? n.queues : [];
    const drains = Array.isArray(n.draining) ? n.draining : [];
    const counts = n.live && typeof n.live === 'object' ? n.live : {};
    c.el.dataset.reachable = String(reachable);
    c.el.classList.toggle('node-unreachable', !reachable);
    const sig = `${Boolean(n.home)}/${reachable}`;
    if (sig !== c.badgeSig) {
      c.badgeSig = sig;
      fill(c.badges,
        n.home ? h('span', { class: 'badge badge-home', text: 'home',
          title: 'The first node listed: the worker registry, cron fire markers and limits live here' }) : null,
        reachable
          ? h('span', { class: 'badge badge-reachable', text: 'reachable' })
          : h('span', { class: 'badge badge-unreachable', text: 'unreachable' }));
    }
    setText(c.latency, reachable ? fmtLatency(n.latency_ms) : '—');
    setText(c.placed, reachable ? fmtNumber(queues.length) : '—');
    setText(c.draining, reachable ? fmtNumber(drains.length) : '—');
    c.note.hidden = reachable;
    setText(c.note, reachable ? '' : 'This node does not answer. The queues placed on it and their counts are unknown until it is back.');
    if (!reachable) {
      c.table.show([], 'Unknown while the node does not answer.');
      return;
    }
    c.table.show([
      ...queues.map((q) => ({ q: String(q), counts: counts[q] || {} })),
      ...drains.map((q) => {
        const to = where.get(String(q));
        return { q: String(q), counts: counts[q] || {}, drainingTo: to && to !== n.name ? to : '' };
      }),
    ], 'No queue is placed on this node yet.');
  }

  function show(nodes) {
    const where = placement(nodes);
    const next = new Map();
    const els = nodes.map((n) => {
      const name = String(n.name);
      const c = cards.get(name) || card(name);
      next.set(name, c);
      update(c, n, where);
      return c.el;
    });
    cards.clear();
    for (const [k, v] of next) cards.set(k, v);
    const current = list.children;
    if (current.length !== els.length || els.some((el, i) => current[i] !== el)) list.replaceChildren(...els);

    const down = nodes.filter((n) => !n.reachable).length;
    if (nodes.length === 1) {
      setText(summary, down
        ? 'One store node, and it does not answer.'
        : 'One store node: every queue lives here. Pass several comma-separated --store URLs to spread queues over nodes.');
    } else {
      const queues = nodes.reduce((a, n) => a + (Array.isArray(n.queues) ? n.queues.length : 0), 0);
      setText(summary, `${plural(nodes.length, 'node', 'nodes')} · ${fmtNumber(nodes.length - down)} reachable`
        + `${down ? `, ${fmtNumber(down)} unreachable` : ''} · ${plural(queues, 'queue', 'queues')} placed`);
    }
    summary.classList.toggle('stale-text', down > 0);
  }

  const page = listPage(() => get('/api/nodes'), (out) => show(Array.isArray(out.nodes) ? out.nodes : []));
  fill(main,
    pageHeader('Nodes', 'Store nodes; each queue is placed on one node by consistent hashing'),
    summary, page.errorSlot, list);
  page.every(EVERY_MS, page.refresh);
  return page.start();
}
