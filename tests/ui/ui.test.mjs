// The log server's web UI in a real browser: Debian's chromium driven by playwright-core
// (pinned in package-lock.json), against a real log-server fed crafted capture batches.
//
//   (cd tests/ui && npm ci) && LP_BIN_DIR=build/bin node --test tests/ui/ui.test.mjs   (ctest: ui:browser)
//
// The log servers (one without a token, one with auth_token) run from $LP_BIN_DIR on
// 127.0.0.1 port 0 with temp data dirs. Captures are POSTed to /ingest as capture batches
// (common/capture_wire.h, encoded below): OpenAI chat calls to https://api.openai.com, streamed
// (content + tool calls, so the log server derives `llm` and /assembled works) and not, an
// upstream error, and one whose path, headers and body carry XSS payloads. Every payload would
// set window.__xss; the test asserts it stays undefined and that the text is shown literally.
// Console errors and page errors fail the test (except the 404 of GET /live on a server
// without it, answered by polling, and the 401s that make the UI ask for the token).
// Screenshots of each page go to $LP_UI_SCREENSHOTS (default tests/ui/screenshots/).
// The 'figures' test prints (console and TAP diagnostics, never asserted on time): live-feed
// latency, the UI's page weight, and frame gaps / long tasks / rows kept at ~1,000 exchanges/s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const BIN_DIR = process.env.LP_BIN_DIR;
const CHROMIUM = process.env.LP_CHROMIUM || '/usr/bin/chromium';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = process.env.LP_UI_SCREENSHOTS || path.join(HERE, 'screenshots');
const TOKEN = 'ui-test-token-0123456789';
const XSS_IMG = '<img src=x onerror="window.__xss=\'path\'">';

// --- capture batches (common/capture_wire.h) ---------------------------------------------------

const T = { batch: 1, begin: 2, requestHead: 3, requestBody: 4, responseHead: 5, responseBody: 6, end: 7 };

function frame(type, meta, data = '') {
  const m = Buffer.from(JSON.stringify(meta));
  const d = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const head = Buffer.alloc(9);
  head[0] = type;
  head.writeUInt32BE(m.length, 1);
  head.writeUInt32BE(d.length, 5);
  return Buffer.concat([head, m, d]);
}

let seq = 0;
function batch(frames) {
  return Buffer.concat([Buffer.from('LPCB'), Buffer.from([1]),
                        frame(T.batch, { proxy_id: 'ui-test', seq: ++seq }), ...frames]);
}

const rfc3339us = (date) => date.toISOString().replace(/Z$/, '000Z');

// The frames of one exchange. `response`: {status, headers: [[n, v]], chunks: [[t_us, text]]}
// or null (no response); `end`: null leaves the exchange in progress.
function exchangeFrames({ id = randomUUID(), route = 'openai', method = 'POST',
                          path: p = '/v1/chat/completions', proxyPrefix = '/openai',
                          requestHeaders = [], body = '', response, outcome = 'complete',
                          startedAt = new Date(), end = true }) {
  const bodyBuf = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const head = [`${method} ${p} HTTP/1.1`, 'Host: api.openai.com',
                'Content-Type: application/json', `Content-Length: ${bodyBuf.length}`,
                'Authorization: Bearer ****wxyz', `X-Proxy-Path: ${proxyPrefix}${p}`,
                ...requestHeaders.map(([n, v]) => `${n}: ${v}`), '', ''].join('\r\n');
  const frames = [
    frame(T.begin, { id, route, method, proxy_path: proxyPrefix + p,
                     destination: `https://api.openai.com${p}`, client_ip: '127.0.0.1',
                     started_at: rfc3339us(startedAt) }),
    frame(T.requestHead, { id }, head),
  ];
  if (bodyBuf.length) frames.push(frame(T.requestBody, { id }, bodyBuf));
  let total = 0;
  let responseBytes = 0;
  let firstByte;
  if (response) {
    const rhead = [`HTTP/1.1 ${response.status} ${response.status === 200 ? 'OK' : 'Error'}`,
                   ...response.headers.map(([n, v]) => `${n}: ${v}`), '', ''].join('\r\n');
    frames.push(frame(T.responseHead, { id, t_us: 180000 }, rhead));
    for (const [t, text] of response.chunks) {
      firstByte ??= t;
      total = t;
      responseBytes += Buffer.byteLength(text);
      frames.push(frame(T.responseBody, { id, t_us: t }, text));
    }
  }
  if (end) {
    frames.push(frame(T.end, {
      id, outcome, status: response ? response.status : 502, request_bytes: bodyBuf.length,
      response_bytes: responseBytes,
      timings: { request_forwarded_us: 2100, upstream_connect_us: 1500,
                 upstream_headers_us: response ? 180000 : undefined,
                 first_byte_us: firstByte, total_us: total + 900 },
    }));
  }
  return { id, frames };
}

const MODEL = 'gpt-4o-mini';
function sseChunk(delta, extra = {}) {
  return `data: ${JSON.stringify({ id: 'chatcmpl-ui1', object: 'chat.completion.chunk', created: 1757729469,
                                   model: `${MODEL}-2024-07-18`, choices: [{ index: 0, delta, finish_reason: null }],
                                   ...extra })}\n\n`;
}
const ANSWER = 'The weather in Paris is sunny. Let me check the forecast.';

