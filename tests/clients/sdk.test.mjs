// The real OpenAI and Anthropic SDKs, and curl, through logging-proxy in front of the project's
// mock upstream, with the captures checked on a real log server.
//
//   LP_BIN_DIR=build/bin node --test tests/clients/sdk.test.mjs     (ctest: clients:sdk)
//
// Processes: log-server, mock_upstream and logging-proxy from $LP_BIN_DIR, each on 127.0.0.1
// port 0 (the port is read from its startup line), all in one temp dir. Routes:
//   /openai/    -> mock  (SDK baseURL http://127.0.0.1:PROXY/openai/v1)
//   /anthropic/ -> mock  (SDK baseURL http://127.0.0.1:PROXY/anthropic)
// The mock answers deterministically ("Hello from mock! You said: " + the last user message,
// fixed ids and timestamps) and sends X-Body-Sha256, the SHA-256 of the body it sends. Every
// call carries a query parameter lp_test=NAME, so the test finds its capture with
// GET /requests?q=lp_test=NAME. For each call the test asserts the SDK's result and the capture:
// outcome complete, status 200, the stored response body byte-exact (its SHA-256 is the mock's
// X-Body-Sha256, and it equals what the mock returns when the captured request body is sent to
// it directly), and the credential masked in the stored request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const BIN_DIR = process.env.LP_BIN_DIR;
const OPENAI_KEY = 'sk-test-openai-key-0000wxyz';
const ANTHROPIC_KEY = 'sk-ant-test-key-0000abcd';
const GREETING = 'Hello from mock! You said: ';

// --- processes ---------------------------------------------------------------------------------

// A child process whose stdout and stderr lines are collected. Its stdin stays an open pipe:
// mock_upstream exits when it closes, so nothing outlives this test process.
class Child {
  constructor(name, exe, args, { cwd, env } = {}) {
    this.name = name;
    this.lines = [];
    this.waiters = new Set();
    this.exited = null;
    this.proc = spawn(exe, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exitPromise = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exited = { code, signal };
        for (const w of this.waiters) w.check();
        resolve(this.exited);
      });
    });
    this.proc.on('error', (err) => {
      this.lines.push(`(spawn failed: ${err.message})`);
      this.exited = { code: -1, signal: null };
      for (const w of this.waiters) w.check();
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        this.lines.push(line);
        for (const w of this.waiters) w.check();
      });
    }
  }

  tail(n = 40) {
    return this.lines.slice(-n).join('\n');
  }

  // Resolves with the match of the first output line matching `re`.
  waitForLine(re, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          for (const line of this.lines) {
            const m = line.match(re);
            if (m) return done(null, m);
          }
          if (this.exited) {
            done(new Error(`${this.name} exited (${JSON.stringify(this.exited)}) before printing ` +
                           `${re}; its output:\n${this.tail()}`));
          }
        },
      };
      const timer = setTimeout(() => done(new Error(
          `${this.name} did not print ${re} within ${timeoutMs} ms; its output:\n${this.tail()}`)),
        timeoutMs);
      const done = (err, m) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        if (err) reject(err); else resolve(m);
      };
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  async stop() {
    if (this.exited) return;
    this.proc.stdin.end();
    this.proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(resolve, 5000, 'timeout'); });
    const first = await Promise.race([this.exitPromise, timeout]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.lines.push('(did not stop within 5 s of SIGTERM: killed)');
      this.proc.kill('SIGKILL');
      await this.exitPromise;
    }
  }
}

let dir;
let logServer, mock, proxy;
let logUrl, mockUrl, proxyUrl;

function childEnv() {
  const env = { ...process.env };
  delete env.LOG_SERVER_TOKEN;  // this test's log server runs without a token
  return env;
}

