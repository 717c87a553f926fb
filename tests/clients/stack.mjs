// What sdk.test.mjs and forward.test.mjs share: the process stack (log-server, mock_upstream and
// logging-proxy from $LP_BIN_DIR, each on 127.0.0.1 port 0, all in one temp dir), reading the
// captures back from the log server, and the checks of what the mock sends. No test is defined
// here and importing it starts nothing (forward.test.mjs's SDK child imports it too).
//
// Time bounds: every wait below has its own deadline, so a stuck process fails the test with the
// process's output instead of hanging it:
//   Child.waitForLine   15 s (default) for a line to appear; fails at once if the process exits
//   Child.stop          5 s after SIGTERM (stdin closed too), then SIGKILL
//   Stack.start*        15 s per listening line (log-server, mock_upstream, logging-proxy)
//   Stack.capture       15 s (default) of polling, every 50 ms, plus one fetchOk per request
//   Stack.mockDirect    15 s for the mock's whole answer
//   Stack.stop          Child.stop per process: at most 3 x 5 s plus the SIGKILLs
//   fetchOk             10 s without a byte of the answer
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

export const GREETING = 'Hello from mock! You said: ';

// SHA-256 of bytes, as lowercase hex (the form of the mock's X-Body-Sha256). No time bound needed.
export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// Resolves after `ms` milliseconds.
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The words the mock sends for `said`, as its deltas: "Hello", " from", " mock!", ...
export function expectedPieces(said) {
  return (GREETING + said).split(/(?= )/);
}

// A copy of this process's environment for the children, without LOG_SERVER_TOKEN (the tests' log
// server runs without a token) and without the names in `drop`.
export function childEnv(drop = []) {
  const env = { ...process.env };
  delete env.LOG_SERVER_TOKEN;
  for (const name of drop) delete env[name];
  return env;
}

// --- processes ---------------------------------------------------------------------------------

// A child process whose stdout and stderr lines are collected. Its stdin stays an open pipe:
// mock_upstream exits when it closes, so nothing outlives this test process.
// Bounds: waitForLine 15 s unless told (and at once when the process exits); stop 5 s of
// SIGTERM, then SIGKILL.
export class Child {
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

// The three processes of a test file, in one temp dir (tmpdir/`prefix`XXXXXX, removed by stop).
// Usage: new Stack(prefix, env), then startLogServerAndMock(mockArgs), then startProxy(yaml); the
// URLs are set as the processes come up. Bounds: 15 s per listening line; stop as Child.stop.
export class Stack {
  // Fails first if LP_BIN_DIR is unset; creates the temp dir. `env`: the children's environment.
  constructor(prefix, env) {
    this.binDir = process.env.LP_BIN_DIR;
    assert.ok(this.binDir, 'set LP_BIN_DIR to the directory holding logging-proxy, log-server ' +
                           'and mock_upstream (ctest does)');
    this.env = env;
    this.dir = mkdtempSync(path.join(tmpdir(), prefix));
    this.logServer = this.mock = this.proxy = null;
    this.logUrl = this.mockUrl = this.mockHttpsPort = this.proxyUrl = null;
  }

  #spawn(name, exe, args) {
    return new Child(name, path.join(this.binDir, exe), args, { cwd: this.dir, env: this.env });
  }

  // Starts log-server (config written to DIR/log-server.yaml, data in DIR/data) and mock_upstream
  // (with `mockArgs`) side by side and reads their ports from their startup lines: sets logUrl,
  // mockUrl (the mock's plain listener) and mockHttpsPort (a string; "0" without TLS). The log
  // server comes first because the proxy's config needs its port. (A JSON string is a valid
  // YAML double-quoted scalar: paths are written with JSON.stringify.)
  async startLogServerAndMock(mockArgs = []) {
    const logServerConfig = path.join(this.dir, 'log-server.yaml');
    writeFileSync(logServerConfig, [
      'log_server:',
      '  host: "127.0.0.1"',
      '  port: 0',
      `  data_dir: ${JSON.stringify(path.join(this.dir, 'data'))}`,
      '',
    ].join('\n'));
    this.logServer = this.#spawn('log-server', 'log-server', ['--config', logServerConfig]);
    this.mock = this.#spawn('mock_upstream', 'mock_upstream', mockArgs);
    const [, logPort] =
        await this.logServer.waitForLine(/^log-server listening on http:\/\/\S+:(\d+)$/);
    const [, mockPort, mockHttpsPort] =
        await this.mock.waitForLine(/^mock_upstream http=(\d+) https=(\d+)$/);
    this.logUrl = `http://127.0.0.1:${logPort}`;
    this.mockUrl = `http://127.0.0.1:${mockPort}`;
    this.mockHttpsPort = mockHttpsPort;
  }