function streamedCall(opts = {}) {
  const chunks = [
    [210000, sseChunk({ role: 'assistant', content: '' })],
    [260000, sseChunk({ content: 'The weather in Paris ' })],
    [300000, sseChunk({ content: 'is sunny. Let me check the forecast.' })],
    [350000, sseChunk({ tool_calls: [{ index: 0, id: 'call_abc123', type: 'function',
                                       function: { name: 'get_forecast', arguments: '' } }] })],
    [390000, sseChunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":"Paris","days":3}' } }] })],
    [420000, `data: ${JSON.stringify({ id: 'chatcmpl-ui1', object: 'chat.completion.chunk', created: 1757729469,
                                         model: `${MODEL}-2024-07-18`,
                                         choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] })}\n\n`],
    [430000, `data: ${JSON.stringify({ id: 'chatcmpl-ui1', object: 'chat.completion.chunk', created: 1757729469,
                                         model: `${MODEL}-2024-07-18`, choices: [],
                                         usage: { prompt_tokens: 42, completion_tokens: 17, total_tokens: 59 } })}\n\n`],
    [431000, 'data: [DONE]\n\n'],
  ];
  return exchangeFrames({
    body: { model: MODEL, stream: true, stream_options: { include_usage: true },
            messages: [{ role: 'system', content: 'You are a weather bot.' },
                       { role: 'user', content: opts.question ?? 'What is the weather in Paris?' }],
            tools: [{ type: 'function', function: { name: 'get_forecast', parameters: { type: 'object' } } }] },
    response: { status: 200, headers: [['Content-Type', 'text/event-stream'], ['Transfer-Encoding', 'chunked']],
                chunks },
    ...opts,
  });
}

function plainCall(opts = {}) {
  const answer = { id: 'chatcmpl-plain', object: 'chat.completion', created: 1757729469, model: 'gpt-4.1',
                   choices: [{ index: 0, message: { role: 'assistant', content: opts.answer ?? 'Plain answer.' },
                               finish_reason: 'stop' }],
                   usage: { prompt_tokens: 8, completion_tokens: 3, total_tokens: 11 } };
  return exchangeFrames({
    body: { model: 'gpt-4.1', messages: [{ role: 'user', content: opts.question ?? 'Say hi' }] },
    response: { status: opts.status ?? 200, headers: [['Content-Type', 'application/json']],
                chunks: [[250000, JSON.stringify(opts.status >= 400 ? { error: { message: 'overloaded' } } : answer)]] },
    ...opts,
  });
}

async function ingest(server, exchanges) {
  const res = await fetch(`${server.url}/ingest`, {
    method: 'POST', body: batch(exchanges.flatMap((x) => x.frames)),
    headers: { 'Content-Type': 'application/octet-stream',
               ...(server.token ? { Authorization: `Bearer ${server.token}` } : {}) },
  });
  assert.equal(res.status, 200, await res.text());
}

// --- processes ---------------------------------------------------------------------------------

class LogServer {
  // `port` 0 lets the system choose; a fixed one lets a test restart a server in its place.
  constructor(dir, name, token, port = 0) {
    this.token = token;
    this.lines = [];
    const data = path.join(dir, name);
    const config = path.join(dir, `${name}.yaml`);
    writeFileSync(config, ['log_server:', '  host: "127.0.0.1"', `  port: ${port}`,
                           `  data_dir: ${JSON.stringify(data)}`,
                           ...(token ? [`  auth_token: "${token}"`] : []), ''].join('\n'));
    const env = { ...process.env };
    delete env.LOG_SERVER_TOKEN;
    this.proc = spawn(path.join(BIN_DIR, 'log-server'), ['--config', config],
                      { cwd: dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exit = new Promise((resolve) => this.proc.on('exit', resolve));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`log-server did not start:\n${this.lines.join('\n')}`)), 15000);
      for (const s of [this.proc.stdout, this.proc.stderr]) {
        readline.createInterface({ input: s }).on('line', (line) => {
          this.lines.push(line);
          const m = line.match(/^log-server listening on http:\/\/\S+:(\d+)$/);
          if (m) {
            clearTimeout(timer);
            this.url = `http://127.0.0.1:${m[1]}`;
            resolve();
          }
        });
      }
      this.proc.on('exit', (code) => reject(new Error(`log-server exited ${code}:\n${this.lines.join('\n')}`)));
    });
  }

  async stop() {
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exit;
    clearTimeout(t);
  }
}

let dir, server, authServer, browser, page;
const problems = [];  // console errors and page errors
const seen = {};      // exchanges by name

function watch(p, { allow401 = false, allow404 = null } = {}) {
  p.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  p.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url || '';
    const text = msg.text();
    // A log server without GET /live answers 404; the UI polls /requests instead.
    if (/status of 404/.test(text) && /\/live(\?|$)/.test(url)) return;
    if (allow401 && /status of 401/.test(text)) return;
    if (allow404 && /status of 404/.test(text) && allow404.test(url)) return;
    problems.push(`console.error: ${text} (${url})`);
  });
  p.on('dialog', (d) => { problems.push(`dialog opened: ${d.message()}`); d.dismiss(); });
}

