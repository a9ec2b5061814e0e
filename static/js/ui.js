// Shared widgets: the token form, confirmation dialog, toasts, badges,
// panels and the page header. All text goes in as text.

import { h, fill, shortId } from './dom.js';

/** A modal <dialog> built from `content`; resolves with what `done` gets. */
function modal(build) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'modal' });
    const finish = (value) => {
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    dlg.addEventListener('cancel', (ev) => {
      ev.preventDefault();
      finish(null);
    });
    fill(dlg, build(finish));
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector('[autofocus], input, button.btn-primary, button.btn-danger');
    if (first) first.focus();
  });
}

/** The token form. Resolves with the token, or null when dismissed. */
export function askToken(refused) {
  return modal((finish) => {
    const input = h('input', {
      type: 'password', name: 'token', id: 'token-input', autocomplete: 'off',
      spellcheck: 'false', required: true, autofocus: true,
    });
    const form = h('form', { class: 'token-form', method: 'dialog' },
      h('h2', { text: 'API token' }),
      h('p', { text: 'This Nexq server needs an API token. It is kept in this tab only (sessionStorage) and sent as a bearer token.' }),
      refused ? h('p', { class: 'form-error', role: 'alert', text: 'That token was refused. Check it and try again.' }) : null,
      h('label', { for: 'token-input', text: 'Token' }),
      input,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', text: 'Cancel', on: { click: () => finish(null) } }),
        h('button', { type: 'submit', class: 'btn btn-primary', text: 'Use token' })));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (token) finish(token);
    });
    return form;
  });
}

/** Ask before a destructive action; resolves true to go ahead. */
export function confirmAction(title, message, okLabel = 'Confirm', danger = false) {
  return modal((finish) => {
    const form = h('form', { method: 'dialog', class: 'confirm-form' },
      h('h2', { text: title }),
      h('p', { text: message }),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', text: 'Cancel', on: { click: () => finish(false) } }),
        h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary', text: okLabel })));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      finish(true);
    });
    return form;
  }).then(Boolean);
}

/** A short message at the bottom of the screen. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: `toast toast-${kind}`, text: message });
  box.append(el);
  setTimeout(() => el.classList.add('toast-out'), 3500);
  setTimeout(() => el.remove(), 4000);
}

export const STATUSES = ['waiting', 'scheduled', 'pending', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'];
/** The statuses a task does not leave by itself. */
export const TERMINAL = new Set(['succeeded', 'dead', 'cancelled']);

export function statusBadge(status) {
  const s = String(status ?? 'unknown');
  const known = STATUSES.includes(s) || ['failed', 'lost', 'timeout', 'handed_back', 'deferred', 'live', 'stale', 'paused', 'active', 'stopping'].includes(s);
  return h('span', { class: `badge badge-${known ? s : 'unknown'}`, text: s });
}

/** A page title row with optional actions on the right. */
export function pageHeader(title, subtitle, ...actions) {
  return h('div', { class: 'page-header' },
    h('div', {},
      h('h1', { text: title }),
      subtitle ? h('p', { class: 'subtitle', text: subtitle }) : null),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

export function panel(title, ...body) {
  return h('section', { class: 'panel' },
    title ? h('h2', { class: 'panel-title', text: title }) : null,
    body);
}

/** An error line for a failed load; the message is the API's, as text. */
export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', { text: err && err.status === 404 ? 'Not found. ' : 'Something went wrong. ' }),
    h('span', { text: msg }),
    err && err.status === 401 ? h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'token' }, text: 'Enter token' }) : null);
}

/** The dashboard route of a task. */
export const taskHref = (id) => `#/tasks/${encodeURIComponent(id)}`;

/** A task id linking to its page: whole, or shortened where the CSS hides the whole. */
export function taskIdLink(id) {
  return h('a', { href: taskHref(id), title: String(id) },
    h('span', { class: 'id-full', text: id }), h('span', { class: 'id-short', text: shortId(id) }));
}

/** Run an action from a button: disable it meanwhile, toast the outcome. */
export async function runAction(button, fn, success) {
  if (button) button.disabled = true;
  try {
    const out = await fn();
    if (success) toast(typeof success === 'function' ? success(out) : success, 'ok');
    return out;
  } catch (err) {
    toast(err && err.message ? err.message : String(err), 'error');
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
