// Nexq dashboard: hash routing, the connection indicator and the token button.
// Each view module exports mount(main, route) and returns a cleanup function.

import { getToken, setToken, onTokenChange, needToken } from './js/api.js';
import { h, fill, tickRelativeTimes } from './js/dom.js';
import * as live from './js/live.js';
import { errorBox } from './js/ui.js';
import * as overview from './js/views/overview.js';
import * as tasks from './js/views/tasks.js';
import * as task from './js/views/task.js';
import * as queues from './js/views/queues.js';
import * as workers from './js/views/workers.js';
import * as nodes from './js/views/nodes.js';
import * as dead from './js/views/dead.js';
import * as cron from './js/views/cron.js';
import * as types from './js/views/types.js';
import * as metrics from './js/views/metrics.js';
import * as newTask from './js/views/newtask.js';

const ROUTES = [
  { re: /^$/, nav: 'overview', title: 'Overview', view: overview },
  { re: /^tasks$/, nav: 'tasks', title: 'Tasks', view: tasks },
  { re: /^tasks\/(.+)$/, nav: 'tasks', title: 'Task', view: task },
  { re: /^queues$/, nav: 'queues', title: 'Queues', view: queues },
  { re: /^workers$/, nav: 'workers', title: 'Workers', view: workers },
  { re: /^nodes$/, nav: 'nodes', title: 'Nodes', view: nodes },
  { re: /^dead$/, nav: 'dead', title: 'Dead letters', view: dead },
  { re: /^cron$/, nav: 'cron', title: 'Cron', view: cron },
  { re: /^types$/, nav: 'types', title: 'Types', view: types },
  { re: /^metrics$/, nav: 'metrics', title: 'Metrics', view: metrics },
  { re: /^new$/, nav: 'new', title: 'New task', view: newTask },
];

const main = document.getElementById('main');
let cleanup = null;
let lastPath = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = (q < 0 ? raw : raw.slice(0, q)).replace(/\/+$/, '');
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return { path, params };
}

function render() {
  const { path, params } = parseHash();
  const route = ROUTES.find((r) => r.re.test(path));
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
    cleanup = null;
  }
  main.replaceChildren();
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', Boolean(route) && a.dataset.nav === route.nav);
    if (route && a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) {
    document.title = 'Not found · Nexq';
    fill(main, h('h1', { text: 'Page not found' }),
      h('p', {}, 'No dashboard page here. ', h('a', { href: '#/', text: 'Back to the overview' })));
    return;
  }
  document.title = `${route.title} · Nexq`;
  // Focus the page first, so a view may move focus to its own first field.
  if (path !== lastPath) main.focus({ preventScroll: true });
  lastPath = path;
  const match = path.match(route.re);
  try {
    cleanup = route.view.mount(main, { path, params, match }) || null;
  } catch (err) {
    console.error(err);
    fill(main, errorBox(err));
  }
}

// -- connection indicator --------------------------------------------------------

const conn = document.getElementById('conn');
let countdown = null;

function showConnection() {
  const { status, retryAt } = live.state.connection;
  clearInterval(countdown);
  const set = (cls, text) => {
    conn.className = `conn conn-${cls}`;
    conn.textContent = text;
  };
  if (status === 'live' && live.state.storeError) set('error', 'store unavailable');
  else if (status === 'live') set('live', 'live');
  else if (status === 'unauthorized') set('error', 'token needed');
  else if (status === 'reconnecting') {
    const tick = () => {
      const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      set('reconnecting', s > 0 ? `reconnecting in ${s} s` : 'reconnecting…');
    };
    tick();
    countdown = setInterval(tick, 500);
  } else set('connecting', 'connecting…');
  conn.title = live.state.storeError || '';
}

live.on('connection', showConnection);
live.on('store-error', showConnection);
live.on('stats', () => {
  if (conn.classList.contains('conn-error') && live.state.connection.status === 'live') showConnection();
});

// -- token ---------------------------------------------------------------------------

const forget = document.getElementById('forget-token');
forget.hidden = !getToken();
forget.addEventListener('click', () => {
  setToken(null);
  live.reconnect();
  render();
});
onTokenChange((has) => {
  forget.hidden = !has;
  // Requests waiting on the prompt retry by themselves; a page whose load
  // already failed for want of a token is shown again.
  if (has && main.querySelector('[data-action="token"]')) render();
});

// Error boxes for a 401 carry a button asking for the token again.
main.addEventListener('click', (ev) => {
  const btn = ev.target instanceof Element ? ev.target.closest('[data-action="token"]') : null;
  if (btn) needToken();
});

setInterval(() => tickRelativeTimes(main), 1000);
window.addEventListener('hashchange', render);
render();
live.start();