async function shot(p, name) {
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const xss = (p) => p.evaluate(() => window.__xss);

// The feed is a virtualised grid (log-server/ui/feed.js): rows in view (+ a few) are in the
// DOM, in order, as role=row elements with data-id; #feed's data-rows counts the rows kept.
const ROWS = '#feed [role=row][data-id]';

before(async () => {
  assert.ok(BIN_DIR, 'set LP_BIN_DIR to the directory holding log-server (ctest does)');
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM} (apt-get install chromium, or set LP_CHROMIUM)`);
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(path.join(tmpdir(), 'lp-ui-test-'));
  server = new LogServer(dir, 'open');
  authServer = new LogServer(dir, 'auth', TOKEN);
  await Promise.all([server.ready, authServer.ready]);

  const base = Date.now() - 60000;
  seen.stream = streamedCall({ startedAt: new Date(base) });
  seen.plain = plainCall({ startedAt: new Date(base + 1000) });
  seen.error = plainCall({ status: 500, outcome: 'upstream_error', path: '/v1/chat/completions?retry=1',
                           startedAt: new Date(base + 2000) });
  seen.other = exchangeFrames({ route: 'local', method: 'GET', path: '/models', proxyPrefix: '/local',
                                response: { status: 200, headers: [['Content-Type', 'application/json']],
                                            chunks: [[5000, '{"data":[]}']] },
                                startedAt: new Date(base + 3000) });
  await ingest(server, [seen.stream, seen.plain, seen.error, seen.other]);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  watch(page);
});

after(async () => {
  if (browser) await browser.close();
  for (const s of [server, authServer]) if (s) await s.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// --- tests -------------------------------------------------------------------------------------

test('the UI files are served with a strict CSP, nosniff, ETag, and without the token', async () => {
  for (const s of [server, authServer]) {
    for (const [p, type] of [['/', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/app.css', 'text/css']]) {
      const res = await fetch(s.url + p);
      assert.equal(res.status, 200, `${p}: ${await res.text()}`);
      assert.match(res.headers.get('content-type'), new RegExp(`^${type}`));
      const csp = res.headers.get('content-security-policy');
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.doesNotMatch(csp, /unsafe/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      const etag = res.headers.get('etag');
      assert.match(etag, /^"[0-9a-f]+"$/);
      const again = await fetch(s.url + p, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304);
    }
    assert.equal((await fetch(`${s.url}/ui/nope.js`)).status, 404);
  }
  // The data still needs the token.
  assert.equal((await fetch(`${authServer.url}/requests`)).status, 401);
  // No inline script anywhere in the page.
  const html = await (await fetch(`${server.url}/`)).text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);
  assert.doesNotMatch(html, /\son[a-z]+=/i);
});

test('the feed lists captured calls, newest first, with their LLM fields', async () => {
  await page.goto(`${server.url}/`);
  await page.waitForSelector(`#feed [role=row][data-id="${seen.stream.id}"]`);
  const ids = await page.$$eval(ROWS, (rs) => rs.map((r) => r.dataset.id));
  assert.deepEqual(ids, [seen.other.id, seen.error.id, seen.plain.id, seen.stream.id]);
  // Derived fields arrive with the deriver (live or polled updates; a reload at worst).
  const row = page.locator(`#feed [role=row][data-id="${seen.stream.id}"]`);
  await row.locator('.c-model', { hasText: MODEL }).waitFor({ timeout: 10000 }).catch(async () => {
    await page.reload();
    await row.locator('.c-model', { hasText: MODEL }).waitFor();
  });
  const text = await row.innerText();
  assert.match(text, /POST/);
  assert.match(text, /\/openai\/v1\/chat\/completions/);
  assert.match(text, /complete/);
  assert.match(text, /42 \/ 17/);
  assert.match(await page.locator(`#feed [role=row][data-id="${seen.error.id}"]`).innerText(), /500\s+upstream_error/);
  await shot(page, 'feed');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, 'feed-dark');
  await page.emulateMedia({ colorScheme: 'light' });
});

test('a call ingested while the page is open appears without a reload, and updates when it ends', async () => {
  await page.goto(`${server.url}/`);
  await page.waitForSelector(`#feed [role=row][data-id="${seen.stream.id}"]`);
  await page.evaluate(() => { window.__marker = 'same page'; });
  // Begin (in progress) first, then the rest with the same id.
  const id = randomUUID();
  const begun = plainCall({ id, question: 'live?', end: false });
  await ingest(server, [begun]);
  const row = page.locator(`#feed [role=row][data-id="${id}"]`);
  await row.waitFor({ timeout: 10000 });
  assert.equal(await page.locator(ROWS).first().getAttribute('data-id'), id);
  const full = plainCall({ id, question: 'live?' });
  await ingest(server, [{ frames: full.frames.filter((f) => f[0] === T.end) }]);
  await row.locator('.c-outcome', { hasText: 'complete' }).waitFor({ timeout: 10000 });
  assert.equal(await page.evaluate(() => window.__marker), 'same page');
  seen.live = { id };
});

test('a capture opened while in progress fills in by itself when it ends and is derived', async () => {
  const id = randomUUID();
  await ingest(server, [plainCall({ id, question: 'opened early?', answer: 'Filled in.', end: false })]);
  await page.goto(`${server.url}/#/requests/${id}`);
  const chip = page.locator('.detail-head .chip').first();
  await chip.getByText(/in_progress/).waitFor({ timeout: 10000 });
  const full = plainCall({ id, question: 'opened early?', answer: 'Filled in.' });
  await ingest(server, [{ frames: full.frames.filter((f) => f[0] === T.end) }]);
  await chip.getByText(/200 complete/).waitFor({ timeout: 10000 });
  await page.locator('#answer').getByText('Filled in.').waitFor({ timeout: 10000 });
});

test('keyboard: j/k move the selection, Enter opens the capture', async () => {
  await page.goto(`${server.url}/`);
  await page.waitForSelector(`#feed [role=row][data-id="${seen.stream.id}"]`);
  await page.keyboard.press('j');
  await page.keyboard.press('j');
  await page.keyboard.press('k');
  const selected = await page.$eval('#feed [role=row].selected[aria-selected=true]', (tr) => tr.dataset.id);
  const first = await page.$eval(ROWS, (tr) => tr.dataset.id);
  assert.equal(selected, first);
  await shot(page, 'feed-keyboard');
  await page.keyboard.press('Enter');
  await page.waitForURL(new RegExp(`#/requests/${selected}$`));
  await page.waitForSelector('#meta');
});

