// The feed (#/?filters): newest first, keyset paging on scroll, live updates from /live.
import { h, replace, clear } from './dom.js';
import { follow, getJson, query } from './api.js';
import { fmtCost, fmtMs, fmtTime, shortId, tokens } from './format.js';

export const FILTERS = ['route', 'method', 'model', 'provider', 'status', 'outcome', 'since',
                        'until', 'q'];
const OUTCOMES = ['', 'complete', 'in_progress', 'client_aborted', 'upstream_error', 'truncated'];
const MAX_ROWS = 500;  // rows kept on the page (the oldest are dropped): layout cost grows with them
const FLUSH_MS = 250;      // live rows are applied at most four times a second
const HIGHLIGHT_MAX = 20;  // a larger arrival is shown without the highlight animation
const PAGE = 100;

const COLUMNS = [
  ['time', 'Time'], ['id', 'ID'], ['method', 'Method'], ['path', 'Path'], ['route', 'Route'],
  ['model', 'Model'], ['status', 'Status'], ['outcome', 'Outcome'], ['duration', 'Duration'],
  ['ttft', 'TTFT'], ['tokens', 'Tokens in/out'], ['cost', 'Cost'],
];

function statusClass(item) {
  if (item.outcome === 'in_progress') return 'pending';
  if (item.outcome !== 'complete' || (item.status ?? 0) >= 400) return 'bad';
  return 'ok';
}

