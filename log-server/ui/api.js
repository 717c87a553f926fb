// Talking to the log server: every data call sends "Authorization: Bearer TOKEN" once the
// user gave one. The token is asked for when a call answers 401, kept in sessionStorage (this
// tab only), never put in a URL.
import { h } from './dom.js';

const TOKEN_KEY = 'logging-proxy.token';

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function setToken(token) {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage disabled: the token lives until reload
  }
  memoryToken = token;
}

let memoryToken = '';
const token = () => getToken() || memoryToken;

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// One prompt at a time, shared by every call that got a 401.
let pendingPrompt = null;

function askToken(wrong) {
  if (pendingPrompt) return pendingPrompt;
  pendingPrompt = new Promise((resolve) => {
    const input = h('input', {
      type: 'password', id: 'token-input', autocomplete: 'off', required: true,
      placeholder: 'LOG_SERVER_TOKEN', 'aria-label': 'bearer token',
    });
    const form = h('form', { class: 'token-form', id: 'token-form' },
      h('h2', { text: 'This log server needs a token' }),
      h('p', {}, 'Enter the log server\'s ', h('code', { text: 'auth_token' }),
        ' (LOG_SERVER_TOKEN). It is kept for this tab only and sent as ',
        h('code', { text: 'Authorization: Bearer …' }), '.'),
      wrong ? h('p', { class: 'error', text: 'That token was refused.' }) : null,
      input,
      h('button', { type: 'submit', text: 'Use token' }));
    const overlay = h('div', { class: 'overlay', role: 'dialog', 'aria-modal': 'true' }, form);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      setToken(value);
      overlay.remove();
      pendingPrompt = null;
      resolve();
    });
    document.body.appendChild(overlay);
    input.focus();
  });
  return pendingPrompt;
}