test('a streamed call: assembled answer with tool calls, conversation, timings, usage', async () => {
  await page.goto(`${server.url}/#/requests/${seen.stream.id}`);
  const answer = page.locator('#answer');
  await answer.getByText(ANSWER).waitFor({ timeout: 10000 });
  await answer.locator('.tool-name', { hasText: 'get_forecast' }).waitFor();
  assert.match(await answer.innerText(), /Paris[\s\S]*days[\s\S]*3/);
  const convo = await page.locator('#conversation').innerText();
  assert.match(convo, /You are a weather bot\./);
  assert.match(convo, /What is the weather in Paris\?/);
  assert.match(convo, /tools offered \(1\): get_forecast/);
  assert.match(await page.locator('#usage').innerText(), /input tokens\s*42[\s\S]*output tokens\s*17/);
  await page.locator('#timing .timing-bar .seg').first().waitFor();
  assert.ok(await page.locator('#arrival svg').count(), 'the arrival chart is drawn');
  assert.match(await page.locator('#request-headers').innerText(), /X-Proxy-Path/);
  assert.match(await page.locator('#response-headers').innerText(), /text\/event-stream/);
  await page.locator('#request-body .json-tree').waitFor();
  assert.match(await page.locator('#response-body').innerText(), /data: \[DONE\]/);
  assert.equal(await page.locator('#replay-cmd').innerText(), `logging-proxy replay ${seen.stream.id}`);
  const links = await page.$$eval('#downloads a', (as) => as.map((a) => [a.textContent, a.getAttribute('href'), a.getAttribute('download')]));
  assert.deepEqual(links.map((l) => l[0]), ['raw request', 'raw response', 'HAR', 'JSONL']);
  for (const [, href] of links) assert.match(href, /^\/(requests|export)/);
  // The HAR link selects exactly this capture.
  const har = await (await fetch(server.url + links[2][1])).json();
  assert.deepEqual(har.log.entries.map((e) => e._id), [seen.stream.id]);
  const raw = await fetch(server.url + links[0][1]);
  assert.equal(raw.status, 200);
  await shot(page, 'detail-stream');
});

test('filters map to the API and live in the hash; deep links work', async () => {
  await page.goto(`${server.url}/#/?model=${MODEL}`);
  await page.waitForSelector(`#feed [role=row][data-id="${seen.stream.id}"]`);
  assert.equal(await page.locator(ROWS).count(), 1);
  assert.equal(await page.inputValue('#filters input[name=model]'), MODEL);
  // Typing a filter updates the hash and the list.
  await page.fill('#filters input[name=model]', '');
  await page.fill('#filters input[name=status]', '500');
  await page.press('#filters input[name=status]', 'Enter');
  await page.waitForURL(/#\/\?status=500$/);
  await page.waitForFunction((id) => {
    const trs = document.querySelectorAll('#feed [role=row][data-id]');
    return trs.length === 1 && trs[0].dataset.id === id;
  }, seen.error.id);
  await page.selectOption('#filters select[name=outcome]', 'complete');
  await page.waitForURL(/outcome=complete/);
  await page.getByText('No captures match these filters.').waitFor();
  await shot(page, 'feed-empty');
  await page.goto(`${server.url}/#/?q=${encodeURIComponent('/local/')}`);
  await page.waitForFunction((id) => {
    const trs = document.querySelectorAll('#feed [role=row][data-id]');
    return trs.length === 1 && trs[0].dataset.id === id;
  }, seen.other.id);
  // A deep link by 8-character prefix, in a fresh page.
  const p2 = await browser.newPage();
  watch(p2, { allow404: /\/requests\/00000000$/ });
  await p2.goto(`${server.url}/#/requests/${seen.plain.id.slice(0, 8)}`);
  await p2.locator('#answer').getByText('Plain answer.').waitFor({ timeout: 10000 });
  await p2.goto(`${server.url}/#/requests/00000000`);
  await p2.getByText(/Could not load capture 00000000: 404/).waitFor();
  await p2.close();
});

test('an error capture, a call that is not an LLM call, and a long streamed answer', async () => {
  // The provider's error: outcome and status flagged, its message shown, the body decoded.
  await page.goto(`${server.url}/#/requests/${seen.error.id}`);
  const chip = page.locator('.detail-head .chip').first();
  await chip.waitFor();
  assert.match(await chip.innerText(), /500 upstream_error/);
  assert.match(await chip.getAttribute('class'), /\bbad\b/);
  await page.locator('#response-body').getByText('overloaded').first().waitFor({ timeout: 10000 });
  await page.locator('#conversation').getByText('Say hi').waitFor();
  // The answer card says what the provider said; a call that did not stream has no arrival card.
  await page.locator('#answer').getByText('The provider answered with an error: overloaded').waitFor();
  assert.equal(await page.locator('#arrival').count(), 0);
  await shot(page, 'detail-error');

  // Not an LLM call: no conversation, no usage, no answer cards.
  await page.goto(`${server.url}/#/requests/${seen.other.id}`);
  await page.locator('#response-body').getByText('data').first().waitFor({ timeout: 10000 });
  assert.match(await page.locator('#meta').innerText(), /not an LLM call/);
  assert.equal(await page.locator('#conversation, #usage, #answer').count(), 0);

  // A long stream: 400 content events; the assembled answer is whole and in order, and every
  // piece is on the arrival chart.
  const words = Array.from({ length: 400 }, (_, i) => `word${i} `);
  const long = exchangeFrames({
    body: { model: MODEL, stream: true, messages: [{ role: 'user', content: 'Write a long answer.' }] },
    response: { status: 200, headers: [['Content-Type', 'text/event-stream']],
                chunks: [...words.map((w, i) => [200000 + i * 5000, sseChunk({ content: w })]),
                         [2290000, sseChunk({}, { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })],
                         [2300000, 'data: [DONE]\n\n']] },
  });
  await ingest(server, [long]);
  await page.goto(`${server.url}/#/requests/${long.id}`);
  const answer = page.locator('#answer');
  await answer.getByText(/word399/).waitFor({ timeout: 10000 });
  assert.ok((await answer.innerText()).includes(words.join('').trim()), 'the whole answer, in order');
  assert.match(await page.locator('#arrival').innerText(), /402 response pieces/);
  assert.match(await page.locator('#usage').innerText(), /finish reason\s*stop/);
  await shot(page, 'detail-long-stream');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, 'detail-long-stream-dark');
  await page.emulateMedia({ colorScheme: 'light' });
});

