// The real OpenAI and Anthropic SDKs through logging-proxy as a FORWARD proxy (forward_proxy:
// enabled): the SDKs know nothing of the proxy's routes; they talk to the upstream's own https://
// URL through an undici ProxyAgent, trust the proxy's local CA through NODE_EXTRA_CA_CERTS, and
// the proxy intercepts the CONNECT, decrypts, forwards and captures.
//
//   LP_BIN_DIR=build/bin node --test tests/clients/forward.test.mjs     (ctest: clients:sdk)
//
// Processes: log-server, mock_upstream (plain and HTTPS, its certificate from a test CA made
// here with the openssl CLI, like make_test_cert in tests/e2e/harness.cc) and logging-proxy from
// $LP_BIN_DIR, each on 127.0.0.1 port 0, all in one temp dir, which is the proxy's working
// directory: its CA is created on start in ./ca (forward_proxy.ca_dir). The proxy intercepts
// 127.0.0.1; the route `mocktls`, whose destination is exactly the mock's HTTPS origin, lends
// the CONNECTs to it its ca_file (the test CA), so the proxy verifies the mock.
//
// The SDK calls run in a child node process (this file with --sdk-client), since
// NODE_EXTRA_CA_CERTS is read once at startup: it gets NODE_EXTRA_CA_CERTS=<tmp>/ca/ca.pem and
// nothing else proxy-related. The SDKs get baseURL https://127.0.0.1:MOCK_HTTPS_PORT[/v1] and
// `fetch` + `fetchOptions: { dispatcher: new ProxyAgent(proxy) }` from undici (the pairing the
// openai README's "Configuring proxies" prescribes: a dispatcher must go with the fetch of the
// same undici). The child does not trust the mock's test CA, so a call can only succeed if the
// proxy intercepted it (a blind tunnel would show the child the mock's certificate).
// Per call the test asserts the SDK's answer and the capture on the log server: route mocktls,
// proxy_path and destination the absolute https URL, outcome complete, and the stored response
// body byte-exact (its SHA-256 is the mock's X-Body-Sha256, which also reached the SDK, and it
// equals what the mock returns when the captured request body is sent to it directly).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { GREETING, Stack, anthropicStreamEvents, checkMaskedCredentials,
         checkMockChatCompletion, checkStoredAnthropicStream, checkStoredResponse, childEnv,
         expectedPieces, openaiStreamText, sleep } from './stack.mjs';

const SELF = fileURLToPath(import.meta.url);
const CLIENT_FLAG = '--sdk-client';
const RESULT_MARK = 'LP_FORWARD_RESULT ';
const OPENAI_KEY = 'sk-test-openai-key-0000fwdo';
const ANTHROPIC_KEY = 'sk-ant-test-key-0000fwda';
const CHUNK_MS = 60;  // X-Mock-Chunk-Ms of the streams: the mock's pause between events

// Environment variables that would change where a process connects or what it trusts; none of
// them may leak in from the shell that runs the test.
const STRAY_ENV = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy',
                   'ALL_PROXY', 'no_proxy', 'NO_PROXY', 'NODE_USE_ENV_PROXY',
                   'NODE_EXTRA_CA_CERTS', 'NODE_TLS_REJECT_UNAUTHORIZED', 'OPENAI_BASE_URL',
                   'ANTHROPIC_BASE_URL', 'ANTHROPIC_AUTH_TOKEN'];

// The children's environment: without STRAY_ENV, LOG_SERVER_TOKEN (this test's log server runs
// without a token; childEnv drops it) and NODE_TEST_CONTEXT (set by `node --test` for this
// process; not for the SDK child).
function cleanEnv() {
  return childEnv([...STRAY_ENV, 'NODE_TEST_CONTEXT']);
}

// --- the SDK child (node forward.test.mjs --sdk-client CONFIG_JSON) ----------------------------

// The fields of an error and of its causes that say what went wrong (fetch wraps the socket's
// error, the SDK wraps fetch's).
function describeError(err) {
  const chain = [];
  for (let e = err; e && chain.length < 6; e = e.cause) {
    chain.push({ class: e.constructor?.name, name: e.name, code: e.code, status: e.status,
                 message: String(e.message) });
  }
  return { chain, stack: String(err?.stack ?? err) };
}