function cells(item) {
  const href = `#/requests/${encodeURIComponent(item.id)}`;
  return [
    h('td', { class: 'c-time', title: item.started_at, text: fmtTime(item.started_at) }),
    h('td', { class: 'c-id mono' }, h('a', { href, text: shortId(item.id) })),
    h('td', { class: 'c-method', text: item.method }),
    h('td', { class: 'c-path mono', title: item.proxy_path, text: item.proxy_path }),
    h('td', { class: 'c-route', text: item.route ?? '' }),
    h('td', { class: 'c-model', title: item.provider ?? '', text: item.model ?? '' }),
    h('td', { class: `c-status ${statusClass(item)}`, text: item.status ?? '' }),
    h('td', { class: `c-outcome ${statusClass(item)}`, text: item.outcome }),
    h('td', { class: 'c-num', text: fmtMs(item.durations?.total_ms) }),
    h('td', { class: 'c-num', text: fmtMs(item.ttft_ms) }),
    h('td', { class: 'c-num', text: tokens(item.input_tokens, item.output_tokens) }),
    h('td', { class: 'c-num', text: fmtCost(item.cost) }),
  ];
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
  const tbody = h('tbody');
  const status = h('p', { class: 'feed-status', role: 'status' });
  const sentinel = h('div', { class: 'sentinel' });
  const table = h('table', { class: 'feed', id: 'feed' },
    h('thead', {}, h('tr', {}, COLUMNS.map(([k, t]) => h('th', { class: `h-${k}`, text: t })))),
    tbody);
  replace(main, filterForm(filters, apply), h('div', { class: 'table-wrap' }, table), status,
          sentinel);

  const rows = new Map();  // id -> {tr, item}
  let cursor = null;
  let loading = false;
  let exhausted = false;
  let trimmed = false;
  let selected = -1;
  let failed = false;

  const showStatus = () => {
    if (failed) return;
    if (!rows.size && loading) status.textContent = 'Loading…';
    else if (!rows.size) {
      status.textContent = Object.keys(filters).length
        ? 'No captures match these filters.'
        : 'No captures yet. Requests through logging-proxy appear here as they happen.';
    } else if (trimmed) {
      status.textContent = `Showing the newest ${MAX_ROWS.toLocaleString('en-US')} rows; ` +
                           'narrow the filters to see older ones.';
    } else if (exhausted) status.textContent = `${rows.size} captures, no more.`;
    else status.textContent = loading ? 'Loading…' : '';
  };

  const makeRow = (item) => {
    const tr = h('tr', { dataset: { id: item.id }, tabindex: '-1' }, cells(item));
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('a')) return;
      location.hash = `#/requests/${encodeURIComponent(item.id)}`;
    });
    return tr;
  };

  const select = (index) => {
    const trs = tbody.rows;
    if (!trs.length) return;
    index = Math.max(0, Math.min(trs.length - 1, index));
    if (selected >= 0 && trs[selected]) trs[selected].classList.remove('selected');
    selected = index;
    trs[index].classList.add('selected');
    trs[index].scrollIntoView({ block: 'nearest' });
  };

  const loadMore = async () => {
    if (loading || exhausted || trimmed) return;
    loading = true;
    showStatus();
    try {
      const page = await getJson(`/requests${query({ ...filters, limit: PAGE, cursor })}`);
      if (ctx.stale()) return;
      const frag = document.createDocumentFragment();
      for (const item of page.requests) {
        if (rows.has(item.id)) continue;
        const tr = makeRow(item);
        rows.set(item.id, { tr, item });
        frag.appendChild(tr);
      }
      tbody.appendChild(frag);
      cursor = page.next_cursor;
      exhausted = !cursor;
    } catch (err) {
      if (ctx.stale()) return;
      failed = true;
      status.textContent = `Could not load captures: ${err.message}`;
      status.classList.add('error');
    } finally {
      loading = false;
    }
    showStatus();
    // Fill the screen: keep loading while the sentinel is visible.
    if (!exhausted && !failed && sentinel.getBoundingClientRect().top < innerHeight + 200) {
      loadMore();
    }
  };

  // Live updates, applied in one DOM update per animation frame, and at most every
  // FLUSH_MS: at 1,000 exchanges/s the browser's style and layout work, not ours, is the cost.
  let pending = new Map();
  let frame = 0;
  let lastFlush = 0;
  const flush = (now) => {
    if (now - lastFlush < FLUSH_MS) {
      frame = requestAnimationFrame(flush);
      return;
    }
    lastFlush = now;
    frame = 0;
    const batch = pending;
    pending = new Map();
    const fresh = [];
    for (const item of batch.values()) {
      const known = rows.get(item.id);
      if (known) {
        const merged = { ...known.item, ...item };
        if (JSON.stringify(merged) === JSON.stringify(known.item)) continue;
        const tr = makeRow(merged);
        if (known.tr.classList.contains('selected')) tr.classList.add('selected');
        known.tr.replaceWith(tr);
        rows.set(item.id, { tr, item: merged });
      } else {
        fresh.push(item);
      }
    }
    // New exchanges go on top, newest first; rows that the cap would drop at once are never
    // built, and only a small arrival is highlighted (an animation per row is style work).
    fresh.sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
    if (fresh.length > MAX_ROWS) fresh.length = MAX_ROWS;
    const highlight = fresh.length <= HIGHLIGHT_MAX;
    const frag = document.createDocumentFragment();
    for (const item of fresh) {
      const tr = makeRow(item);
      if (highlight) tr.classList.add('fresh');
      rows.set(item.id, { tr, item });
      frag.appendChild(tr);
    }
    if (fresh.length) {
      tbody.insertBefore(frag, tbody.firstChild);
      if (selected >= 0) selected += fresh.length;
    }
    while (tbody.rows.length > MAX_ROWS) {
      const last = tbody.lastElementChild;
      rows.delete(last.dataset.id);
      last.remove();
      trimmed = true;
    }
    showStatus();
  };
  const stopLive = follow(filters, (item) => {
    if (!item || typeof item.id !== 'string') return;
    pending.set(item.id, item);
    if (!frame) frame = requestAnimationFrame(flush);
  }, ctx.setLive);

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: '400px' });
  observer.observe(sentinel);

  const onKey = (ev) => {
    if (ev.target.closest('input, select, textarea, button') || ev.metaKey || ev.ctrlKey ||
        ev.altKey) return;
    if (ev.key === 'j' || ev.key === 'ArrowDown') {
      select(selected + 1);
      ev.preventDefault();
    } else if (ev.key === 'k' || ev.key === 'ArrowUp') {
      select(selected < 0 ? 0 : selected - 1);
      ev.preventDefault();
    } else if (ev.key === 'Enter' && selected >= 0 && tbody.rows[selected]) {
      location.hash = `#/requests/${encodeURIComponent(tbody.rows[selected].dataset.id)}`;
    } else if (ev.key === '/') {
      document.querySelector('#filters input[name=q]')?.focus();
      ev.preventDefault();
    }
  };
  document.addEventListener('keydown', onKey);

  loadMore();
  return () => {
    stopLive();
    observer.disconnect();
    document.removeEventListener('keydown', onKey);
    if (frame) cancelAnimationFrame(frame);
    clear(main);
  };
}