test('the virtualised feed pages older rows on scroll; live arrivals do not move the rows being read', async () => {
  // 250 calls on their own route, a second apart, an hour ago (oldest first).
  const base = Date.now() - 3600000;
  const calls = [];
  for (let i = 0; i < 250; i++) {
    calls.push(plainCall({ route: 'paging', proxyPrefix: '/paging', question: `page ${i}`,
                           startedAt: new Date(base + i * 1000) }));
  }
  await ingest(server, calls);
  const newestFirst = calls.map((c) => c.id).reverse();
  await page.goto(`${server.url}/#/?route=paging`);
  const grid = page.locator('#feed');
  await page.waitForSelector(`${ROWS}[data-id="${newestFirst[0]}"]`);
  await page.waitForFunction(() => document.querySelector('#feed').dataset.rows === '100');
  // One page is loaded; only the rows in view (+ overscan) are in the DOM, in order.
  let shown = await page.$$eval(ROWS, (rs) => rs.map((r) => [r.dataset.id, r.getAttribute('aria-rowindex')]));
  assert.ok(shown.length >= 10 && shown.length < 70, `rows in the DOM: ${shown.length}`);
  assert.deepEqual(shown.map((s) => s[0]), newestFirst.slice(0, shown.length));
  assert.deepEqual(shown.map((s) => s[1]), shown.map((s, i) => String(i + 2)));
  assert.equal(await grid.getAttribute('role'), 'grid');
  assert.equal(await grid.getAttribute('aria-rowcount'), '-1');  // more to load: not known yet
  // Scrolling to the bottom loads the older pages ("load older"), until there are no more.
  await page.waitForFunction(() => {
    const g = document.querySelector('#feed');
    g.scrollTop = g.scrollHeight;
    return g.dataset.rows === '250';
  }, null, { polling: 100, timeout: 15000 });
  const oldest = page.locator(`${ROWS}[data-id="${calls[0].id}"]`);
  await oldest.waitFor();
  assert.equal(await oldest.getAttribute('aria-rowindex'), '251');
  await page.getByText('250 captures, no more.').waitFor();
  assert.equal(await grid.getAttribute('aria-rowcount'), '251');
  assert.ok(await page.locator(ROWS).count() < 70, 'still only the rows in view in the DOM');
  shown = await page.$$eval(ROWS, (rs) => rs.map((r) => r.dataset.id));
  const at = newestFirst.indexOf(shown[0]);
  assert.deepEqual(shown, newestFirst.slice(at, at + shown.length), 'rows in order at the bottom');

  // Scrolled into the middle: new arrivals are held back, the rows in view do not move.
  await grid.evaluate((el) => { el.scrollTop = 120 * 26; });
  const inView = () => page.evaluate(() => {
    const g = document.querySelector('#feed').getBoundingClientRect();
    return [...document.querySelectorAll('#feed [role=row][data-id]')]
      .map((r) => [r.dataset.id, Math.round(r.getBoundingClientRect().top)])
      .filter(([, top]) => top >= g.top && top < g.bottom);
  });
  await page.waitForFunction(() => document.querySelector('#feed [role=row][aria-rowindex="122"]'));
  const before = await inView();
  assert.ok(before.length >= 10, `rows in view: ${before.length}`);
  assert.ok(before.some(([id]) => id === newestFirst[120]), 'row 120 is in view');
  const scrollBefore = await grid.evaluate((el) => el.scrollTop);
  const fresh = [0, 1, 2].map((i) => plainCall({ route: 'paging', proxyPrefix: '/paging', question: `new ${i}`,
                                                 startedAt: new Date(Date.now() + i) }));
  await ingest(server, fresh);
  await page.locator('#feed-new', { hasText: /3 new/ }).waitFor({ timeout: 10000 });
  await page.waitForTimeout(400);  // a few more live flushes
  assert.deepEqual(await inView(), before, 'the rows being read did not move');
  assert.equal(await grid.evaluate((el) => el.scrollTop), scrollBefore);
  assert.equal(await grid.getAttribute('data-rows'), '250');
  await shot(page, 'feed-scrolled-new');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, 'feed-scrolled-new-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  // The indicator brings them in, at the top.
  await page.click('#feed-new');
  await page.waitForFunction((id) => document.querySelector('#feed [role=row][data-id]')?.dataset.id === id,
                             fresh[2].id);
  assert.equal(await grid.evaluate((el) => el.scrollTop), 0);
  assert.equal(await grid.getAttribute('data-rows'), '253');
  assert.ok(await page.locator('#feed-new').isHidden());
  shown = await page.$$eval(ROWS, (rs) => rs.slice(0, 5).map((r) => r.dataset.id));
  assert.deepEqual(shown, [fresh[2].id, fresh[1].id, fresh[0].id, newestFirst[0], newestFirst[1]]);
  // At the top, arrivals go straight in.
  const next = plainCall({ route: 'paging', proxyPrefix: '/paging', question: 'at the top' });
  await ingest(server, [next]);
  await page.waitForFunction((id) => document.querySelector('#feed [role=row][data-id]')?.dataset.id === id,
                             next.id, { timeout: 10000 });
  assert.ok(await page.locator('#feed-new').isHidden());
});

// A port nobody listens on now (the system's choice), for a server restarted in its place.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

