// Stats (#/stats?group_by=model&since=...): per group requests, errors, tokens and latency
// percentiles, as bar charts drawn with plain SVG; below them, requests, errors, tokens and the
// duration and TTFT percentiles per hour (per day over ranges longer than 7 days) for the top
// groups, from one /stats?group_by=hour|day call per group (the group as a filter).
import { h, svg, replace } from './dom.js';
import { getJson, query } from './api.js';
import { filtersOf } from './feed.js';
import { fmtCost, fmtInt, fmtMs } from './format.js';

const GROUPS = ['model', 'route', 'provider', 'status', 'hour', 'day'];
const RANGES = [['', 'all time'], ['60', 'last hour'], ['1440', 'last 24 h'], ['10080', 'last 7 days'],
                ['43200', 'last 30 days']];

// Horizontal bars, one row per group, one bar per series.
function barChart(title, groups, series, fmt) {
  const rowH = 8 + series.length * 12;
  const labelW = 170, W = 640, valueW = 90;
  const max = Math.max(1, ...groups.flatMap((g) => series.map((s) => s.value(g) ?? 0)));
  const H = groups.length * rowH + 8;
  const chart = svg('svg', { class: 'chart bars', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  groups.forEach((g, i) => {
    const y0 = 4 + i * rowH;
    const key = g.key === null || g.key === undefined || g.key === '' ? '(none)' : String(g.key);
    chart.appendChild(svg('text', { x: labelW - 6, y: y0 + rowH / 2 + 2, 'text-anchor': 'end', class: 'label',
                                    text: key.length > 26 ? `${key.slice(0, 25)}…` : key },
                          svg('title', { text: key })));
    series.forEach((s, j) => {
      const v = s.value(g);
      const y = y0 + 2 + j * 12;
      const w = v ? Math.max(1, ((W - labelW - valueW) * v) / max) : 0;
      chart.appendChild(svg('rect', { x: labelW, y, width: w, height: 10, class: `bar ${s.cls}` },
                            svg('title', { text: `${key} ${s.label}: ${v == null ? 'n/a' : fmt(v)}` })));
      chart.appendChild(svg('text', { x: labelW + w + 4, y: y + 9, class: 'value',
                                      text: v == null ? '–' : fmt(v) }));
    });
  });
  return h('figure', { class: 'card chart-card' }, h('figcaption', {}, h('b', { text: title }), ' ',
    series.map((s) => h('span', { class: 'legend-item' }, h('span', { class: `swatch ${s.cls}` }), s.label))), chart);
}

// --- over time ---------------------------------------------------------------------------------

const TOP = 5;                 // series drawn over time
const HOUR_MS = 3600000;
const DAY_MS = 24 * HOUR_MS;
const SERIES_CLS = ['s-t1', 's-t2', 's-t3', 's-t4', 's-t5'];
const pad2 = (n) => String(n).padStart(2, '0');

// "2025-09-13T02:00:00Z" (hour) or "2025-09-13" (day) -> ms since the epoch (UTC).
function bucketStart(key, bucket) {
  const t = Date.parse(bucket === 'day' ? `${key}T00:00:00Z` : String(key));
  return Number.isNaN(t) ? null : t;
}

function bucketLabel(t, bucket, multiDay) {
  const d = new Date(t);
  const date = `${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  if (bucket === 'day') return date;
  const hour = `${pad2(d.getUTCHours())}:00`;
  return multiDay ? `${date} ${hour}` : hour;
}

// A round step for four gridlines up to at least v (whole numbers for counts).
function niceStep(v, integer) {
  const raw = v > 0 ? v / 4 : 0.25;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * p >= raw && (!integer || Number.isInteger(m * p))) return m * p;
  }
  return 10 * p;
}

// Which buckets get an x label: about 7, on round hours (00:00, 06:00...) or every k days.
function tickEvery(n, bucket) {
  const steps = bucket === 'day' ? [1, 2, 7, 14, 30, 60, 90, 180, 365] : [1, 2, 3, 6, 12, 24, 48, 72, 168];
  return steps.find((st) => n / st <= 7) ?? Math.ceil(n / 7);
}

// One line per series over the buckets `times` (ms); value(series, i) is a number or null (a
// gap). Points are drawn too, so a single bucket or an isolated value stays visible.
function lineChart(title, times, bucket, series, fmt, integer = false) {
  const W = 640, H = 220, L = 64, R = 14, T = 10, B = 34;
  const pw = W - L - R, ph = H - T - B;
  const values = series.flatMap((s) => s.values.filter((v) => v != null));
  const step = niceStep(Math.max(0, ...values), integer);
  const max = 4 * step;
  const n = times.length;
  const x = (i) => L + (n <= 1 ? pw / 2 : (pw * i) / (n - 1));
  const y = (v) => T + ph - (ph * v) / max;
  const multiDay = bucket === 'hour' && times.length > 0 &&
                   new Date(times[0]).getUTCDate() !== new Date(times[n - 1]).getUTCDate();
  const chart = svg('svg', { class: 'chart lines', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  for (let k = 0; k <= 4; k++) {
    const v = step * k;
    chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: k ? 'grid' : 'axis' }));
    chart.appendChild(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick', text: v === 0 ? '0' : fmt(v) }));
  }
  const every = tickEvery(n, bucket);
  let firstTick = true;
  times.forEach((t, i) => {
    const d = new Date(t);
    const on = bucket === 'day' || every > 24 ? i % every === 0 : d.getUTCHours() % every === 0;
    if (!on && n > 1) return;
    // Hours: the date at midnight (or on the first tick), else the time.
    const label = bucket === 'hour' && multiDay && d.getUTCHours() !== 0 && !firstTick
      ? bucketLabel(t, bucket, false)
      : bucket === 'hour' && multiDay && d.getUTCHours() === 0 ? bucketLabel(t, 'day', false)
        : bucketLabel(t, bucket, multiDay);
    firstTick = false;
    const xi = x(i);
    const anchor = xi < L + 24 ? 'start' : xi > W - R - 24 ? 'end' : 'middle';
    chart.appendChild(svg('line', { x1: xi, x2: xi, y1: T + ph, y2: T + ph + 4, class: 'axis' }));
    chart.appendChild(svg('text', { x: xi, y: H - B + 18, 'text-anchor': anchor, class: 'tick', text: label }));
  });
  series.forEach((s) => {
    // A flat line at zero needs no dots.
    const dots = (v) => v !== 0 || !integer;
    const g = svg('g', { class: `series ${s.cls}` });
    let run = [];
    const endRun = () => {
      if (run.length > 1) g.appendChild(svg('polyline', { points: run.join(' '), class: 'line' }));
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v == null) { endRun(); return; }
      run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      if (dots(v)) g.appendChild(svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: n > 60 ? 1.5 : 2.5, class: 'point' },
        svg('title', { text: `${s.label} · ${bucketLabel(times[i], bucket, true)} UTC: ${fmt(v)}` })));
    });
    endRun();
    chart.appendChild(g);
  });
  return h('figure', { class: 'card chart-card' },
    h('figcaption', {}, h('b', { text: title }), ' ',
      series.map((s) => h('span', { class: 'legend-item', title: s.label },
        h('span', { class: `swatch ${s.cls}` }), s.label.length > 30 ? `${s.label.slice(0, 29)}…` : s.label))),
    chart);
}

// The top groups' counts and percentiles per bucket, below the bar charts.
async function renderOverTime(box, filters, groupBy, groups, ctx) {
  // Grouped by hour/day the top groups are models; grouped by status, statuses.
  const dim = ['model', 'route', 'provider', 'status'].includes(groupBy) ? groupBy : 'model';
  let top = groups;
  if (dim !== groupBy) top = (await getJson(`/stats${query({ ...filters, group_by: dim })}`)).groups || [];
  if (ctx.stale()) return;
  // A null key (no model, no provider, no response) cannot be asked for as a filter; an empty
  // route can (the exchanges no route matched).
  top = top.filter((g) => g.key !== null && g.key !== undefined && (g.key !== '' || dim === 'route'))
    .slice(0, TOP);
  const dims = { model: 'models', route: 'routes', provider: 'providers', status: 'statuses' };
  const head = h('h2', { text: `Over time: top ${top.length || ''} ${dims[dim]}`.replace('  ', ' ') });
  if (!top.length) {
    replace(box, head, h('p', { class: 'empty', text: `No ${dims[dim]} to chart over time in this range.` }));
    return;
  }
  // Hours, or days over a range longer than 7 days (all time: the data's own span).
  const now = Date.now();
  const until = filters.until ? Date.parse(filters.until) : now;
  let since = filters.since ? Date.parse(filters.since) : null;
  if (since === null) {
    const days = (await getJson(`/stats${query({ ...filters, group_by: 'day' })}`)).groups || [];
    if (ctx.stale()) return;
    since = days.length ? bucketStart(days[0].key, 'day') : until;
  }
  const bucket = until - since > 7 * DAY_MS ? 'day' : 'hour';
  const per = bucket === 'day' ? DAY_MS : HOUR_MS;
  const results = await Promise.all(top.map((g) =>
    getJson(`/stats${query({ ...filters, [dim]: String(g.key), group_by: bucket }, ['route'])}`)));
  if (ctx.stale()) return;
  // Every bucket from the first to the last (the range's, or the data's), gaps included.
  const keyed = results.map((r) => new Map((r.groups || []).map((g) => [bucketStart(g.key, bucket), g])));
  const seenTimes = keyed.flatMap((m) => [...m.keys()]).filter((t) => t !== null);
  if (!seenTimes.length) {
    replace(box, head, h('p', { class: 'empty', text: 'No captures over time in this range.' }));
    return;
  }
  const floor = (t) => t - (((t % per) + per) % per);
  // A chosen range is drawn whole; all time starts at the data.
  const first = Math.min(filters.since ? floor(since) : Infinity, ...seenTimes);
  const last = Math.max(Math.min(floor(until - 1), floor(now)), ...seenTimes);
  const times = [];
  for (let t = first; t <= last && times.length < 2000; t += per) times.push(t);
  const series = (value) => top.map((g, i) => ({
    label: g.key === '' ? '(no route)' : String(g.key), cls: SERIES_CLS[i],
    values: times.map((t) => { const b = keyed[i].get(t); return value(b); }),
  }));
  const unit = bucket === 'day' ? 'day' : 'hour';
  const count = (field) => series((b) => (b ? b[field] : 0));
  const pct = (field, p) => series((b) => b?.[field]?.[p] ?? null);
  replace(box, head,
    h('p', { class: 'muted small', text: `Per ${unit}, UTC. Each line is one ${dim}; ` +
      `percentiles are left out where ${unit === 'hour' ? 'an' : 'a'} ${unit} had no timed requests.` }),
    h('div', { class: 'timecharts' },
      lineChart(`Requests per ${unit}`, times, bucket, count('requests'), fmtInt, true),
      lineChart(`Errors per ${unit}`, times, bucket, count('errors'), fmtInt, true),
      lineChart(`Input tokens per ${unit}`, times, bucket, count('input_tokens'), fmtInt, true),
      lineChart(`Output tokens per ${unit}`, times, bucket, count('output_tokens'), fmtInt, true),
      lineChart(`p50 duration per ${unit}`, times, bucket, pct('duration_ms', 'p50'), fmtMs),
      lineChart(`p95 duration per ${unit}`, times, bucket, pct('duration_ms', 'p95'), fmtMs),
      lineChart(`p50 time to first token per ${unit}`, times, bucket, pct('ttft_ms', 'p50'), fmtMs),
      lineChart(`p95 time to first token per ${unit}`, times, bucket, pct('ttft_ms', 'p95'), fmtMs)));
}

export function renderStats(main, params, ctx) {
  const groupBy = GROUPS.includes(params.get('group_by')) ? params.get('group_by') : 'model';
  const filters = filtersOf(params);
  delete filters.q;
  const go = (next) => { location.hash = `#/stats${query(next)}`; };
  const groupSel = h('select', { name: 'group_by', id: 'group-by' },
    GROUPS.map((g) => h('option', { value: g, text: g, selected: g === groupBy })));
  groupSel.addEventListener('change', () => go({ ...filters, group_by: groupSel.value }));
  const rangeSel = h('select', { name: 'range', id: 'stats-range' },
    RANGES.map(([v, t]) => h('option', { value: v, text: t })));
  rangeSel.addEventListener('change', () => {
    const next = { ...filters, group_by: groupBy };
    delete next.since;
    delete next.until;
    if (rangeSel.value) {
      next.since = new Date(Date.now() - Number(rangeSel.value) * 60000).toISOString().replace(/\.\d+Z$/, 'Z');
    }
    go(next);
  });
  const body = h('div', {}, h('p', { class: 'muted', text: 'Loading…' }));
  const active = Object.entries(filters).map(([k, v]) => `${k}=${v}`).join(', ');
  replace(main,
    h('div', { class: 'toolbar' },
      h('h1', { text: 'Stats' }),
      h('label', { class: 'filter' }, h('span', { text: 'Group by' }), groupSel),
      h('label', { class: 'filter' }, h('span', { text: 'Time range' }), rangeSel),
      active ? h('span', { class: 'muted', text: `filters: ${active}` }) : null,
      active ? h('a', { href: `#/stats${query({ group_by: groupBy })}`, text: 'clear' }) : null),
    body);

  getJson(`/stats${query({ ...filters, group_by: groupBy })}`).then((s) => {
    if (ctx.stale()) return;
    const groups = s.groups || [];
    if (!groups.length) {
      replace(body, h('p', { class: 'empty', text: 'No captures in this range.' }));
      return;
    }
    const t = s.total || {};
    const overTime = h('section', { class: 'over-time', id: 'over-time' },
      h('p', { class: 'muted', text: 'Loading stats over time…' }));
    const feedLink = (g) => {
      if (!['model', 'route', 'provider', 'status'].includes(groupBy) || g.key == null) return String(g.key ?? '(none)');
      return h('a', { href: `#/${query({ ...filters, [groupBy]: String(g.key) })}`, text: String(g.key) });
    };
    replace(body,
      h('section', { class: 'card totals' }, h('dl', { class: 'kv' },
        [['requests', fmtInt(t.requests)], ['errors', fmtInt(t.errors)],
         ['input tokens', fmtInt(t.input_tokens)], ['output tokens', fmtInt(t.output_tokens)],
         ['cost', fmtCost(t.cost)], ['duration p50 / p95', `${fmtMs(t.duration_ms?.p50)} / ${fmtMs(t.duration_ms?.p95)}`],
         ['TTFT p50 / p95', `${fmtMs(t.ttft_ms?.p50)} / ${fmtMs(t.ttft_ms?.p95)}`]]
          .map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v || '–' })]))),
      h('div', { class: 'charts' },
        barChart('Requests and errors', groups, [
          { label: 'requests', cls: 's-req', value: (g) => g.requests },
          { label: 'errors', cls: 's-err', value: (g) => g.errors }], fmtInt),
        barChart('Tokens', groups, [
          { label: 'input', cls: 's-in', value: (g) => g.input_tokens },
          { label: 'output', cls: 's-out', value: (g) => g.output_tokens }], fmtInt),
        barChart('Duration', groups, [
          { label: 'p50', cls: 's-p50', value: (g) => g.duration_ms?.p50 },
          { label: 'p95', cls: 's-p95', value: (g) => g.duration_ms?.p95 }], fmtMs),
        barChart('Time to first token', groups, [
          { label: 'p50', cls: 's-p50', value: (g) => g.ttft_ms?.p50 },
          { label: 'p95', cls: 's-p95', value: (g) => g.ttft_ms?.p95 }], fmtMs)),
      overTime,
      h('table', { class: 'stats-table' },
        h('thead', {}, h('tr', {}, [groupBy, 'requests', 'errors', 'input tok', 'output tok', 'cached', 'cost',
          'p50', 'p95', 'p99', 'TTFT p50', 'TTFT p95'].map((c) => h('th', { text: c })))),
        h('tbody', {}, groups.map((g) => h('tr', {},
          h('td', {}, feedLink(g)),
          [fmtInt(g.requests), fmtInt(g.errors), fmtInt(g.input_tokens), fmtInt(g.output_tokens),
           fmtInt(g.cached_input_tokens), fmtCost(g.cost), fmtMs(g.duration_ms?.p50), fmtMs(g.duration_ms?.p95),
           fmtMs(g.duration_ms?.p99), fmtMs(g.ttft_ms?.p50), fmtMs(g.ttft_ms?.p95)]
            .map((v) => h('td', { class: 'c-num', text: v })))))));
    renderOverTime(overTime, filters, groupBy, groups, ctx).catch((err) => !ctx.stale() &&
      replace(overTime, h('p', { class: 'error', text: `Could not load stats over time: ${err.message}` })));
  }, (err) => !ctx.stale() && replace(body, h('p', { class: 'error', text: `Could not load stats: ${err.message}` })));
  return () => {};
}
