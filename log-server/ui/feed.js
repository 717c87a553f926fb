// The feed (#/?filters): newest first, keyset paging on scroll, live updates from /live.
//
// A virtualised grid: the rows' data live in JS (`list`, newest first) and only the rows in
// view, plus OVERSCAN on each side, exist in the DOM, as fixed-height CSS grid rows in a
// scroller with `contain: strict`. A live update or a scroll is O(rows in view), not O(rows
// kept), whatever the arrival rate (1,000 exchanges/s and more).
//
// What is kept: while the view is at the top (following live), the newest MAX_ROWS rows;
// older ones are dropped and come back by paging (the next page starts after the oldest row
// kept). Scrolling down pages older rows in (PAGE at a time) without a limit: what the user
// asked for stays until they return to the top. While scrolled down, new arrivals are held
// back (at most MAX_ROWS, the newest) so that the rows being read never move; a "N new"
// button shows them (so does scrolling back to the top).
import { h, replace, clear } from './dom.js';
import { follow, getJson, query } from './api.js';
import { fmtCost, fmtMs, fmtTime, shortId, tokens } from './format.js';

export const FILTERS = ['route', 'method', 'model', 'provider', 'status', 'outcome', 'since',
                        'until', 'q'];
const OUTCOMES = ['', 'complete', 'in_progress', 'client_aborted', 'upstream_error', 'truncated'];
const MAX_ROWS = 5000;     // rows kept while following live (see above)
const FLUSH_MS = 250;      // live rows are applied at most four times a second
const HIGHLIGHT_MAX = 20;  // a larger arrival is shown without the highlight animation
const HIGHLIGHT_MS = 2000; // as long as the `fresh` animation in app.css
const PAGE = 100;
const ROW_H = 26;          // px, as .feed-row in app.css (fixed: the grid is virtualised)
const OVERSCAN = 8;        // rows rendered beyond each edge of the view
const AT_TOP_PX = 4;       // "at the top": new arrivals go straight in

const COLUMNS = [
  ['time', 'Time'], ['id', 'ID'], ['method', 'Method'], ['path', 'Path'], ['route', 'Route'],
  ['model', 'Model'], ['status', 'Status'], ['outcome', 'Outcome'], ['duration', 'Duration'],
  ['ttft', 'TTFT'], ['tokens', 'Tokens in/out'], ['cost', 'Cost'],
];
const CELL_CLASS = ['c-time', 'c-id mono', 'c-method', 'c-path mono', 'c-route', 'c-model',
                    'c-status', 'c-outcome', 'c-num', 'c-num', 'c-num', 'c-num'];

function statusClass(item) {
  if (item.outcome === 'in_progress') return 'pending';
  if (item.outcome !== 'complete' || (item.status ?? 0) >= 400) return 'bad';
  return 'ok';
}

// The text of each cell (always plain text: set with textContent).
function cellTexts(item) {
  return [fmtTime(item.started_at), shortId(item.id), item.method ?? '', item.proxy_path ?? '',
          item.route ?? '', item.model ?? '', String(item.status ?? ''), item.outcome ?? '',
          fmtMs(item.durations?.total_ms), fmtMs(item.ttft_ms),
          tokens(item.input_tokens, item.output_tokens), fmtCost(item.cost)];
}