test('after the log server restarts, the feed shows every exchange of the gap, not only the newest page', async () => {
  // Its own server (a fixed port kept across the restart) and its own page: the reconnects
  // refused while the server is down are expected console errors there.
  const port = await freePort();
  let ls = new LogServer(dir, 'restarted', undefined, port);
  await ls.ready;
  const p = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  p.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  try {
    const before = plainCall({ question: 'before the restart' });
    await ingest(ls, [before]);
    await p.goto(`${ls.url}/`);
    await p.locator(`#feed [role=row][data-id="${before.id}"]`).waitFor({ timeout: 10000 });
    const live = plainCall({ question: 'live before the restart' });
    await ingest(ls, [live]);  // gives the page an event id to resume from
    await p.locator(`#feed [role=row][data-id="${live.id}"]`).waitFor({ timeout: 10000 });

    // The page cannot reconnect until the gap is filled: 300 exchanges the restarted server
    // has no events for, three pages of the old catch-up's 100.
    await p.route('**/live*', (route) => route.abort());
    await ls.stop();
    ls = new LogServer(dir, 'restarted', undefined, port);
    await ls.ready;
    const t0 = Date.now();
    const gap = Array.from({ length: 300 }, (_, i) =>
      plainCall({ question: `in the gap ${i}`, startedAt: new Date(t0 + i) }));
    await ingest(ls, gap);
    await p.unroute('**/live*');

    const rows = () => p.evaluate(() => Number(document.querySelector('#feed').getAttribute('data-rows')));
    await p.waitForFunction(() => Number(document.querySelector('#feed').getAttribute('data-rows')) >= 302,
                            null, { timeout: 20000 }).catch(() => {});
    assert.equal(await rows(), 302, 'every exchange of the gap is listed, and the two from before');
    // And the feed is live again.
    const after = plainCall({ question: 'after the catch-up' });
    await ingest(ls, [after]);
    await p.locator(`#feed [role=row][data-id="${after.id}"]`).waitFor({ timeout: 10000 });
    await shot(p, 'feed-after-restart');
  } finally {
    await p.close();
    await ls.stop();
  }
});

test('stats: per-group bar charts and the group_by switcher', async () => {
  await page.goto(`${server.url}/#/stats`);
  await page.locator('.charts svg').first().waitFor();
  assert.equal(await page.locator('.charts figure').count(), 4);
  assert.match(await page.locator('.stats-table').innerText(), new RegExp(MODEL));
  await shot(page, 'stats');
  await page.selectOption('#group-by', 'route');
  await page.waitForURL(/group_by=route/);
  await page.locator('.stats-table', { hasText: 'local' }).waitFor();
});

// An OpenAI chat call for `model` on `route`, `ms` long, at `startedAt`.
function modelCall(model, route, ms, startedAt) {
  const answer = { id: 'chatcmpl-t', object: 'chat.completion', created: 1757729469, model,
                   choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
                   usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 } };
  return exchangeFrames({ route, proxyPrefix: `/${route}`, startedAt,
                          body: { model, messages: [{ role: 'user', content: 'over time' }] },
                          response: { status: 200, headers: [['Content-Type', 'application/json']],
                                      chunks: [[ms * 1000, JSON.stringify(answer)]] } });
}