before(async () => {
  assert.ok(BIN_DIR, 'set LP_BIN_DIR to the directory holding logging-proxy, log-server and ' +
                     'mock_upstream (ctest does)');
  dir = mkdtempSync(path.join(tmpdir(), 'lp-sdk-test-'));
  const env = childEnv();

  // The log server first: the proxy's config needs its port. (A JSON string is a valid YAML
  // double-quoted scalar: paths are written with JSON.stringify.)
  const logServerConfig = path.join(dir, 'log-server.yaml');
  writeFileSync(logServerConfig, [
    'log_server:',
    '  host: "127.0.0.1"',
    '  port: 0',
    `  data_dir: ${JSON.stringify(path.join(dir, 'data'))}`,
    '',
  ].join('\n'));
  logServer = new Child('log-server', path.join(BIN_DIR, 'log-server'),
                        ['--config', logServerConfig], { cwd: dir, env });
  mock = new Child('mock_upstream', path.join(BIN_DIR, 'mock_upstream'), [], { cwd: dir, env });
  const [, logPort] = await logServer.waitForLine(/^log-server listening on http:\/\/\S+:(\d+)$/);
  const [, mockPort] = await mock.waitForLine(/^mock_upstream http=(\d+) https=\d+$/);
  logUrl = `http://127.0.0.1:${logPort}`;
  mockUrl = `http://127.0.0.1:${mockPort}`;

  const proxyConfig = path.join(dir, 'proxy.yaml');
  writeFileSync(proxyConfig, [
    'server:',
    '  host: "127.0.0.1"',
    '  port: 0',
    '  upstream_timeout: 20s',
    'logging:',
    '  console: true',
    `  server_url: "${logUrl}"`,
    '  default: true',
    `  spool_dir: ${JSON.stringify(path.join(dir, 'spool'))}`,
    '  batch_interval: 20ms',
    'routes:',
    '  openai:',
    '    pattern: "/openai/"',
    `    destination: "${mockUrl}/"`,
    '  anthropic:',
    '    pattern: "/anthropic/"',
    `    destination: "${mockUrl}/"`,
    '',
  ].join('\n'));
  proxy = new Child('logging-proxy', path.join(BIN_DIR, 'logging-proxy'),
                    ['--config', proxyConfig], { cwd: dir, env });
  const [, proxyPort] =
      await proxy.waitForLine(/^logging-proxy listening on http:\/\/\S+:(\d+)$/);
  proxyUrl = `http://127.0.0.1:${proxyPort}`;
});

after(async () => {
  for (const p of [proxy, mock, logServer]) if (p) await p.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// --- helpers -----------------------------------------------------------------------------------

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function openaiClient() {
  return new OpenAI({ apiKey: OPENAI_KEY, baseURL: `${proxyUrl}/openai/v1`, maxRetries: 0,
                      timeout: 20000 });
}

function anthropicClient() {
  // authToken: null, so that an ANTHROPIC_AUTH_TOKEN in the environment adds no header.
  return new Anthropic({ apiKey: ANTHROPIC_KEY, authToken: null,
                         baseURL: `${proxyUrl}/anthropic`, maxRetries: 0, timeout: 20000 });
}

// The words the mock sends for `said`, as its deltas: "Hello", " from", " mock!", ...
function expectedPieces(said) {
  return (GREETING + said).split(/(?= )/);
}

// GET on a fresh connection that closes after the response (agent: false sends
// Connection: close): a kept-alive idle connection would hold up the log server's clean stop.
function fetchOk(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode !== 200) {
          reject(new Error(`GET ${url}: ${res.statusCode} ${body.toString()}`));
        } else {
          resolve(body);
        }
      });
    }).on('error', reject);
  });
}

// A stored HTTP message: start line, header lines, blank line, body bytes.
function parseStored(bytes) {
  const end = bytes.indexOf('\r\n\r\n');
  assert.ok(end >= 0, `stored message without a blank line: ${bytes.toString().slice(0, 200)}`);
  const [startLine, ...headerLines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const headers = headerLines.map((l) => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon), l.slice(colon + 1).trim()];
  });
  const header = (name) =>
    headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
  return { startLine, headers, header, body: bytes.subarray(end + 4) };
}