  // Writes DIR/proxy.yaml (127.0.0.1 port 0, upstream_timeout 20s, console logging, every
  // exchange captured to logUrl with spool DIR/spool and batch_interval 20ms) followed by the
  // caller's `yaml` lines (its routes and anything else), starts logging-proxy with it and sets
  // proxyUrl from its startup line.
  async startProxy(yaml) {
    const proxyConfig = path.join(this.dir, 'proxy.yaml');
    writeFileSync(proxyConfig, [
      'server:',
      '  host: "127.0.0.1"',
      '  port: 0',
      '  upstream_timeout: 20s',
      'logging:',
      '  console: true',
      `  server_url: "${this.logUrl}"`,
      '  default: true',
      `  spool_dir: ${JSON.stringify(path.join(this.dir, 'spool'))}`,
      '  batch_interval: 20ms',
      ...yaml,
      '',
    ].join('\n'));
    this.proxy = this.#spawn('logging-proxy', 'logging-proxy', ['--config', proxyConfig]);
    const [, proxyPort] =
        await this.proxy.waitForLine(/^logging-proxy listening on http:\/\/\S+:(\d+)$/);
    this.proxyUrl = `http://127.0.0.1:${proxyPort}`;
  }

  // Stops the proxy, the mock and the log server (those started), then removes the temp dir.
  async stop() {
    for (const p of [this.proxy, this.mock, this.logServer]) if (p) await p.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  // Polls the log server until exactly one finished capture matches lp_test=TAG; returns it with
  // its stored request and response: {record, requestBytes, request, response} (parseStored).
  // Bounded: `timeoutMs` of polling every 50 ms, each GET bounded by fetchOk.
  async capture(tag, timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      const list = JSON.parse((await fetchOk(
          `${this.logUrl}/requests?q=${encodeURIComponent(`lp_test=${tag}`)}`)).toString());
      last = list.requests;
      if (last.length > 0 && last.every((r) => r.outcome !== 'in_progress')) break;
      if (Date.now() > deadline) {
        assert.fail(`no finished capture for lp_test=${tag} within ${timeoutMs} ms: ` +
                    `${JSON.stringify(last)}\nproxy output:\n${this.proxy.tail()}`);
      }
      await sleep(50);
    }
    assert.equal(last.length, 1, `one capture for lp_test=${tag}: ${JSON.stringify(last)}`);
    const record = last[0];
    const requestBytes = await fetchOk(`${this.logUrl}/requests/${record.id}/request`);
    const responseBytes = await fetchOk(`${this.logUrl}/requests/${record.id}/response`);
    return { record, requestBytes, request: parseStored(requestBytes),
             response: parseStored(responseBytes) };
  }

  // Sends a captured request body straight to the mock (its plain listener: the same endpoints
  // and answers as its HTTPS one), with the headers the mock requires, and returns the response
  // body: the bytes the mock sends for that request. Bounded: 15 s.
  async mockDirect(upstreamPath, body, headers) {
    const res = await fetch(`${this.mockUrl}${upstreamPath}`, {
      method: 'POST', body, headers: { 'Content-Type': 'application/json', ...headers },
      signal: AbortSignal.timeout(15000),
    });
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  }

  // Asserts that the stored response body of capture `c` equals the mock's answer to the stored
  // request body (mockDirect, with the credential headers the mock wants for `upstreamPath`);
  // `what` names the body in the message ("response body", "stream"). Bounded as mockDirect.
  async assertMockAnswer(c, upstreamPath, what) {
    assert.ok(c.response.body.equals(await this.mockDirect(upstreamPath, c.request.body,
                                                           DIRECT_HEADERS[upstreamPath])),
              `the stored ${what} equals the mock's answer to the stored request body`);
  }
}