test('stats: requests, errors, tokens and percentiles over time for the top groups', async () => {
  // 20 hours of calls for three models (one of them through another route), varying in
  // number and duration.
  const models = [['gpt-4o', 'openai'], ['o3-mini', 'openai'], ['llama-3.1-70b', 'openrouter']];
  const hourMs = 3600000;
  const start = Math.floor(Date.now() / hourMs) * hourMs - 19 * hourMs;
  const calls = [];
  const expected = {};
  for (let hr = 0; hr < 20; hr++) {
    models.forEach(([model, route], m) => {
      if (m === 2 && hr % 7 === 3) return;  // a gap
      const n = 2 + m + Math.round(2 * Math.sin(hr / 3 + m * 2));
      for (let k = 0; k < n; k++) {
        const ms = Math.round(400 + m * 350 + 250 * Math.sin(hr / 4 + m) + k * 40);
        calls.push(modelCall(model, route, ms, new Date(start + hr * hourMs + 60000 + k * 1000)));
        expected[model] = (expected[model] ?? 0) + 1;
      }
    });
  }
  await ingest(server, calls);
  // The model comes with the deriver.
  const deadline = Date.now() + 15000;
  for (;;) {
    const s = await (await fetch(`${server.url}/stats?group_by=model`)).json();
    const got = Object.fromEntries(s.groups.map((g) => [g.key, g.requests]));
    if (Object.entries(expected).every(([k, v]) => got[k] === v)) break;
    assert.ok(Date.now() < deadline, `models not derived: ${JSON.stringify(got)}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  await page.goto(`${server.url}/#/stats`);
  const over = page.locator('#over-time');
  await over.locator('.timecharts svg').nth(1).waitFor({ timeout: 10000 });
  assert.equal(await page.locator('.charts figure').count(), 4);
  const text = await over.innerText();
  assert.match(text, /Over time: top 5 models/);
  const titles = ['Requests', 'Errors', 'Input tokens', 'Output tokens', 'p50 duration', 'p95 duration',
                  'p50 time to first token', 'p95 time to first token'].map((t) => `${t} per hour`);
  assert.deepEqual(await over.locator('.timecharts figcaption b').allInnerTexts(), titles);
  for (const [model] of models) assert.ok(text.includes(model), `legend names ${model}`);
  assert.ok(await over.locator('polyline').count() >= 6, 'lines are drawn');
  await shot(page, 'stats-over-time');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, 'stats-over-time-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Grouped by route: one line per route, the empty route included.
  await page.selectOption('#group-by', 'route');
  await page.waitForURL(/group_by=route/);
  await over.locator('.legend-item', { hasText: 'openrouter' }).first().waitFor({ timeout: 10000 });
  assert.match(await over.innerText(), /Over time: top \d routes/);

  // Over more than 7 days: per day.
  const since = new Date(Date.now() - 30 * 24 * hourMs).toISOString().replace(/\.\d+Z$/, 'Z');
  await page.goto(`${server.url}/#/stats?group_by=model&since=${since}`);
  await over.locator('figcaption', { hasText: 'Requests per day' }).waitFor({ timeout: 10000 });
  assert.match(await over.innerText(), /p95 duration per day/);

  // Nothing to chart: the only exchanges of route "local" have no model.
  await page.goto(`${server.url}/#/stats?route=local`);
  await over.getByText('No models to chart over time in this range.').waitFor({ timeout: 10000 });
});

test('captured XSS payloads are shown as text and never run', async () => {
  const payloadBody = {
    model: 'evil-model<script>window.__xss="model"</script>',
    messages: [
      { role: 'system', content: '<script>window.__xss="system"</script>' },
      { role: 'user', content: [{ type: 'text', text: `${XSS_IMG} <a href="javascript:window.__xss='link'">click</a>` }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_<svg onload=window.__xss=1>', type: 'function',
        function: { name: '<img src=x onerror=window.__xss="tool">', arguments: '{"url":"javascript:window.__xss=\'arg\'"}' } }] },
    ],
  };
  const evil = exchangeFrames({
    path: `/v1/chat/completions?q=<img/src=x/onerror=window.__xss='path'>&u=javascript:window.__xss=1`,
    requestHeaders: [['X-Evil', '<script>window.__xss="header"</script>'],
                     ['X-Link', 'javascript:window.__xss="hdr-link"']],
    body: payloadBody,
    response: { status: 200, headers: [['Content-Type', 'application/json'],
                                       ['X-Evil-Response', `${XSS_IMG}`]],
                chunks: [[250000, JSON.stringify({ id: 'x', object: 'chat.completion', model: 'm',
                  choices: [{ index: 0, message: { role: 'assistant', content: `<img src=x onerror=window.__xss="answer">` },
                              finish_reason: 'stop' }] })]] },
  });
  await ingest(server, [evil]);
  await page.goto(`${server.url}/`);
  const row = page.locator(`#feed [role=row][data-id="${evil.id}"]`);
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.innerText(), /<img\/src=x\/onerror=window\.__xss='path'>/);
  assert.equal(await page.locator('#feed img, #feed script').count(), 0);
  await page.goto(`${server.url}/#/requests/${evil.id}`);
  await page.locator('#answer').getByText('<img src=x onerror=window.__xss="answer">').waitFor({ timeout: 10000 });
  await page.locator('#request-body .json-tree').waitFor();
  await page.locator('#response-body .json-tree').waitFor();
  const main = await page.locator('main').innerText();
  for (const literal of ['<script>window.__xss="header"</script>', '<script>window.__xss="system"</script>',
                         `<a href="javascript:window.__xss='link'">click</a>`, '<img src=x onerror=window.__xss="tool">',
                         "javascript:window.__xss='arg'"]) {
    assert.ok(main.includes(literal), `shown literally: ${literal}`);
  }
  // Nothing became markup: no images, scripts, iframes, or javascript: links in the page.
  assert.equal(await page.locator('main img, main script, main iframe, main svg [onload]').count(), 0);
  const hrefs = await page.$$eval('a[href]', (as) => as.map((a) => a.getAttribute('href')));
  for (const href of hrefs) assert.match(href, /^(#\/|\/(requests|export))/, href);
  await page.waitForTimeout(300);
  assert.equal(await xss(page), undefined);
  await shot(page, 'detail-xss');
});

test('with auth_token set, the UI asks for the token once and then works', async () => {
  await ingest(authServer, [streamedCall({ question: 'behind a token' })]);
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const p = await ctx.newPage();
  watch(p, { allow401: true });
  const sentAuth = [];
  p.on('request', (r) => { if (/\/(requests|live|stats)/.test(r.url())) sentAuth.push([r.url(), r.headers().authorization]); });
  await p.goto(`${authServer.url}/`);
  await p.locator('#token-form').waitFor();
  await shot(p, 'token-prompt');
  await p.fill('#token-input', 'wrong-token');
  await p.press('#token-input', 'Enter');
  await p.getByText('That token was refused.').waitFor();
  await p.fill('#token-input', TOKEN);
  await p.press('#token-input', 'Enter');
  await p.locator(ROWS).first().waitFor({ timeout: 10000 });
  assert.equal(await p.locator('#token-form').count(), 0);
  // Kept for the tab: another page needs no new prompt; never in a URL.
  await p.goto(`${authServer.url}/#/stats`);
  await p.locator('.charts svg').first().waitFor();
  assert.equal(await p.locator('#token-form').count(), 0);
  assert.ok(sentAuth.some(([, a]) => a === `Bearer ${TOKEN}`));
  for (const [url] of sentAuth) assert.ok(!url.includes(TOKEN), url);
  assert.equal(await p.evaluate(() => location.href.includes('token')), false);
  await ctx.close();
});

const median = (xs) => { const a = [...xs].sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; };

test('figures: live-feed latency, page weight, and a feed under 1,000 exchanges/s', async (t) => {
  // (c) Page weight: a fresh context (empty cache), the feed's first load.
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const p = await ctx.newPage();
  watch(p);
  await p.goto(`${server.url}/`);
  await p.locator(ROWS).first().waitFor();
  const weight = await p.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const ui = performance.getEntriesByType('resource').filter((e) => new URL(e.name).pathname.startsWith('/ui/'));
    const row = (e) => ({ name: new URL(e.name).pathname, transfer: e.transferSize, encoded: e.encodedBodySize,
                          decoded: e.decodedBodySize });
    return [row(nav), ...ui.map(row)];
  });
  const sum = (k) => weight.reduce((a, e) => a + e[k], 0);
  const weightLine = `page weight: ${weight.length} files (document + ${weight.length - 1} UI assets), ` +
    `${sum('transfer')} B transferred (bodies ${sum('encoded')} B encoded, ${sum('decoded')} B decoded)`;
  console.log(weightLine);
  for (const e of weight) console.log(`  ${e.name}: ${e.transfer} B transferred, ${e.decoded} B`);
  t.diagnostic(weightLine);
  assert.ok(weight.length >= 8, 'the document and its modules and stylesheet');

  // (a) Live-feed latency: from the ingest's acknowledgement to the row in the page.
  await p.evaluate(() => {
    window.__seenAt = {};
    // A row is shown when a row element is added for it, or one in place is refilled with it.
    new MutationObserver((records) => {
      const now = Date.now();
      const seen = (n) => {
        if (n.nodeType === 1 && n.matches('[role=row][data-id]')) window.__seenAt[n.dataset.id] ??= now;
      };
      for (const r of records) {
        if (r.type === 'attributes') seen(r.target);
        for (const n of r.addedNodes) seen(n);
      }
    }).observe(document.getElementById('feed'), { childList: true, subtree: true, attributeFilter: ['data-id'] });
  });
  const latencies = [];
  const fromSend = [];
  for (let i = 0; i < 10; i++) {
    const x = plainCall({ question: `latency ${i}` });
    const sent = Date.now();
    const res = await fetch(`${server.url}/ingest`, { method: 'POST', body: batch(x.frames),
                                                     headers: { 'Content-Type': 'application/octet-stream' } });
    await res.arrayBuffer();
    const acked = Date.now();
    assert.equal(res.status, 200);
    await p.waitForFunction((id) => window.__seenAt[id], x.id, { timeout: 10000 });
    const shown = await p.evaluate((id) => window.__seenAt[id], x.id);
    latencies.push(shown - acked);
    fromSend.push(shown - sent);
    await new Promise((r) => setTimeout(r, 150));
  }
  const latLine = `live-feed latency (ingest acknowledged -> row in the feed), ms: median ${median(latencies)}, ` +
    `min ${Math.min(...latencies)}, max ${Math.max(...latencies)} [${latencies.join(', ')}]; ` +
    `from the POST sent: median ${median(fromSend)} [${fromSend.join(', ')}] (negative: shown before the answer)`;
  console.log(latLine);
  t.diagnostic(latLine);

  // (b) ~1,000 exchanges/s for 5 s: a batch of 100 every 100 ms while the feed is open.
  const batches = [];
  // The newest exchange, as the feed orders them (start time, then id, descending): the top row.
  let newest = { at: '', id: '' };
  for (let b = 0; b < 50; b++) {
    const xs = [];
    for (let k = 0; k < 100; k++) {
      const startedAt = new Date();
      const x = plainCall({ question: `load ${b}.${k}`, startedAt });
      const at = rfc3339us(startedAt);
      if (at > newest.at || (at === newest.at && x.id > newest.id)) newest = { at, id: x.id };
      xs.push(x);
    }
    batches.push(batch(xs.flatMap((x) => x.frames)));
  }
  await p.evaluate(() => {
    const w = window;
    w.__gap = { max: 0, frames: 0, last: performance.now(), on: true, long: [] };
    const tick = (ts) => {
      const g = w.__gap;
      if (!g.on) return;
      g.max = Math.max(g.max, ts - g.last);
      g.last = ts;
      g.frames++;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    try {
      new PerformanceObserver((list) => { for (const e of list.getEntries()) w.__gap.long.push(e.duration); })
        .observe({ type: 'longtask' });
    } catch { /* no longtask timing */ }
  });
  // The renderer's own main-thread work, in thread time (CPU): on a shared machine the frame
  // gaps above also count the time the renderer waited for a core (the log server ingesting
  // these very batches runs on the same cores).
  const cdp = await ctx.newCDPSession(p);
  await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
  const cpuMetrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics
    .map((m) => [m.name, m.value]));
  const cpu0 = await cpuMetrics();
  const t0 = Date.now();
  const statuses = await Promise.all(batches.map((body, b) => new Promise((resolve) => {
    setTimeout(async () => {
      const res = await fetch(`${server.url}/ingest`, { method: 'POST', body,
                                                       headers: { 'Content-Type': 'application/octet-stream' } });
      await res.arrayBuffer();
      resolve(res.status);
    }, b * 100);
  })));
  const sendMs = Date.now() - t0;
  assert.deepEqual([...new Set(statuses)], [200]);
  await p.locator(`#feed [role=row][data-id="${newest.id}"]`).waitFor({ timeout: 30000 });
  const caughtUpMs = Date.now() - t0;
  await p.waitForTimeout(500);
  const gap = await p.evaluate(() => { window.__gap.on = false; return window.__gap; });
  const cpu1 = await cpuMetrics();
  const cpuMs = (k) => Math.round(1000 * ((cpu1[k] ?? 0) - (cpu0[k] ?? 0)));
  const rows = Number(await p.getAttribute('#feed', 'data-rows'));
  const domRows = await p.locator(ROWS).count();
  // Still responsive: a click on a row opens the capture.
  const c0 = Date.now();
  await p.locator(ROWS).nth(5).locator('.c-path').click();
  await p.waitForURL(/#\/requests\//);
  await p.locator('#meta').waitFor({ timeout: 10000 });
  const clickMs = Date.now() - c0;
  const longest = gap.long.length ? Math.max(...gap.long) : 0;
  const loadLine = `feed under load: 5,000 exchanges in 50 batches over ${sendMs} ms; newest row shown after ` +
    `${caughtUpMs} ms; longest gap between animation frames ${gap.max.toFixed(0)} ms over ${gap.frames} frames; ` +
    `long tasks: ${gap.long.length} (longest ${longest.toFixed(0)} ms, total ` +
    `${gap.long.reduce((a, b) => a + b, 0).toFixed(0)} ms); rows kept ${rows} (${domRows} in the DOM); click -> detail ${clickMs} ms; ` +
    `renderer main thread ${cpuMs('TaskDuration')} ms CPU (script ${cpuMs('ScriptDuration')}, style ` +
    `${cpuMs('RecalcStyleDuration')}, layout ${cpuMs('LayoutDuration')}) over ${caughtUpMs + 500} ms`;
  console.log(loadLine);
  t.diagnostic(loadLine);
  // The feed keeps the newest 5,000 rows' data (log-server/ui/feed.js MAX_ROWS) and only the
  // rows in view (+ overscan) in the DOM: a 500-row <table> gave 0.5-1 s frame gaps here.
  assert.ok(rows <= 5000, `rows capped at 5,000 (${rows})`);
  assert.ok(rows >= 4000, `the feed kept up (${rows} rows)`);
  assert.ok(domRows <= 80, `only the rows in view are in the DOM (${domRows})`);
  await ctx.close();
});

test('no console errors or page errors', () => {
  assert.deepEqual(problems, []);
});
