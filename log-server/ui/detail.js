// One capture (#/requests/ID): metadata, timings, the stream's arrival chart, the
// conversation and the assembled answer, usage, headers, decoded bodies, downloads, replay.
import { h, svg, replace } from './dom.js';
import { downloadLink, getJson, getText, idPath, query } from './api.js';
import { bodyView } from './jsonview.js';
import { answerMessages, messagesView, offeredTools, requestMessages, toolsView } from './conversation.js';
import { fmtBytes, fmtCost, fmtInt, fmtMs, fmtTime, fmtUs, shortId } from './format.js';

function section(title, id, ...children) {
  return h('section', { class: 'card', id }, h('h2', { text: title }), ...children);
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v instanceof Node ? v : String(v))]));
}

// since/until selecting exactly this capture: [started_at, started_at + 1 µs).
function exactRange(startedAt) {
  const m = /^(.*?)(?:\.(\d{1,6}))?Z$/.exec(startedAt || '');
  if (!m) return null;
  let secMs = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(secMs)) return null;
  let us = Number((m[2] || '').padEnd(6, '0')) + 1;
  if (us >= 1e6) { us -= 1e6; secMs += 1000; }
  const until = new Date(secMs).toISOString().replace(/\.\d{3}Z$/, `.${String(us).padStart(6, '0')}Z`);
  return { since: startedAt, until };
}

function timingBar(t) {
  const total = t.total_us;
  if (!total) return h('p', { class: 'muted', text: 'No timings (the exchange has not ended).' });
  const marks = [
    ['connect', 'upstream connect', t.upstream_connect_us],
    ['forwarded', 'request forwarded', t.request_forwarded_us],
    ['headers', 'upstream headers', t.upstream_headers_us],
    ['firstbyte', 'first byte to client', t.first_byte_us],
    ['total', 'total', total],
  ].filter(([, , v]) => v !== undefined && v !== null);
  const bar = h('div', { class: 'timing-bar', role: 'img',
                         'aria-label': marks.map(([, l, v]) => `${l} ${fmtUs(v)}`).join(', ') });
  let prev = 0;
  for (const [key, label, v] of marks) {
    if (v < prev) continue;
    const seg = h('div', { class: `seg seg-${key}`, title: `${label}: ${fmtUs(v)}` });
    seg.style.width = `${Math.max(0.3, ((v - prev) / total) * 100)}%`;
    bar.appendChild(seg);
    prev = v;
  }
  const legend = h('ul', { class: 'legend' }, marks.map(([key, label, v]) =>
    h('li', {}, h('span', { class: `swatch seg-${key}` }), `${label} `, h('b', { text: fmtUs(v) }))));
  const extra = [];
  if (t.proxy_overhead_us !== undefined) extra.push(['proxy overhead', fmtUs(t.proxy_overhead_us)]);
  if (t.response_chunks !== undefined) extra.push(['response writes', fmtInt(t.response_chunks)]);
  if (t.response_chunk_delay_max_us !== undefined) {
    extra.push(['write delay max', fmtUs(t.response_chunk_delay_max_us)]);
  }
  return h('div', {}, bar, legend, extra.length ? kv(extra) : null);
}