// The headers the mock requires on a direct call, by path.
const DIRECT_HEADERS = {
  '/v1/chat/completions': { Authorization: 'Bearer direct' },
  '/v1/messages': { 'x-api-key': 'direct', 'anthropic-version': '2023-06-01' },
};

// --- reading captures --------------------------------------------------------------------------

// GET on a fresh connection that closes after the response (agent: false sends
// Connection: close): a kept-alive idle connection would hold up the log server's clean stop.
// Resolves with the body of a 200, rejects otherwise. Bounded: 10 s without a byte fails it.
export function fetchOk(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 10000 }, (res) => {
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
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 10 s`)));
    req.on('error', reject);
  });
}

// A stored HTTP message: start line, header lines, blank line, body bytes. Returns {startLine,
// headers ([name, value] pairs), header(name) (case-insensitive), body}. Synchronous.
export function parseStored(bytes) {
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

// --- checks of a capture and of the mock's answers (all synchronous) ---------------------------

// The stored response of capture `c` is a 200 whose body is the one the mock sent, byte for byte
// (its SHA-256 is the mock's X-Body-Sha256), and record.response_bytes is its length. Returns the
// mock's X-Body-Sha256.
export function checkStoredResponse({ record, response }) {
  assert.match(response.startLine, /^HTTP\/1\.1 200 /);
  const sent = response.header('X-Body-Sha256');
  assert.ok(sent, `the stored response head has the mock's X-Body-Sha256:\n${response.headers}`);
  assert.equal(sha256(response.body), sent, 'stored response body = the bytes the mock sent');
  assert.equal(record.response_bytes, response.body.length);
  return sent;
}

// Credentials are masked in capture `c`: Authorization "Bearer ****" and X-Api-Key "****", then
// the key's last 4 characters. (The OpenAI SDK sends Authorization; Anthropic's 1.x sends its API
// key as a bearer token too, older ones as X-Api-Key.) `secret`, the key the client sent, is
// nowhere in it.
export function checkMaskedCredentials(c, secret) {
  const masked = { authorization: `Bearer ****${secret.slice(-4)}`,
                   'x-api-key': `****${secret.slice(-4)}` };
  const credentials = c.request.headers.filter(([n]) => n.toLowerCase() in masked);
  assert.ok(credentials.length > 0,
            `the stored request has the credential header:\n${c.request.headers.join('\n')}`);
  for (const [name, value] of credentials) assert.equal(value, masked[name.toLowerCase()], name);
  assert.ok(!c.requestBytes.includes(secret), 'the API key does not appear in the capture');
}

// The mock's non-streaming chat completion for the user message `said` (model mock-gpt), as the
// OpenAI SDK returns it.
export function checkMockChatCompletion(completion, said) {
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, 'mock-gpt');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, GREETING + said);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.usage.completion_tokens, expectedPieces(said).length);
}

// Reassembles the assistant text from a stored OpenAI SSE body.
export function openaiStreamText(body) {
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

// The events of the mock's Anthropic stream with `n` text deltas; `ping` false: without the
// ping, as the Anthropic SDK passes them on (its streamEvent skips ping).
export function anthropicStreamEvents(n, { ping = true } = {}) {
  return ['message_start', 'content_block_start', ...(ping ? ['ping'] : []),
          ...Array(n).fill('content_block_delta'), 'content_block_stop',
          'message_delta', 'message_stop'];
}

// The stored Anthropic stream `body` holds the mock's events for `n` deltas, ping included, and
// ends with message_stop.
export function checkStoredAnthropicStream(body, n) {
  const stored = body.toString('utf8');
  assert.deepEqual(stored.match(/^event: \w+$/gm).map((l) => l.slice(7)),
                   anthropicStreamEvents(n));
  assert.match(stored, /event: message_stop\ndata: \{"type":"message_stop"\}\n\n$/);
}