async function sdkClient(cfg) {
  const { default: OpenAI } = await import('openai');
  const { default: Anthropic } = await import('@anthropic-ai/sdk');
  const { fetch: undiciFetch, ProxyAgent } = await import('undici');

  // The proxy is the only way out: no ca, no TLS option, just the proxy's URL.
  const dispatcher = new ProxyAgent(cfg.proxyUrl);
  const via = { fetch: undiciFetch, fetchOptions: { dispatcher }, maxRetries: 0,
                timeout: 20000 };
  const openai = new OpenAI({ apiKey: OPENAI_KEY, baseURL: `${cfg.mockHttpsUrl}/v1`, ...via });
  // authToken: null, so that no ANTHROPIC_AUTH_TOKEN adds a header (it is not passed anyway).
  const anthropic = new Anthropic({ apiKey: ANTHROPIC_KEY, authToken: null,
                                    baseURL: cfg.mockHttpsUrl, ...via });

  const calls = {
    async openaiChat({ tag, said }) {
      const { data, response } = await openai.chat.completions.create(
          { model: 'mock-gpt', messages: [{ role: 'system', content: 'Be brief.' },
                                             { role: 'user', content: said }] },
          { query: { lp_test: tag } }).withResponse();
      return { completion: data, bodySha: response.headers.get('x-body-sha256') };
    },
    async openaiStream({ tag, said }) {
      const { data: stream, response } = await openai.chat.completions.create(
          { model: 'mock-gpt', stream: true, messages: [{ role: 'user', content: said }] },
          { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': String(CHUNK_MS) } })
        .withResponse();
      const chunks = [];
      const deltas = [];
      const times = [];
      let finish = null;
      for await (const chunk of stream) {
        chunks.push(chunk.object);
        const choice = chunk.choices[0];
        if (choice?.delta?.content) {
          deltas.push(choice.delta.content);
          times.push(performance.now());
        }
        if (choice?.finish_reason) finish = choice.finish_reason;
      }
      return { chunks, deltas, times, finish, contentType: response.headers.get('content-type'),
               bodySha: response.headers.get('x-body-sha256') };
    },
    async anthropicMessage({ tag, said }) {
      const { data, response } = await anthropic.messages.create(
          { model: 'mock-claude', max_tokens: 256, messages: [{ role: 'user', content: said }] },
          { query: { lp_test: tag } }).withResponse();
      return { message: data, bodySha: response.headers.get('x-body-sha256') };
    },
    async anthropicStream({ tag, said }) {
      const stream = anthropic.messages.stream(
          { model: 'mock-claude', max_tokens: 256, messages: [{ role: 'user', content: said }] },
          { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': String(CHUNK_MS) } });
      const texts = [];
      const times = [];
      const events = [];
      stream.on('text', (delta) => {
        texts.push(delta);
        times.push(performance.now());
      });
      stream.on('streamEvent', (event) => events.push(event.type));
      const message = await stream.finalMessage();
      const { response } = await stream.withResponse();
      return { texts, times, events, message, contentType: response.headers.get('content-type'),
               bodySha: response.headers.get('x-body-sha256') };
    },
  };

  // One after the other; a failed call is reported, and the others still run. `ms`: how long
  // the call took (diagnostics).
  const results = {};
  for (const [name, args] of Object.entries(cfg.calls)) {
    const start = performance.now();
    try {
      results[name] = { ok: true, value: await calls[name](args) };
    } catch (err) {
      results[name] = { ok: false, error: describeError(err) };
    }
    results[name].ms = Math.round(performance.now() - start);
  }
  process.stdout.write(`${RESULT_MARK}${JSON.stringify(results)}\n`);
  await dispatcher.close();
}

// --- processes (stack.mjs) ---------------------------------------------------------------------

// Runs a command to completion (bounded); fails with its output if it does not succeed.
function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.error?.message ?? ''}\n` +
                            `${r.stdout}\n${r.stderr}`);
}

// A test CA and a server certificate for 127.0.0.1 signed by it (tests/e2e/harness.cc
// make_test_cert): {caPem, certPem, keyPem}.
function makeTestCert(certDir) {
  mkdirSync(certDir);
  const f = (name) => path.join(certDir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('openssl', ['req', '-x509', ...ec, '-keyout', f('test-ca.key'), '-out', f('test-ca.pem'),
                  '-days', '7', '-subj', '/CN=logging-proxy forward test CA',
                  '-addext', 'basicConstraints=critical,CA:TRUE',
                  '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], certDir);
  run('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'),
                  '-subj', '/CN=localhost'], certDir);
  writeFileSync(f('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' +
                                 'basicConstraints=critical,CA:FALSE\n' +
                                 'keyUsage=critical,digitalSignature\n' +
                                 'extendedKeyUsage=serverAuth\n');
  run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('test-ca.pem'),
                  '-CAkey', f('test-ca.key'), '-CAcreateserial', '-out', f('server.pem'),
                  '-days', '7', '-extfile', f('server.ext')], certDir);
  return { caPem: f('test-ca.pem'), certPem: f('server.pem'), keyPem: f('server.key') };
}

let stack;
let mockHttpsUrl, proxyUrl, proxyCaPem;

async function startAll() {
  stack = new Stack('lp-forward-test-', cleanEnv());
  const { dir } = stack;
  const cert = makeTestCert(path.join(dir, 'tls'));

  await stack.startLogServerAndMock(['--tls-cert', cert.certPem, '--tls-key', cert.keyPem]);
  assert.notEqual(stack.mockHttpsPort, '0', 'mock_upstream serves HTTPS with --tls-cert/--tls-key');
  mockHttpsUrl = `https://127.0.0.1:${stack.mockHttpsPort}`;

  await stack.startProxy([
    'routes:',
    '  mocktls:',
    '    pattern: "/mocktls/"',
    `    destination: "${mockHttpsUrl}/"`,
    `    ca_file: ${JSON.stringify(cert.caPem)}`,
    'forward_proxy:',
    '  enabled: true',
    '  intercept: ["127.0.0.1"]',
    '  ca_dir: ca',
    '  users: []',
  ]);
  proxyUrl = stack.proxyUrl;
  // The proxy makes its CA in ./ca on the first start with interception on (there is none yet).
  proxyCaPem = path.join(dir, 'ca', 'ca.pem');
  const deadline = Date.now() + 15000;
  while (!existsSync(proxyCaPem) || !existsSync(path.join(dir, 'ca', 'ca.key'))) {
    assert.ok(!stack.proxy.exited && Date.now() < deadline,
              `the proxy did not create ca/ca.pem and ca/ca.key within 15 s; its output:\n` +
              stack.proxy.tail());
    await sleep(20);
  }
}

// Runs this file as the SDK child with `calls` ({name: args}); resolves with its results. Bounded:
// killed after `timeoutMs`. `trustProxyCa` false: no NODE_EXTRA_CA_CERTS at all.
function runSdkClient(calls, { trustProxyCa = true, timeoutMs = 60000 } = {}) {
  const env = cleanEnv();
  if (trustProxyCa) env.NODE_EXTRA_CA_CERTS = proxyCaPem;
  const cfg = { proxyUrl, mockHttpsUrl, calls };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SELF, CLIENT_FLAG, JSON.stringify(cfg)],
                        { cwd: path.dirname(SELF), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the SDK child did not finish within ${timeoutMs} ms\nstdout:\n${out}\n` +
                       `stderr:\n${err}\nproxy output:\n${stack.proxy.tail()}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith(RESULT_MARK));
      if (code !== 0 || !line) {
        reject(new Error(`the SDK child exited (${code}, ${signal}) without results\nstdout:\n` +
                         `${out}\nstderr:\n${err}`));
        return;
      }
      resolve(JSON.parse(line.slice(RESULT_MARK.length)));
    });
  });
}