// Newest first, as GET /requests pages: by start time, then id, both descending.
// (started_at is fixed-width RFC 3339 in UTC, so strings compare as times.)
function newerFirst(a, b) {
  if (a.started_at !== b.started_at) return a.started_at < b.started_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

// The filters of a hash query ("route=a&q=b"): only known names, non-empty values.
export function filtersOf(params) {
  const out = {};
  for (const name of FILTERS) {
    const v = params.get(name);
    if (v !== null && v !== '') out[name] = v;
  }
  return out;
}

function filterForm(filters, onApply) {
  const field = (name, label, attrs = {}) => h('label', { class: 'filter' },
    h('span', { text: label }),
    h('input', { name, value: filters[name] ?? '', autocomplete: 'off', ...attrs }));
  const outcome = h('select', { name: 'outcome' },
    OUTCOMES.map((o) => h('option', { value: o, text: o || 'any', selected: filters.outcome === o })));
  const range = h('select', { name: 'range', title: 'sets "since" relative to now' },
    [['', 'time…'], ['15', 'last 15 min'], ['60', 'last hour'], ['1440', 'last 24 h'],
     ['10080', 'last 7 days']].map(([v, t]) => h('option', { value: v, text: t })));
  const form = h('form', { class: 'filters', id: 'filters' },
    field('q', 'Path contains', { type: 'search', placeholder: '/v1/chat', class: 'wide' }),
    field('route', 'Route'),
    field('model', 'Model'),
    field('provider', 'Provider', { list: 'providers' }),
    h('datalist', { id: 'providers' },
      ['openai', 'anthropic', 'openrouter', 'gemini', 'openai-compatible']
        .map((p) => h('option', { value: p }))),
    field('method', 'Method', { size: 6 }),
    field('status', 'Status', { size: 4, inputmode: 'numeric' }),
    h('label', { class: 'filter' }, h('span', { text: 'Outcome' }), outcome),
    field('since', 'Since (RFC 3339)', { placeholder: '2025-09-13T00:00:00Z' }),
    field('until', 'Until', { placeholder: 'now' }),
    h('label', { class: 'filter' }, h('span', { text: 'Range' }), range),
    h('button', { type: 'submit', text: 'Apply' }),
    h('button', { type: 'button', class: 'secondary', text: 'Clear',
                  onclick: () => onApply({}) }));
  range.addEventListener('change', () => {
    if (!range.value) return;
    const since = new Date(Date.now() - Number(range.value) * 60000);
    form.elements.since.value = since.toISOString().replace(/\.\d+Z$/, 'Z');
    form.elements.until.value = '';
    form.requestSubmit();
  });
  outcome.addEventListener('change', () => form.requestSubmit());
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = {};
    for (const name of FILTERS) {
      const v = form.elements[name]?.value?.trim();
      if (v) next[name] = v;
    }
    onApply(next);
  });
  return form;
}