function headers(extra) {
  const out = { ...(extra || {}) };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

// A query string from an object; empty values are left out (except where `keepEmpty`).
export function query(params, keepEmpty = []) {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    if (v === '' && !keepEmpty.includes(k)) continue;
    sp.append(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : '';
}

export function idPath(id, suffix = '') {
  return `/requests/${encodeURIComponent(id)}${suffix}`;
}

// fetch() with the token; a 401 asks for the token and tries again.
export async function request(path, opts = {}) {
  let wrong = false;
  for (;;) {
    const res = await fetch(path, { ...opts, headers: headers(opts.headers) });
    if (res.status !== 401) return res;
    await askToken(wrong || !!token());
    wrong = true;
  }
}

async function errorOf(res) {
  let message = `${res.status} ${res.statusText}`;
  let body = null;
  try {
    body = await res.json();
    if (body && typeof body.error === 'string') {
      message = `${res.status}: ${body.error}` + (body.parameter ? ` (parameter ${body.parameter})` : '');
    }
  } catch {
    // not JSON
  }
  return new ApiError(res.status, message, body);
}

export async function getJson(path, opts) {
  const res = await request(path, opts);
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

// The body as text plus its content type; a non-2xx answer throws.
export async function getText(path, opts) {
  const res = await request(path, opts);
  if (!res.ok) throw await errorOf(res);
  return { type: res.headers.get('Content-Type') || '', text: await res.text() };
}

// A download link to an API path. Without a token it is a plain link (the server's
// Content-Disposition or the download attribute names the file); with one, a click fetches
// the bytes with the header and saves them as a blob.
export function downloadLink(path, filename, label) {
  const a = h('a', { href: path, download: filename, class: 'download', text: label });
  a.addEventListener('click', async (ev) => {
    if (!token()) return;
    ev.preventDefault();
    try {
      const res = await request(path);
      if (!res.ok) throw await errorOf(res);
      const url = URL.createObjectURL(await res.blob());
      const tmp = document.createElement('a');
      tmp.href = url;
      tmp.download = filename;
      document.body.appendChild(tmp);
      tmp.click();
      tmp.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      a.after(h('span', { class: 'error', text: ` download failed: ${err.message}` }));
    }
  });
  return a;
}

// A catch-up stops after this many rows: the feed keeps the newest 5,000 (feed.js MAX_ROWS).
const CATCH_UP_ROWS = 5000;
const CATCH_UP_PAGE = 500;
const MAX_OPEN = 10000;  // exchanges in progress remembered for a catch-up's horizon

// Follows GET /live (text/event-stream, "event: exchange" with a /requests item as data)
// through fetch, so the token header can be sent. onItem(item) per event; onState(state)
// with 'live' | 'polling' | 'reconnecting'. When /live answers 404 (an older server), polls
// /requests every 2 s instead, handing each item of the first page to onItem. After a
// reconnect the server resumes from Last-Event-ID when it still can; when it cannot (the
// events are gone from its ring, or it restarted), the exchanges of the gap are paged from
// /requests back to what was seen before it, at most CATCH_UP_ROWS, and handed on, oldest
// first, before the events that arrived meanwhile. Returns a stop function.
export function follow(filters, onItem, onState) {
  const controller = new AbortController();
  let stopped = false;
  let pollTimer = null;

  // The fallback's tick: one look at the newest page.
  const poll = async () => {
    if (stopped) return;
    try {
      const page = await getJson(`/requests${query({ ...filters, limit: 100 })}`,
                                 { signal: controller.signal });
      for (const item of page.requests.slice().reverse()) onItem(item);
      onState('polling');
    } catch (err) {
      if (stopped) return;
      onState('reconnecting');
    }
    if (!stopped) pollTimer = setTimeout(poll, 2000);
  };

  // What was handed on, to know where a catch-up can stop: the newest start seen, and the
  // exchanges seen in progress (their end may fall in the gap). Bounded: the oldest open ones
  // are forgotten past MAX_OPEN.
  let newestSeen = '';
  const open = new Map();  // id -> started_at
  const handOn = (item) => {
    if (item && typeof item.started_at === 'string') {
      if (item.started_at > newestSeen) newestSeen = item.started_at;
      open.delete(item.id);
      if (item.outcome === 'in_progress') {
        open.set(item.id, item.started_at);
        if (open.size > MAX_OPEN) open.delete(open.keys().next().value);
      }
    }
    onItem(item);
  };
  let held = null;  // while catching up: the stream's items, handed on after it
  const deliver = (item) => (held ? held.push(item) : handOn(item));

  // Pages /requests from the newest back until a page reaches the horizon (the newest start
  // seen, or an older exchange then in progress) and hands the rows on, oldest first; then
  // what the stream brought meanwhile, so an event newer than a page wins. A drop during it
  // runs it once more. A failed page ends it early: the feed shows what it got.
  let again = false;
  const catchUp = async () => {
    if (held) {
      again = true;
      return;
    }
    held = [];
    do {
      again = false;
      let horizon = newestSeen;
      for (const started of open.values()) if (started < horizon) horizon = started;
      const pages = [];
      try {
        let cursor;
        let rows = 0;
        while (!stopped && rows < CATCH_UP_ROWS) {
          const page = await getJson(
            `/requests${query({ ...filters, limit: CATCH_UP_PAGE, cursor })}`,
            { signal: controller.signal });
          pages.push(page.requests);
          rows += page.requests.length;
          const oldest = page.requests[page.requests.length - 1];
          if (!page.next_cursor || !oldest || !horizon || oldest.started_at <= horizon) break;
          cursor = page.next_cursor;
        }
      } catch {
        // shown as far as it got
      }
      if (stopped) return;
      for (const page of pages.reverse()) for (const item of page.slice().reverse()) handOn(item);
    } while (again);
    const later = held;
    held = null;
    for (const item of later) handOn(item);
  };

  let lastId = '';
  let attempt = 0;
  const stream = async () => {
    while (!stopped) {
      const reconnect = attempt++ > 0;
      const resumeFrom = lastId;
      try {
        const res = await request(`/live${query(filters)}`,
                                  { signal: controller.signal,
                                    headers: { Accept: 'text/event-stream',
                                               ...(resumeFrom ? { 'Last-Event-ID': resumeFrom } : {}) } });
        if (res.status === 404) {
          pollTimer = setTimeout(poll, 0);
          return;
        }
        if (!res.ok || !res.body) throw new Error(`live: ${res.status}`);
        onState('live');
        // Without an id to resume from, the gap is unknown: catch up. With one, the server's
        // first line says whether it resumed (": live") or not (": live; missed events ...").
        let first = true;
        if (reconnect && !resumeFrom) catchUp();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        let event = '';
        let data = [];
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          // Lines are cut by position and the rest is kept once per read: a read can hold
          // hundreds of events, and re-slicing the buffer per line would copy it per line.
          const lineEnd = /\r\n|\r|\n/g;
          let pos = 0;
          let m;
          while ((m = lineEnd.exec(buf)) !== null) {
            // A CR at the very end may be the first half of a CRLF still to come.
            if (m[0] === '\r' && m.index === buf.length - 1) break;
            const line = buf.slice(pos, m.index);
            pos = m.index + m[0].length;
            const firstLine = first;
            first = false;
            if (line === '') {
              if (data.length && (event === '' || event === 'exchange')) {
                let item;
                try {
                  item = JSON.parse(data.join('\n'));
                } catch {
                  // not JSON: skipped
                }
                if (item !== undefined) deliver(item);
              }
              event = '';
              data = [];
            } else if (line.startsWith(':')) {
              // comment / keep-alive
              if (firstLine && reconnect && resumeFrom && line.includes('missed events')) catchUp();
            } else {
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              let val = colon < 0 ? '' : line.slice(colon + 1);
              if (val.startsWith(' ')) val = val.slice(1);
              if (field === 'event') event = val;
              else if (field === 'id' && !val.includes('\0')) lastId = val;
              else if (field === 'data') data.push(val);
            }
          }
          buf = buf.slice(pos);
        }
      } catch (err) {
        if (stopped) return;
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, 2000));
    }
  };
  stream();
  return () => {
    stopped = true;
    clearTimeout(pollTimer);
    controller.abort();
  };
}