// --- capture checks (the shared ones in stack.mjs) ---------------------------------------------

// The checks every intercepted call gets: the exchange is captured under the route that lends
// its trust (mocktls), with the absolute https URL as proxy_path and destination, the stored
// response body byte-exact to what the mock sent, and the credential masked. Returns the capture.
async function checkForwardCapture(tag, { path: upstreamPath, secret, bodySha }) {
  const c = await stack.capture(tag);
  const { record, request } = c;
  const url = `${mockHttpsUrl}${upstreamPath}?lp_test=${tag}`;
  assert.equal(record.outcome, 'complete', JSON.stringify(record));
  assert.equal(record.status, 200, JSON.stringify(record));
  assert.equal(record.method, 'POST');
  assert.equal(record.route, 'mocktls');
  assert.equal(record.proxy_path, url);
  assert.equal(record.destination, url);

  // The request as the proxy forwarded it, in origin form, with X-Proxy-Path = proxy_path.
  assert.equal(request.startLine, `POST ${upstreamPath}?lp_test=${tag} HTTP/1.1`);
  assert.equal(request.header('X-Proxy-Path'), url);
  assert.equal(record.request_bytes, request.body.length);

  // The response body as stored is the one the mock sent, byte for byte, and the SDK got the
  // mock's X-Body-Sha256 of it.
  const sent = checkStoredResponse(c);
  assert.equal(bodySha, sent, 'the SDK received the answer whose hash the capture holds');

  // Credentials masked ("Bearer ****" + last 4, "****" + last 4); the key nowhere in the capture.
  checkMaskedCredentials(c, secret);
  return c;
}