export function renderFeed(main, params, ctx) {
  const filters = filtersOf(params);
  const apply = (next) => { location.hash = `#/${query(next)}`; };
  const status = h('p', { class: 'feed-status', role: 'status' });
  const newButton = h('button', { type: 'button', class: 'new-rows', id: 'feed-new', hidden: true,
                                  title: 'show the newest captures' });
  const rowsEl = h('div', { class: 'feed-rows', role: 'rowgroup' });
  const body = h('div', { class: 'feed-body' }, rowsEl);
  const grid = h('div', { class: 'feed', id: 'feed', role: 'grid', tabindex: '0',
                          'aria-label': 'Captured requests, newest first',
                          'aria-rowcount': '-1', 'aria-colcount': String(COLUMNS.length),
                          dataset: { rows: '0' } },
    h('div', { class: 'feed-head', role: 'rowgroup' },
      h('div', { class: 'feed-row', role: 'row', 'aria-rowindex': '1' },
        COLUMNS.map(([k, t]) => h('div', { class: `h-${k}`, role: 'columnheader', text: t })))),
    body);
  replace(main, h('div', { class: 'feed-page' }, filterForm(filters, apply),
                  h('div', { class: 'feed-bar' }, status),
                  h('div', { class: 'feed-frame' }, grid, newButton)));
  main.classList.add('feed-main');

  let list = [];             // records {item, v}, newest first
  const byId = new Map();    // id -> record in `list`
  let held = new Map();      // id -> item: arrivals held back while scrolled down
  let heldOverflow = false;  // held dropped some (the list then restarts from held)
  let cursor = null;
  let loading = false;
  let exhausted = false;
  let trimmed = false;       // rows were dropped and no cursor could be made: paging stops
  let failed = false;
  let pageGen = 0;           // a page fetched before the list was cut is not appended
  let selectedId = null;
  const dayStart = new Date().setHours(0, 0, 0, 0);

  const rendered = new Map();  // id -> row element in the DOM
  const pool = [];             // row elements out of the DOM, for reuse
  let shownHeight = -1;
  let shownFirst = -1;

  const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };

  const showStatus = () => {
    if (failed) return;
    let text = '';
    if (!list.length && loading) text = 'Loading…';
    else if (!list.length) {
      text = Object.keys(filters).length
        ? 'No captures match these filters.'
        : 'No captures yet. Requests through logging-proxy appear here as they happen.';
    } else if (trimmed) {
      text = `Showing the newest ${MAX_ROWS.toLocaleString('en-US')} rows; ` +
             'narrow the filters to see older ones.';
    } else if (exhausted) text = `${list.length.toLocaleString('en-US')} captures, no more.`;
    else if (loading) text = 'Loading older captures…';
    setText(status, text);
    const n = held.size;
    newButton.hidden = n === 0;
    if (n) {
      setText(newButton, `↑ ${n.toLocaleString('en-US')}${heldOverflow ? '+' : ''} new`);
    }
  };

  // --- rows in the DOM ---------------------------------------------------------------------

  const makeRowEl = () => {
    const link = h('a', { href: '#/' });
    return h('div', { class: 'feed-row', role: 'row', tabindex: '-1' },
      CELL_CLASS.map((c, i) => h('div', { class: c, role: 'gridcell' }, i === 1 ? link : null)));
  };

  const fill = (el, rec) => {
    const item = rec.item;
    el.dataset.id = item.id;
    el.rec = rec;
    el.v = rec.v;
    const texts = cellTexts(item);
    const cells = el.children;
    const sc = statusClass(item);
    for (let i = 0; i < texts.length; i++) {
      if (i === 1) {
        const a = cells[1].firstChild;
        setText(a, texts[1]);
        const href = `#/requests/${encodeURIComponent(item.id)}`;
        if (a.getAttribute('href') !== href) a.setAttribute('href', href);
      } else {
        setText(cells[i], texts[i]);
      }
    }
    const titles = [[0, item.started_at], [3, item.proxy_path], [5, item.provider]];
    for (const [i, t] of titles) if (cells[i].title !== (t ?? '')) cells[i].title = t ?? '';
    const sClass = `c-status ${sc}`;
    if (cells[6].className !== sClass) cells[6].className = sClass;
    const oClass = `c-outcome ${sc}`;
    if (cells[7].className !== oClass) cells[7].className = oClass;
  };

  // The rows in view (+ overscan) in the DOM, in order; everything else only in `list`.
  // Geometry is read first, before any write, so that a render costs one layout (the frame's).
  const render = () => {
    const top = grid.scrollTop;
    const viewHeight = grid.clientHeight;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(list.length, Math.ceil((top + viewHeight) / ROW_H) + OVERSCAN);
    const height = list.length * ROW_H;
    if (height !== shownHeight) {
      body.style.height = `${height}px`;
      shownHeight = height;
    }
    grid.dataset.rows = String(list.length);
    const count = exhausted && !trimmed ? String(list.length + 1) : '-1';
    if (grid.getAttribute('aria-rowcount') !== count) grid.setAttribute('aria-rowcount', count);
    if (first !== shownFirst) {
      rowsEl.style.transform = `translateY(${first * ROW_H}px)`;
      shownFirst = first;
    }
    const now = performance.now();
    const place = (el, rec, i) => {
      if (el.rec !== rec || el.v !== rec.v) fill(el, rec);
      el.classList.toggle('fresh', rec.freshUntil > now);
      const index = String(i + 2);
      if (el.getAttribute('aria-rowindex') !== index) el.setAttribute('aria-rowindex', index);
      const sel = rec.item.id === selectedId;
      if (el.classList.contains('selected') !== sel) {
        el.classList.toggle('selected', sel);
        el.setAttribute('aria-selected', String(sel));
      }
    };
    let overlap = false;
    for (let i = first; i < last && !overlap; i++) overlap = rendered.has(list[i].item.id);
    if (!overlap) {
      // Nothing in view was in view before (a burst of arrivals at the top, a jump): the row
      // elements are refilled where they are, without leaving the DOM.
      rendered.clear();
      let el = rowsEl.firstElementChild;
      for (let i = first; i < last; i++) {
        const rec = list[i];
        if (!el) {
          el = pool.pop() ?? makeRowEl();
          rowsEl.appendChild(el);
        }
        if (el.rec !== rec) el.classList.remove('fresh');
        place(el, rec, i);
        rendered.set(rec.item.id, el);
        el = el.nextElementSibling;
      }
      while (el) {
        const gone = el;
        el = el.nextElementSibling;
        gone.remove();
        gone.rec = null;
        pool.push(gone);
      }
    } else {
      // Keyed: rows that stay keep their element (and their highlight), the rest come and go.
      const want = new Set();
      for (let i = first; i < last; i++) want.add(list[i].item.id);
      for (const [id, el] of rendered) {
        if (want.has(id)) continue;
        el.remove();
        el.classList.remove('fresh');
        el.rec = null;
        rendered.delete(id);
        pool.push(el);
      }
      let next = rowsEl.firstElementChild;
      for (let i = first; i < last; i++) {
        const rec = list[i];
        let el = rendered.get(rec.item.id);
        if (!el) {
          el = pool.pop() ?? makeRowEl();
          rendered.set(rec.item.id, el);
          rowsEl.insertBefore(el, next);
        } else if (el === next) {
          next = next.nextElementSibling;
        } else {
          rowsEl.insertBefore(el, next);
        }
        place(el, rec, i);
      }
    }
    // Near the end: the next page.
    if (last >= list.length - OVERSCAN && !exhausted && !loading && !failed && !trimmed) {
      queueMicrotask(loadMore);
    }
  };

  // --- the data ------------------------------------------------------------------------------

  // Drops the oldest rows beyond MAX_ROWS; paging resumes after the oldest row kept.
  const trim = () => {
    if (list.length <= MAX_ROWS) return;
    for (const rec of list.splice(MAX_ROWS)) byId.delete(rec.item.id);
    pageGen++;
    loading = false;
    const c = list[list.length - 1].item.cursor ?? null;
    if (c) {
      cursor = c;
      exhausted = false;
    } else {
      trimmed = true;
    }
  };

  // Merges items (each sorted newest first or not) into `list`. `live`: an item older than
  // the oldest row kept is left to paging, unless everything is loaded.
  const mergeIn = (items, { live = false, highlight = false } = {}) => {
    const fresh = [];
    const until = performance.now() + HIGHLIGHT_MS;
    const oldest = list.length ? list[list.length - 1].item : null;
    for (const item of items) {
      const known = byId.get(item.id);
      if (known) {
        known.item = { ...known.item, ...item };
        known.v++;
        continue;
      }
      if (live && oldest && !exhausted && newerFirst(item, oldest) > 0) continue;
      const rec = { item, v: 0 };
      if (highlight) rec.freshUntil = until;
      byId.set(item.id, rec);
      fresh.push(rec);
      if (Date.parse(item.started_at) < dayStart) grid.classList.add('wide-time');
    }
    if (!fresh.length) return 0;
    fresh.sort((a, b) => newerFirst(a.item, b.item));
    if (!list.length || newerFirst(fresh[fresh.length - 1].item, list[0].item) <= 0) {
      list = fresh.concat(list);                      // the usual live case: all on top
    } else if (newerFirst(fresh[0].item, list[list.length - 1].item) >= 0) {
      for (const rec of fresh) list.push(rec);        // a page: all below
    } else {
      const out = new Array(list.length + fresh.length);
      let i = 0;
      let j = 0;
      let k = 0;
      while (i < list.length && j < fresh.length) {
        out[k++] = newerFirst(list[i].item, fresh[j].item) <= 0 ? list[i++] : fresh[j++];
      }
      while (i < list.length) out[k++] = list[i++];
      while (j < fresh.length) out[k++] = fresh[j++];
      list = out;
    }
    return fresh.length;
  };

  const atTop = () => grid.scrollTop <= AT_TOP_PX;

  // The held arrivals go in (the view is, or is about to be, at the top).
  const releaseHeld = () => {
    if (!held.size) return;
    const items = [...held.values()];
    held = new Map();
    if (heldOverflow) {
      // Rows between the list and what was held were dropped: start over from the held ones.
      heldOverflow = false;
      list = [];
      byId.clear();
      pageGen++;
      loading = false;
      exhausted = false;
      mergeIn(items);
      const c = list[list.length - 1].item.cursor ?? null;
      if (c) cursor = c;
      else trimmed = true;
    } else {
      mergeIn(items, { live: true, highlight: items.length <= HIGHLIGHT_MAX });
    }
    trim();
  };

  const loadMore = async () => {
    if (loading || exhausted || trimmed || failed) return;
    loading = true;
    const gen = pageGen;
    showStatus();
    try {
      const page = await getJson(`/requests${query({ ...filters, limit: PAGE, cursor })}`);
      if (ctx.stale() || gen !== pageGen) return;
      mergeIn(page.requests);
      cursor = page.next_cursor;
      exhausted = !cursor;
      loading = false;
      if (pending.size && timer) {
        clearTimeout(timer);
        timer = 0;
      }
      if (pending.size && !frame) frame = requestAnimationFrame(flush);
    } catch (err) {
      if (ctx.stale() || gen !== pageGen) return;
      failed = true;
      loading = false;
      status.textContent = `Could not load captures: ${err.message}`;
      status.classList.add('error');
    }
    render();  // fills the view, and asks for the next page while the end is in view
    showStatus();
  };

  // --- live updates ------------------------------------------------------------------------

  // Applied in one pass per animation frame, and at most every FLUSH_MS. At the top, new rows
  // go in (the oldest beyond MAX_ROWS are dropped); scrolled down, they are held so that the
  // rows being read stay where they are, while rows in the list are updated in place.
  let pending = new Map();
  let frame = 0;   // requestAnimationFrame, or (waiting for FLUSH_MS) setTimeout
  let timer = 0;
  let lastFlush = 0;
  const flush = (now) => {
    frame = 0;
    // Before the first page, arrivals wait: an update of an older exchange is left to paging.
    const wait = !list.length && loading ? FLUSH_MS : FLUSH_MS - (now - lastFlush);
    if (wait > 0) {
      timer = setTimeout(() => {
        timer = 0;
        frame = requestAnimationFrame(flush);
      }, wait);
      return;
    }
    lastFlush = now;
    const batch = [...pending.values()];
    pending = new Map();
    if (atTop()) {
      releaseHeld();
      const newCount = batch.reduce((n, item) => n + (byId.has(item.id) ? 0 : 1), 0);
      mergeIn(batch, { live: true, highlight: newCount <= HIGHLIGHT_MAX });
      trim();
    } else {
      const known = [];
      for (const item of batch) {
        if (byId.has(item.id)) known.push(item);
        else if (held.has(item.id)) held.set(item.id, { ...held.get(item.id), ...item });
        else held.set(item.id, item);
      }
      mergeIn(known);
      for (const id of held.keys()) {
        if (held.size <= MAX_ROWS) break;
        held.delete(id);  // the first held is about the oldest
        heldOverflow = true;
      }
    }
    render();
    showStatus();
  };
  const stopLive = follow(filters, (item) => {
    if (!item || typeof item.id !== 'string') return;
    const before = pending.get(item.id);
    pending.set(item.id, before ? { ...before, ...item } : item);
    if (!frame && !timer) frame = requestAnimationFrame(flush);
  }, ctx.setLive);

  const toTop = () => {
    releaseHeld();
    grid.scrollTop = 0;
    render();
    showStatus();
  };
  newButton.addEventListener('click', () => {
    toTop();
    grid.focus({ preventScroll: true });
  });

  grid.addEventListener('scroll', () => {
    const release = held.size && atTop();
    if (release) releaseHeld();
    render();
    if (release) showStatus();
  }, { passive: true });
  const resize = new ResizeObserver(() => render());
  resize.observe(grid);

  rowsEl.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    const row = ev.target.closest('.feed-row');
    if (row?.dataset.id) location.hash = `#/requests/${encodeURIComponent(row.dataset.id)}`;
  });

  // --- keyboard ------------------------------------------------------------------------------

  const select = (index) => {
    if (!list.length) return;
    index = Math.max(0, Math.min(list.length - 1, index));
    selectedId = list[index].item.id;
    // Into view, below the sticky header.
    const head = grid.firstChild.offsetHeight;
    const top = index * ROW_H;
    if (top < grid.scrollTop) grid.scrollTop = top;
    else if (top + ROW_H + head > grid.scrollTop + grid.clientHeight) {
      grid.scrollTop = top + ROW_H + head - grid.clientHeight;
    }
    render();
    rendered.get(selectedId)?.focus({ preventScroll: true });
  };
  const selectedIndex = () => {
    if (selectedId === null) return -1;
    const rec = byId.get(selectedId);
    return rec ? list.indexOf(rec) : -1;
  };

  const onKey = (ev) => {
    if (ev.target.closest('input, select, textarea, button') || ev.metaKey || ev.ctrlKey ||
        ev.altKey) return;
    if (ev.key === 'j' || ev.key === 'ArrowDown') {
      select(selectedIndex() + 1);
      ev.preventDefault();
    } else if (ev.key === 'k' || ev.key === 'ArrowUp') {
      const i = selectedIndex();
      select(i < 0 ? 0 : i - 1);
      ev.preventDefault();
    } else if (ev.key === 'Enter' && selectedIndex() >= 0) {
      location.hash = `#/requests/${encodeURIComponent(selectedId)}`;
    } else if (ev.key === '/') {
      document.querySelector('#filters input[name=q]')?.focus();
      ev.preventDefault();
    }
  };
  document.addEventListener('keydown', onKey);

  loadMore();
  return () => {
    stopLive();
    resize.disconnect();
    document.removeEventListener('keydown', onKey);
    if (frame) cancelAnimationFrame(frame);
    clearTimeout(timer);
    main.classList.remove('feed-main');
    clear(main);
  };
}