// Polls the log server until exactly one finished capture matches lp_test=TAG; returns it with
// its stored request and response.
async function capture(tag, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const list = JSON.parse(
        (await fetchOk(`${logUrl}/requests?q=${encodeURIComponent(`lp_test=${tag}`)}`)).toString());
    last = list.requests;
    if (last.length > 0 && last.every((r) => r.outcome !== 'in_progress')) break;
    if (Date.now() > deadline) {
      assert.fail(`no finished capture for lp_test=${tag} within ${timeoutMs} ms: ` +
                  `${JSON.stringify(last)}\nproxy output:\n${proxy.tail()}`);
    }
    await sleep(50);
  }
  assert.equal(last.length, 1, `one capture for lp_test=${tag}: ${JSON.stringify(last)}`);
  const record = last[0];
  const requestBytes = await fetchOk(`${logUrl}/requests/${record.id}/request`);
  const responseBytes = await fetchOk(`${logUrl}/requests/${record.id}/response`);
  return { record, requestBytes, request: parseStored(requestBytes),
           response: parseStored(responseBytes) };
}

// The checks every call through the proxy gets; `secret` is the API key the client sent.
// Returns the capture.
async function checkCapture(tag, { route, path: upstreamPath, secret }) {
  const c = await capture(tag);
  const { record, request, response } = c;
  assert.equal(record.outcome, 'complete', JSON.stringify(record));
  assert.equal(record.status, 200, JSON.stringify(record));
  assert.equal(record.route, route);
  assert.equal(record.proxy_path, `/${route}${upstreamPath}?lp_test=${tag}`);
  assert.equal(record.destination, `${mockUrl}${upstreamPath}?lp_test=${tag}`);

  // The response body as stored is the one the mock sent, byte for byte.
  assert.match(response.startLine, /^HTTP\/1\.1 200 /);
  const sent = response.header('X-Body-Sha256');
  assert.ok(sent, `the stored response head has the mock's X-Body-Sha256:\n${response.headers}`);
  assert.equal(sha256(response.body), sent, 'stored response body = the bytes the mock sent');
  assert.equal(record.response_bytes, response.body.length);

  // Credentials are masked in the capture: Authorization "Bearer ****" and X-Api-Key "****",
  // then the key's last 4 characters. (The OpenAI SDK sends Authorization; Anthropic's 1.x
  // sends its API key as a bearer token too, older ones as X-Api-Key.) The key is nowhere in it.
  const masked = { authorization: `Bearer ****${secret.slice(-4)}`,
                   'x-api-key': `****${secret.slice(-4)}` };
  const credentials = request.headers.filter(([n]) => n.toLowerCase() in masked);
  assert.ok(credentials.length > 0,
            `the stored request has the credential header:\n${request.headers.join('\n')}`);
  for (const [name, value] of credentials) assert.equal(value, masked[name.toLowerCase()], name);
  assert.ok(!c.requestBytes.includes(secret), 'the API key does not appear in the capture');
  assert.equal(request.header('X-Proxy-Path'), record.proxy_path);
  assert.equal(record.request_bytes, request.body.length);
  return c;
}

// Sends a captured request body straight to the mock, with the headers the mock requires, and
// returns the response body: the bytes the mock sends for that request.
async function mockDirect(upstreamPath, body, headers) {
  const res = await fetch(`${mockUrl}${upstreamPath}`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/json', ...headers },
  });
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

// Reassembles the assistant text from a stored OpenAI SSE body.
function openaiStreamText(body) {
  let text = '';
  let done = false;
  for (const event of body.toString('utf8').split('\n\n')) {
    if (!event.startsWith('data: ')) continue;
    const data = event.slice(6);
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    for (const choice of JSON.parse(data).choices) text += choice.delta.content ?? '';
  }
  assert.ok(done, 'the stored stream ends with data: [DONE]');
  return text;
}

// --- tests -------------------------------------------------------------------------------------