// The deltas reached the SDK spread out as the mock sent them, not all at once at the end.
function assertSpread(times, n) {
  const spread = times.at(-1) - times[0];
  assert.ok(spread >= CHUNK_MS * (n - 1) * 0.5,
            `deltas arrived as the mock sent them, ${CHUNK_MS} ms apart (spread ${spread} ms)`);
}

// --- tests -------------------------------------------------------------------------------------

const CALLS = {
  openaiChat: { tag: 'fwd-openai-chat', said: 'What is 2 + 2, via a forward proxy?' },
  openaiStream: { tag: 'fwd-openai-stream', said: 'Stream through the CONNECT tunnel' },
  anthropicMessage: { tag: 'fwd-anthropic-message', said: 'Hello over CONNECT' },
  anthropicStream: { tag: 'fwd-anthropic-stream', said: 'Tell me about forward proxies' },
};

// The four SDK calls run in one child process, started by the first test that needs them.
let sdkRun;
async function sdkResult(t, name) {
  sdkRun ??= runSdkClient(CALLS);
  const r = (await sdkRun)[name];
  assert.ok(r, `the SDK child reported ${name}`);
  t.diagnostic(`${name}: the SDK call took ${r.ms} ms`);
  if (!r.ok) {
    assert.fail(`${name} failed in the SDK child: ${JSON.stringify(r.error.chain)}\n` +
                `${r.error.stack}\nproxy output:\n${stack.proxy.tail()}`);
  }
  return r.value;
}

// Every wait has its own deadline; this bounds each hook and test as a whole too.
const LIMIT = { timeout: 90000 };

const OPENAI_CHAT = { path: '/v1/chat/completions', secret: OPENAI_KEY };
const ANTHROPIC_MESSAGES = { path: '/v1/messages', secret: ANTHROPIC_KEY };

// The test of one of the four SDK calls (CALLS[name]) to the API `api` (OPENAI_CHAT or
// ANTHROPIC_MESSAGES): `checkAnswer(r, said)` checks the SDK's result r; then the capture gets
// checkForwardCapture (with the X-Body-Sha256 the SDK got) and `checkStored(c, r, said)`; last,
// the stored body (`stored`: "response body" or "stream" in the message) must be the mock's
// answer to the stored request body. Bounded by LIMIT.
function interceptedCallTest(title, name, api, stored, checkAnswer, checkStored) {
  test(title, LIMIT, async (t) => {
    const { tag, said } = CALLS[name];
    const r = await sdkResult(t, name);
    checkAnswer(r, said);
    const c = await checkForwardCapture(tag, { ...api, bodySha: r.bodySha });
    checkStored(c, r, said);
    await stack.assertMockAnswer(c, api.path, stored);
  });
}

