// Stats (#/stats?group_by=model&since=...): per group requests, errors, tokens and latency
// percentiles, as bar charts drawn with plain SVG.
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
      h('table', { class: 'stats-table' },
        h('thead', {}, h('tr', {}, [groupBy, 'requests', 'errors', 'input tok', 'output tok', 'cached', 'cost',
          'p50', 'p95', 'p99', 'TTFT p50', 'TTFT p95'].map((c) => h('th', { text: c })))),
        h('tbody', {}, groups.map((g) => h('tr', {},
          h('td', {}, feedLink(g)),
          [fmtInt(g.requests), fmtInt(g.errors), fmtInt(g.input_tokens), fmtInt(g.output_tokens),
           fmtInt(g.cached_input_tokens), fmtCost(g.cost), fmtMs(g.duration_ms?.p50), fmtMs(g.duration_ms?.p95),
           fmtMs(g.duration_ms?.p99), fmtMs(g.ttft_ms?.p50), fmtMs(g.ttft_ms?.p95)]
            .map((v) => h('td', { class: 'c-num', text: v })))))));
  }, (err) => !ctx.stale() && replace(body, h('p', { class: 'error', text: `Could not load stats: ${err.message}` })));
  return () => {};
}