// Per-chunk arrival: from a chunk list when the server gives one ([{t_us, bytes}] or
// [t_us]); else the derived stream marks (first event, first content, end).
function arrivalChart(d) {
  const raw = d.response_chunk_times ?? d.chunks ?? d.timings?.chunks;
  const llm = d.llm || {};
  const total = d.timings?.total_us;
  let points = null;
  if (Array.isArray(raw) && raw.length) {
    points = raw.map((c) => (typeof c === 'number' ? { t: c, bytes: null }
      : Array.isArray(c) ? { t: c[0], bytes: c[1] ?? null } : { t: c.t_us, bytes: c.bytes ?? null }))
      .filter((p) => Number.isFinite(p.t));
  }
  if (!points && llm.first_event_ms == null && llm.ttft_ms == null) return null;
  const W = 640, H = 120, pad = 30;
  const maxT = Math.max(total || 0, ...(points || []).map((p) => p.t), 1);
  const x = (us) => pad + ((W - 2 * pad) * us) / maxT;
  const chart = svg('svg', { class: 'chart arrival', viewBox: `0 0 ${W} ${H}`, role: 'img',
                             'aria-label': 'stream arrival times' });
  chart.appendChild(svg('line', { x1: pad, x2: W - pad, y1: H - 25, y2: H - 25, class: 'axis' }));
  for (let i = 0; i <= 4; i++) {
    const us = (maxT * i) / 4;
    chart.appendChild(svg('text', { x: x(us), y: H - 8, class: 'tick', 'text-anchor': 'middle',
                                    text: fmtUs(us) }));
  }
  if (points) {
    const maxB = Math.max(...points.map((p) => p.bytes || 1), 1);
    for (const p of points) {
      const hgt = p.bytes ? 8 + (50 * p.bytes) / maxB : 30;
      chart.appendChild(svg('rect', { x: x(p.t) - 1, y: H - 25 - hgt, width: 2, height: hgt,
                                      class: 'chunk' }, svg('title', { text: `${fmtUs(p.t)}${p.bytes ? `, ${p.bytes} B` : ''}` })));
    }
  }
  const mark = (ms, label, cls, row) => {
    if (ms == null) return;
    const px = x(ms * 1000);
    chart.appendChild(svg('line', { x1: px, x2: px, y1: 10, y2: H - 25, class: `mark ${cls}` }));
    const right = px > W * 0.7;
    chart.appendChild(svg('text', { x: right ? px - 3 : px + 3, y: 12 + row * 13,
                                    'text-anchor': right ? 'end' : 'start', class: `mark-label ${cls}`,
                                    text: `${label} ${fmtMs(ms)}` }));
  };
  mark(llm.first_event_ms, 'first event', 'm-first', 0);
  mark(llm.ttft_ms, 'first content', 'm-ttft', 1);
  if (total) mark(total / 1000, 'end', 'm-end', 2);
  return h('div', {}, chart,
    h('p', { class: 'muted small', text: points
      ? `${points.length} response pieces by arrival time (height: bytes).`
      : `${llm.events ?? '?'} SSE events. Per-chunk arrival times are not served by this log server; ` +
        'the marks show the first event, the first content and the end.' }));
}

function headersTable(pairs) {
  if (!Array.isArray(pairs) || !pairs.length) return h('p', { class: 'muted', text: 'none' });
  return h('table', { class: 'headers mono' }, h('tbody', {}, pairs.map(([n, v]) =>
    h('tr', {}, h('th', { text: n }), h('td', { text: v })))));
}

function usageView(llm) {
  if (!llm) return null;
  return kv([
    ['provider', llm.provider], ['api', llm.api], ['model', llm.model],
    ['response model', llm.response_model !== llm.model ? llm.response_model : undefined],
    ['stream', llm.stream === undefined ? undefined : String(llm.stream)],
    ['input tokens', fmtInt(llm.input_tokens)], ['cached input tokens', fmtInt(llm.cached_input_tokens)],
    ['cache creation tokens', fmtInt(llm.cache_creation_input_tokens)],
    ['output tokens', fmtInt(llm.output_tokens)], ['reasoning tokens', fmtInt(llm.reasoning_tokens)],
    ['total tokens', fmtInt(llm.total_tokens)], ['cost', fmtCost(llm.cost)],
    ['finish reason', llm.finish_reason], ['TTFT', fmtMs(llm.ttft_ms)],
    ['first event', fmtMs(llm.first_event_ms)], ['events', fmtInt(llm.events)],
    ['response id', llm.response_id],
    ['provider error', llm.error ? h('span', { class: 'error', text: llm.error }) : undefined],
  ]);
}

// An error answer (overloaded, rate limited) has no messages: say what the provider said.
function unrecognisedAnswer(llm) {
  if (llm.error) return h('p', { class: 'error', text: `The provider answered with an error: ${llm.error}` });
  return h('p', { class: 'muted', text: 'Unrecognised answer shape: see the response body.' });
}