function defineTests() {
  before(startAll, LIMIT);

  after(async () => {
    await stack?.stop();
  });

  interceptedCallTest(
      'forward proxy, OpenAI SDK: chat completion via CONNECT, intercepted and captured',
      'openaiChat', OPENAI_CHAT, 'response body',
      ({ completion }, said) => checkMockChatCompletion(completion, said),
      (c, r, said) => {
        assert.equal(JSON.parse(c.response.body).choices[0].message.content, GREETING + said);
        assert.equal(JSON.parse(c.request.body).messages[1].content, said);
      });

  interceptedCallTest(
      'forward proxy, OpenAI SDK: streaming chat completion, delta by delta, byte-exact capture',
      'openaiStream', OPENAI_CHAT, 'stream',
      (r, said) => {
        assert.match(r.contentType, /^text\/event-stream/);
        assert.ok(r.chunks.every((o) => o === 'chat.completion.chunk'), JSON.stringify(r.chunks));
        assert.deepEqual(r.deltas, expectedPieces(said));
        assert.equal(r.finish, 'stop');
        assertSpread(r.times, r.deltas.length);
      },
      (c, r, said) => {
        assert.equal(c.record.response_content_type, 'text/event-stream');
        assert.equal(openaiStreamText(c.response.body), GREETING + said);
      });

  interceptedCallTest(
      'forward proxy, Anthropic SDK: message via CONNECT, intercepted and captured',
      'anthropicMessage', ANTHROPIC_MESSAGES, 'response body',
      ({ message }, said) => {
        assert.equal(message.id, 'msg_mock');
        assert.equal(message.type, 'message');
        assert.equal(message.role, 'assistant');
        assert.equal(message.model, 'mock-claude');
        assert.equal(message.stop_reason, 'end_turn');
        assert.deepEqual(message.content, [{ type: 'text', text: GREETING + said }]);
        assert.equal(message.usage.output_tokens, expectedPieces(said).length);
      },
      (c, r, said) => {
        assert.ok(c.request.header('anthropic-version'),
                  'the SDK\'s anthropic-version is captured');
        assert.equal(JSON.parse(c.response.body).content[0].text, GREETING + said);
      });

  interceptedCallTest(
      'forward proxy, Anthropic SDK: messages stream, event by event, byte-exact capture',
      'anthropicStream', ANTHROPIC_MESSAGES, 'stream',
      (r, said) => {
        assert.match(r.contentType, /^text\/event-stream/);
        assert.deepEqual(r.texts, expectedPieces(said));
        const n = r.texts.length;
        assert.deepEqual(r.events, anthropicStreamEvents(n, { ping: false }));
        assert.equal(r.message.id, 'msg_mock');
        assert.equal(r.message.stop_reason, 'end_turn');
        assert.equal(r.message.content.length, 1);
        assert.equal(r.message.content[0].text, GREETING + said);
        assert.equal(r.message.usage.output_tokens, n);
        assertSpread(r.times, n);
      },
      (c, r) => {
        assert.equal(c.record.response_content_type, 'text/event-stream');
        checkStoredAnthropicStream(c.response.body, r.texts.length);
      });

  test('forward proxy: without NODE_EXTRA_CA_CERTS the SDK refuses the intercepted TLS',
       LIMIT, async () => {
    // The same client, the proxy's CA not trusted: the leaf the proxy presents for 127.0.0.1
    // fails verification, so nothing reaches the mock (the SDK trusts neither CA).
    const results = await runSdkClient(
        { openaiChat: { tag: 'fwd-untrusted', said: 'Nobody should hear this' } },
        { trustProxyCa: false });
    const r = results.openaiChat;
    assert.equal(r.ok, false, `the call must fail without the CA: ${JSON.stringify(r)}`);
    const [sdkError] = r.error.chain;
    assert.equal(sdkError.class, 'APIConnectionError', JSON.stringify(r.error.chain));
    const codes = r.error.chain.map((e) => e.code).filter(Boolean);
    const certErrors = ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN',
                        'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'DEPTH_ZERO_SELF_SIGNED_CERT'];
    assert.ok(codes.some((code) => certErrors.includes(code)),
              `a certificate verification error: ${JSON.stringify(r.error.chain)}`);
  });
}

if (process.argv[2] === CLIENT_FLAG) {
  await sdkClient(JSON.parse(process.argv[3]));
} else {
  defineTests();
}