test('OpenAI SDK: chat completion (non-streaming) through the proxy, captured', async () => {
  const tag = 'openai-chat';
  const said = 'What is 2 + 2?';
  const { data: completion, response } = await openaiClient().chat.completions.create(
      { model: 'mock-gpt', messages: [{ role: 'system', content: 'Be brief.' },
                                         { role: 'user', content: said }] },
      { query: { lp_test: tag } }).withResponse();
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, 'mock-gpt');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, GREETING + said);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.usage.completion_tokens, expectedPieces(said).length);

  const c = await checkCapture(tag, { route: 'openai', path: '/v1/chat/completions',
                                      secret: OPENAI_KEY });
  // The client got the body the capture holds.
  assert.equal(response.headers.get('x-body-sha256'), sha256(c.response.body));
  assert.equal(JSON.parse(c.response.body).choices[0].message.content, GREETING + said);
  const sentBody = JSON.parse(c.request.body);
  assert.equal(sentBody.model, 'mock-gpt');
  assert.equal(sentBody.messages[1].content, said);
  assert.ok(c.response.body.equals(await mockDirect('/v1/chat/completions', c.request.body,
                                                    { Authorization: 'Bearer direct' })),
            'the stored response body equals the mock\'s answer to the stored request body');
});

test('OpenAI SDK: streaming chat completion arrives delta by delta, captured', async () => {
  const tag = 'openai-stream';
  const said = 'Stream me a short answer, please';
  // The mock pauses 60 ms between events: the deltas must reach the SDK spread out, as sent.
  const { data: stream, response } = await openaiClient().chat.completions.create(
      { model: 'mock-gpt', stream: true, messages: [{ role: 'user', content: said }] },
      { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': '60' } }).withResponse();
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  const deltas = [];
  const times = [];
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    const choice = chunk.choices[0];
    if (choice?.delta?.content) {
      deltas.push(choice.delta.content);
      times.push(performance.now());
    }
    if (choice?.finish_reason) finish = choice.finish_reason;
  }
  assert.deepEqual(deltas, expectedPieces(said));
  assert.equal(deltas.join(''), GREETING + said);
  assert.equal(finish, 'stop');
  const spread = times.at(-1) - times[0];
  assert.ok(spread >= 60 * (deltas.length - 1) * 0.5,
            `deltas arrived as the mock sent them, not all at once (spread ${spread} ms)`);

  const c = await checkCapture(tag, { route: 'openai', path: '/v1/chat/completions',
                                      secret: OPENAI_KEY });
  assert.equal(c.record.response_content_type, 'text/event-stream');
  assert.equal(response.headers.get('x-body-sha256'), sha256(c.response.body));
  assert.equal(openaiStreamText(c.response.body), GREETING + said);
  assert.ok(c.response.body.equals(await mockDirect('/v1/chat/completions', c.request.body,
                                                    { Authorization: 'Bearer direct' })),
            'the stored stream equals the mock\'s answer to the stored request body');
});

test('Anthropic SDK: messages streaming, text and final message, captured', async () => {
  const tag = 'anthropic-stream';
  const said = 'Tell me about streams';
  const stream = anthropicClient().messages.stream(
      { model: 'mock-claude', max_tokens: 256,
        messages: [{ role: 'user', content: said }] },
      { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': '20' } });
  const texts = [];
  const events = [];
  stream.on('text', (delta) => texts.push(delta));
  stream.on('streamEvent', (event) => events.push(event.type));
  const message = await stream.finalMessage();
  const { response } = await stream.withResponse();

  assert.deepEqual(texts, expectedPieces(said));
  assert.equal(message.id, 'msg_mock');
  assert.equal(message.role, 'assistant');
  assert.equal(message.model, 'mock-claude');
  assert.equal(message.stop_reason, 'end_turn');
  assert.equal(message.content.length, 1);
  assert.equal(message.content[0].type, 'text');
  assert.equal(message.content[0].text, GREETING + said);
  assert.equal(message.usage.output_tokens, texts.length);
  const n = texts.length;
  // The SDK passes on every event but ping (checked in the stored stream below).
  assert.deepEqual(events, ['message_start', 'content_block_start',
                            ...Array(n).fill('content_block_delta'), 'content_block_stop',
                            'message_delta', 'message_stop']);

  const c = await checkCapture(tag, { route: 'anthropic', path: '/v1/messages',
                                      secret: ANTHROPIC_KEY });
  assert.ok(c.request.header('anthropic-version'), 'the SDK\'s anthropic-version is captured');
  assert.equal(response.headers.get('x-body-sha256'), sha256(c.response.body));
  const stored = c.response.body.toString('utf8');
  assert.deepEqual(stored.match(/^event: \w+$/gm).map((l) => l.slice(7)),
                   ['message_start', 'content_block_start', 'ping',
                    ...Array(n).fill('content_block_delta'), 'content_block_stop',
                    'message_delta', 'message_stop']);
  assert.match(stored, /event: message_stop\ndata: \{"type":"message_stop"\}\n\n$/);
  assert.ok(c.response.body.equals(await mockDirect('/v1/messages', c.request.body,
                                                    { 'x-api-key': 'direct',
                                                      'anthropic-version': '2023-06-01' })),
            'the stored stream equals the mock\'s answer to the stored request body');
});

test('OpenAI and Anthropic SDKs: models list through the proxy, captured', async () => {
  const openaiIds = [];
  for await (const model of openaiClient().models.list({ query: { lp_test: 'openai-models' } })) {
    openaiIds.push(model.id);
  }
  assert.deepEqual(openaiIds, ['mock-gpt', 'mock-claude']);
  const anthropicIds = [];
  for await (const model of anthropicClient().models.list(
      {}, { query: { lp_test: 'anthropic-models' } })) {
    anthropicIds.push(model.id);
  }
  assert.deepEqual(anthropicIds, ['mock-gpt', 'mock-claude']);
  await checkCapture('openai-models', { route: 'openai', path: '/v1/models', secret: OPENAI_KEY });
  await checkCapture('anthropic-models', { route: 'anthropic', path: '/v1/models',
                                           secret: ANTHROPIC_KEY });
});

test('curl -N: an SSE stream through the proxy, byte-exact to the client and the capture',
     async () => {
  const tag = 'curl-stream';
  const body = JSON.stringify({ model: 'mock-gpt', stream: true,
                                messages: [{ role: 'user', content: 'curl says hi' }] });
  const curl = spawn('curl', ['-sS', '-N', '--fail', '-D', '-', '-o', '-',
                              '-H', `Authorization: Bearer ${OPENAI_KEY}`,
                              '-H', 'Content-Type: application/json',
                              '-H', 'X-Mock-Chunk-Ms: 60',
                              '--data-binary', body,
                              `${proxyUrl}/openai/v1/chat/completions?lp_test=${tag}`],
                     { stdio: ['ignore', 'pipe', 'pipe'] });
  const pieces = [];
  const arrivals = [];
  let stderr = '';
  curl.stdout.on('data', (d) => {
    pieces.push(d);
    arrivals.push(performance.now());
  });
  curl.stderr.on('data', (d) => { stderr += d; });
  const code = await new Promise((resolve) => curl.on('close', resolve));
  assert.equal(code, 0, `curl failed: ${stderr}`);

  const out = Buffer.concat(pieces);
  const headEnd = out.indexOf('\r\n\r\n');
  assert.ok(headEnd > 0, 'curl printed the response head');
  const head = out.subarray(0, headEnd).toString('latin1');
  const received = out.subarray(headEnd + 4);
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(head, /^content-type: text\/event-stream/im);
  const sent = head.match(/^x-body-sha256: ([0-9a-f]{64})$/im)?.[1];
  assert.ok(sent, `the mock's X-Body-Sha256 reached curl:\n${head}`);
  assert.equal(sha256(received), sent, 'curl received exactly the bytes the mock sent');
  assert.equal(openaiStreamText(received), GREETING + 'curl says hi');
  // -N: the events reached curl as they were sent, over the mock's pauses.
  assert.ok(arrivals.length >= 3 && arrivals.at(-1) - arrivals[0] >= 150,
            `the stream reached curl piece by piece (${arrivals.length} reads over ` +
            `${arrivals.at(-1) - arrivals[0]} ms)`);

  const c = await checkCapture(tag, { route: 'openai', path: '/v1/chat/completions',
                                      secret: OPENAI_KEY });
  assert.ok(c.response.body.equals(received), 'the capture holds the bytes curl received');
  assert.equal(c.request.body.toString(), body, 'the capture holds the request body curl sent');
});