function copyButton(text) {
  const btn = h('button', { type: 'button', class: 'secondary', text: 'Copy' });
  btn.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      btn.textContent = 'Select and copy';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
  });
  return btn;
}

async function loadBody(pending) {
  try {
    const { type, text } = await pending;
    if (!text.length) return h('p', { class: 'muted', text: 'empty body' });
    return h('div', {}, h('p', { class: 'muted small', text: `${type || 'no Content-Type'}, ${fmtBytes(new TextEncoder().encode(text).length)} decoded` }),
             bodyView(text, type));
  } catch (err) {
    return h('p', { class: err.status === 404 ? 'muted' : 'error', text: err.message });
  }
}

// Polls the record every second (for at most 10 minutes, while this page is shown) and renders
// the page again once its outcome or derivation changed: a capture opened while in progress, or
// before the deriver got to it, fills in by itself.
function renderAgainWhenChanged(main, id, ctx, d) {
  const since = Date.now();
  const tick = async () => {
    if (ctx.stale() || Date.now() - since > 600000) return;
    let now = null;
    try { now = await getJson(idPath(id)); } catch { now = null; }
    if (ctx.stale()) return;
    if (now && (now.outcome !== d.outcome || Boolean(now.derived) !== Boolean(d.derived))) {
      renderDetail(main, id, ctx, { again: true });
      return;
    }
    setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

export function renderDetail(main, id, ctx, { again = false } = {}) {
  if (!again) replace(main, h('p', { class: 'empty', text: `Loading ${id}…` }));
  (async () => {
    let d;
    try {
      d = await getJson(idPath(id));
    } catch (err) {
      if (!ctx.stale()) {
        replace(main, h('p', { class: 'error', text: `Could not load capture ${id}: ${err.message}` }),
                h('p', {}, h('a', { href: '#/', text: '← all requests' })));
      }
      return;
    }
    if (ctx.stale()) return;
    // Arrival of each response piece (GET .../chunks); the chart falls back to the marks.
    if (d.llm?.stream) {
      try {
        d.response_chunk_times = (await getJson(idPath(id, '/chunks'))).chunks;
      } catch {
        d.response_chunk_times = undefined;
      }
      if (ctx.stale()) return;
    }
    const bad = d.outcome !== 'complete' || (d.status ?? 0) >= 400;
    const range = exactRange(d.started_at);
    const exportQuery = (format) => `/export${query({ format, ...(range || {}), q: d.proxy_path, limit: 1 })}`;
    const replayCmd = `logging-proxy replay ${d.id}`;

    const reqBody = h('div', {}, h('p', { class: 'muted', text: 'Loading…' }));
    const resBody = h('div', {}, h('p', { class: 'muted', text: 'Loading…' }));
    const convo = h('div', {}, h('p', { class: 'muted', text: 'Loading…' }));
    const convoSection = section('Conversation', 'conversation', convo);
    const answer = h('div', {}, h('p', { class: 'muted', text: d.llm ? 'Loading…' : '' }));

    replace(main,
      h('p', { class: 'crumbs' }, h('a', { href: '#/', text: '← all requests' })),
      h('header', { class: 'detail-head' },
        h('h1', { class: 'mono' }, h('span', { class: 'method', text: d.method }), ' ',
          h('span', { class: 'path', text: d.proxy_path })),
        h('div', { class: 'chips' },
          h('span', { class: `chip ${bad ? 'bad' : d.outcome === 'in_progress' ? 'pending' : 'ok'}`,
                      text: `${d.status ?? '—'} ${d.outcome}` }),
          d.route ? h('span', { class: 'chip', text: `route ${d.route}` }) : null,
          d.llm?.model ? h('span', { class: 'chip', text: d.llm.model }) : null,
          d.llm?.stream ? h('span', { class: 'chip', text: 'stream' }) : null)),
      d.error ? h('p', { class: 'error', text: `error: ${d.error}` }) : null,
      section('Capture', 'meta', kv([
        ['id', h('code', { text: d.id })], ['started', `${fmtTime(d.started_at)} (${d.started_at})`],
        ['destination', d.destination], ['request line', d.request_line], ['status line', d.status_line],
        ['client', d.client_ip], ['proxy', d.proxy_id],
        ['request bytes', fmtBytes(d.request_bytes)], ['response bytes', fmtBytes(d.response_bytes)],
        ['replay of', d.replay_of ? h('a', { href: `#/requests/${encodeURIComponent(d.replay_of)}`, text: shortId(d.replay_of) }) : null],
        ['derived', d.derived ? (d.llm ? 'LLM call' : 'not an LLM call') : 'not yet'],
      ])),
      section('Timing', 'timing', timingBar(d.timings || {})),
      d.llm?.stream ? section('Stream arrival', 'arrival', arrivalChart(d) ?? h('p', { class: 'muted', text: 'No arrival times for this call.' })) : null,
      d.llm ? section('Usage and cost', 'usage', usageView(d.llm)) : null,
      convoSection,
      d.llm ? section('Answer (assembled)', 'answer', answer) : null,
      section('Downloads and replay', 'downloads',
        h('ul', { class: 'downloads' },
          h('li', {}, downloadLink(idPath(d.id, '/request'), `${shortId(d.id)}_request.http`, 'raw request')),
          h('li', {}, d.files?.response ? downloadLink(idPath(d.id, '/response'), `${shortId(d.id)}_response.http`, 'raw response') : h('span', { class: 'muted', text: 'no response' })),
          h('li', {}, downloadLink(exportQuery('har'), `${shortId(d.id)}.har`, 'HAR')),
          h('li', {}, downloadLink(exportQuery('jsonl'), `${shortId(d.id)}.jsonl`, 'JSONL'))),
        h('div', { class: 'replay' }, h('code', { id: 'replay-cmd', text: replayCmd }), copyButton(replayCmd))),
      section('Request headers', 'request-headers', headersTable(d.request_headers)),
      section('Response headers', 'response-headers', headersTable(d.response_headers)),
      section('Request body', 'request-body', reqBody),
      section('Response body', 'response-body', resBody));

    // The bodies, the conversation and the answer, as they arrive.
    const reqPending = getText(idPath(d.id, '/request/body'));
    const reqText = reqPending.catch(() => null);
    loadBody(reqPending).then((v) => !ctx.stale() && replace(reqBody, v));
    if (d.files?.response) loadBody(getText(idPath(d.id, '/response/body'))).then((v) => !ctx.stale() && replace(resBody, v));
    else replace(resBody, h('p', { class: 'muted', text: 'No response (yet).' }));
    reqText.then((r) => {
      if (ctx.stale()) return;
      let messages = null, tools = [];
      try {
        const body = r && JSON.parse(r.text);
        messages = body && requestMessages(body);
        tools = offeredTools(body);
      } catch { messages = null; }
      if (messages && messages.length) replace(convo, messagesView(messages), tools.length ? toolsView(tools) : null);
      // A call that is not an LLM call (a health check, an error page) has no conversation to show.
      else if (!d.llm) convoSection.remove();
      else replace(convo, h('p', { class: 'muted', text: 'Not a recognised conversation; see the request body.' }));
    });
    if (d.outcome === 'in_progress' || !d.derived) renderAgainWhenChanged(main, id, ctx, d);
    if (d.llm) {
      if (d.outcome === 'in_progress') {
        replace(answer, h('p', { class: 'muted', text: 'Still in progress.' }));
      } else {
        getJson(idPath(d.id, '/assembled')).then((a) => {
          if (ctx.stale()) return;
          const msgs = answerMessages(a);
          replace(answer, msgs ? messagesView(msgs) : unrecognisedAnswer(d.llm));
        }, (err) => !ctx.stale() && replace(answer, h('p', { class: err.status === 404 ? 'muted' : 'error', text: err.message })));
      }
    }
  })();
  return () => {};
}
