// The real OpenAI and Anthropic SDKs, and curl, through logging-proxy in front of the project's
// mock upstream, with the captures checked on a real log server.
//
//   LP_BIN_DIR=build/bin node --test tests/clients/sdk.test.mjs     (ctest: clients:sdk)
//
// Processes (stack.mjs): log-server, mock_upstream and logging-proxy from $LP_BIN_DIR, each on
// 127.0.0.1 port 0 (the port is read from its startup line), all in one temp dir. Routes:
//   /openai/    -> mock  (SDK baseURL http://127.0.0.1:PROXY/openai/v1)
//   /anthropic/ -> mock  (SDK baseURL http://127.0.0.1:PROXY/anthropic)
// The mock answers deterministically ("Hello from mock! You said: " + the last user message,
// fixed ids and timestamps) and sends X-Body-Sha256, the SHA-256 of the body it sends. Every
// call carries a query parameter lp_test=NAME, so the test finds its capture with
// GET /requests?q=lp_test=NAME. For each call the test asserts the SDK's result and the capture:
// outcome complete, status 200, the stored response body byte-exact (its SHA-256 is the mock's
// X-Body-Sha256, and it equals what the mock returns when the captured request body is sent to
// it directly), and the credential masked in the stored request.
// The later tests check what the log server derives (DESIGN.md §7) against the SDKs as ground
// truth: GET /requests/{id}/assembled deep-equals the SDK's final object (chat completion with
// parallel tool calls, Responses API, Anthropic thinking + tool_use), the `llm` fields match the
// usage the SDK reports, and gzip/br/zstd answers are served decoded by /response/body.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import zlib from 'node:zlib';

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

import { GREETING, Stack, anthropicStreamEvents, checkMaskedCredentials,
         checkMockChatCompletion, checkStoredAnthropicStream, checkStoredResponse, childEnv,
         expectedPieces, fetchOk, openaiStreamText, sha256, sleep } from './stack.mjs';

const OPENAI_KEY = 'sk-test-openai-key-0000wxyz';
const ANTHROPIC_KEY = 'sk-ant-test-key-0000abcd';

// --- processes (stack.mjs) ---------------------------------------------------------------------

let stack;
let logUrl, mockUrl, proxyUrl;

before(async () => {
  stack = new Stack('lp-sdk-test-', childEnv());
  await stack.startLogServerAndMock();
  await stack.startProxy([
    'routes:',
    '  openai:',
    '    pattern: "/openai/"',
    `    destination: "${stack.mockUrl}/"`,
    '  anthropic:',
    '    pattern: "/anthropic/"',
    `    destination: "${stack.mockUrl}/"`,
  ]);
  ({ logUrl, mockUrl, proxyUrl } = stack);
});

after(async () => {
  await stack?.stop();
});

// --- helpers -----------------------------------------------------------------------------------

function openaiClient() {
  return new OpenAI({ apiKey: OPENAI_KEY, baseURL: `${proxyUrl}/openai/v1`, maxRetries: 0,
                      timeout: 20000 });
}

function anthropicClient() {
  // authToken: null, so that an ANTHROPIC_AUTH_TOKEN in the environment adds no header.
  return new Anthropic({ apiKey: ANTHROPIC_KEY, authToken: null,
                         baseURL: `${proxyUrl}/anthropic`, maxRetries: 0, timeout: 20000 });
}

// The checks every call through the proxy gets; `secret` is the API key the client sent.
// Returns the capture.
async function checkCapture(tag, { route, path: upstreamPath, secret }) {
  const c = await stack.capture(tag);
  const { record, request } = c;
  assert.equal(record.outcome, 'complete', JSON.stringify(record));
  assert.equal(record.status, 200, JSON.stringify(record));
  assert.equal(record.route, route);
  assert.equal(record.proxy_path, `/${route}${upstreamPath}?lp_test=${tag}`);
  assert.equal(record.destination, `${mockUrl}${upstreamPath}?lp_test=${tag}`);

  // The response body as stored is the one the mock sent, byte for byte.
  checkStoredResponse(c);

  // Credentials are masked in the capture, the key nowhere in it.
  checkMaskedCredentials(c, secret);
  assert.equal(request.header('X-Proxy-Path'), record.proxy_path);
  assert.equal(record.request_bytes, request.body.length);
  return c;
}

// --- tests -------------------------------------------------------------------------------------

test('OpenAI SDK: chat completion (non-streaming) through the proxy, captured', async () => {
  const tag = 'openai-chat';
  const said = 'What is 2 + 2?';
  const { data: completion, response } = await openaiClient().chat.completions.create(
      { model: 'mock-gpt', messages: [{ role: 'system', content: 'Be brief.' },
                                         { role: 'user', content: said }] },
      { query: { lp_test: tag } }).withResponse();
  checkMockChatCompletion(completion, said);

  const c = await checkCapture(tag, { route: 'openai', path: '/v1/chat/completions',
                                      secret: OPENAI_KEY });
  // The client got the body the capture holds.
  assert.equal(response.headers.get('x-body-sha256'), sha256(c.response.body));
  assert.equal(JSON.parse(c.response.body).choices[0].message.content, GREETING + said);
  const sentBody = JSON.parse(c.request.body);
  assert.equal(sentBody.model, 'mock-gpt');
  assert.equal(sentBody.messages[1].content, said);
  await stack.assertMockAnswer(c, '/v1/chat/completions', 'response body');
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
  await stack.assertMockAnswer(c, '/v1/chat/completions', 'stream');
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
  assert.deepEqual(events, anthropicStreamEvents(n, { ping: false }));

  const c = await checkCapture(tag, { route: 'anthropic', path: '/v1/messages',
                                      secret: ANTHROPIC_KEY });
  assert.ok(c.request.header('anthropic-version'), 'the SDK\'s anthropic-version is captured');
  assert.equal(response.headers.get('x-body-sha256'), sha256(c.response.body));
  checkStoredAnthropicStream(c.response.body, n);
  await stack.assertMockAnswer(c, '/v1/messages', 'stream');
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

// --- LLM fields, assembled answers and decoded bodies (DESIGN.md §7) ---------------------------
// The SDKs are the ground truth: what the log server rebuilds from a captured stream
// (GET /requests/{id}/assembled) must be what the SDK assembled from the same bytes, and the
// `llm` fields of GET /requests/{id} must match the usage the SDK reports. The mock's realistic
// answers are selected by model ("mock-tools", "mock-text") and by /v1/responses; see the header
// of tests/e2e/mock_upstream.cc. The mock is at 127.0.0.1, not a known provider host, so an
// OpenAI-shaped call is provider "openai-compatible" and an Anthropic-shaped one "anthropic"
// (the API it speaks; README "Reading captures").

// GET on a fresh connection: {status, headers, body}, whatever the status.
function httpGet(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                                    body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

// POST through node's http module, which (unlike fetch) leaves a Content-Encoding undone.
function rawPost(url, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false,
                                    headers: { 'Content-Type': 'application/json', ...headers } },
                             (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                                    body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function getJson(url) {
  return JSON.parse((await fetchOk(url)).toString('utf8'));
}

// A plain JSON copy of an SDK result: what JSON.stringify sees (getters evaluated,
// non-enumerable helpers such as the Anthropic SDK's __json_buf dropped).
const plain = (x) => JSON.parse(JSON.stringify(x));

// Deletes obj[key] after checking that it holds `expected` (so that only the helper fields the
// SDK is known to add are stripped, never a field that came from the wire).
function strip(obj, key, expected, where) {
  assert.ok(key in obj, `${where}.${key}: the SDK helper field is expected here`);
  assert.deepEqual(obj[key], expected, `${where}.${key}`);
  delete obj[key];
}

// The SSE events in a body as WHATWG dispatches them: blocks ended by a blank line that hold a
// data field (comments alone are not events).
function countSseEvents(body) {
  const text = body.toString('utf8').replace(/\r\n|\r/g, '\n');
  let n = 0;
  for (const block of text.split('\n\n')) {
    if (block.split('\n').some((l) => l === 'data' || l.startsWith('data:'))) n += 1;
  }
  return n;
}

// Polls GET /requests/{id} until the derivation has run ("llm" non-null: it happens off the
// ingest path, within about 1 s); returns the record.
async function waitForLlm(id, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const r = await httpGet(`${logUrl}/requests/${id}`);
    last = `${r.status} ${r.body.toString('utf8')}`;
    if (r.status === 200) {
      const record = JSON.parse(r.body.toString('utf8'));
      if (record.llm !== null && typeof record.llm === 'object') return record;
    }
    if (Date.now() > deadline) {
      assert.fail(`GET /requests/${id} has no "llm" object within ${timeoutMs} ms; last: ${last}`);
    }
    await sleep(25);
  }
}

// GET /requests/{id}/assembled as JSON.
async function assembledOf(id) {
  const r = await httpGet(`${logUrl}/requests/${id}/assembled`);
  assert.equal(r.status, 200, `GET /requests/${id}/assembled: ${r.status} ${r.body}`);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  return JSON.parse(r.body.toString('utf8'));
}

// The llm fields: `expected` exactly, the `absent` keys absent (absent is not 0 or null), and the
// timings numbers with first_event_ms <= ttft_ms. With `minContentGapMs`, the first content
// event came that long after the first event (the mock pauses between events), so a ttft taken
// from a role-only chunk or message_start fails.
function checkLlm(llm, expected, { absent = [], minContentGapMs = 0, stream = true } = {}) {
  const got = Object.fromEntries(Object.keys(expected).map((k) => [k, llm[k]]));
  assert.deepEqual(got, expected, `llm fields: ${JSON.stringify(llm)}`);
  for (const key of absent) {
    assert.ok(!(key in llm), `llm.${key} is absent (the upstream did not send it): ` +
                             JSON.stringify(llm));
  }
  if (!stream) return;
  assert.equal(typeof llm.first_event_ms, 'number', JSON.stringify(llm));
  assert.equal(typeof llm.ttft_ms, 'number', JSON.stringify(llm));
  assert.ok(llm.first_event_ms >= 0 && llm.first_event_ms <= llm.ttft_ms,
            `0 <= first_event_ms <= ttft_ms: ${JSON.stringify(llm)}`);
  assert.ok(llm.ttft_ms - llm.first_event_ms >= minContentGapMs,
            `the first content event came >= ${minContentGapMs} ms after the first event: ` +
            JSON.stringify(llm));
}

// The events the mock sent (its X-Mock-Events header, kept in the capture), checked against the
// stored stream.
function mockEvents(c) {
  const n = Number(c.response.header('X-Mock-Events'));
  assert.ok(n > 0, 'the mock sent X-Mock-Events');
  assert.equal(countSseEvents(c.response.body), n, 'the stored stream holds every event');
  return n;
}

const WEATHER_TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather',
                                   parameters: { type: 'object',
                                                 properties: { city: { type: 'string' },
                                                               unit: { type: 'string' } } } } },
  { type: 'function', function: { name: 'get_local_time', description: 'Local time',
                                   parameters: { type: 'object',
                                                 properties: { city: { type: 'string' },
                                                               format: { type: 'string' } } } } },
];

// The fields openai-node adds to a chat completion that are not on the wire:
// maybeParseChatCompletion (openai/lib/parser.mjs, called by finalizeChatCompletion in
// lib/ChatCompletionStream.mjs) sets choices[].message.parsed = null when no response_format or
// strict tool asks for parsing (then parsed_arguments is not added either, which the deep-equal
// checks).
function chatCompletionOnWire(sdkResult) {
  const out = plain(sdkResult);
  for (const [i, choice] of out.choices.entries()) {
    strip(choice.message, 'parsed', null, `choices[${i}].message`);
  }
  return out;
}

const GAP_MS = 30;  // X-Mock-Chunk-Ms of the streams below

test('OpenAI SDK: stream with parallel tool calls and include_usage; llm fields, assembled',
     async () => {
  const tag = 'openai-tools-stream';
  const stream = openaiClient().chat.completions.stream(
      { model: 'mock-tools', stream_options: { include_usage: true }, tools: WEATHER_TOOLS,
        messages: [{ role: 'user', content: 'Weather in Paris and the time in Tokyo?' }] },
      { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': String(GAP_MS) } });
  const completion = await stream.finalChatCompletion();

  // What the mock sends, as the SDK saw it (so that the checks below test the log server).
  const message = completion.choices[0].message;
  assert.equal(completion.id, 'chatcmpl-mocktools01');
  assert.equal(completion.model, 'mock-tools-2025-06-01');
  assert.equal(message.content, 'Let me check the weather in both cities.');
  assert.equal(message.refusal, null);
  assert.deepEqual(message.tool_calls.map((t) => [t.id, t.function.name, t.function.arguments]),
                   [['call_mock_paris', 'get_weather', '{"city": "Paris", "unit": "celsius"}'],
                    ['call_mock_tokyo', 'get_local_time', '{"city": "Tokyo", "format": "24h"}']]);
  assert.equal(completion.choices[0].finish_reason, 'tool_calls');
  const usage = { prompt_tokens: 112, completion_tokens: 58, total_tokens: 170,
                  prompt_tokens_details: { cached_tokens: 64, audio_tokens: 0 },
                  completion_tokens_details: { reasoning_tokens: 12, audio_tokens: 0,
                                               accepted_prediction_tokens: 0,
                                               rejected_prediction_tokens: 0 } };
  assert.deepEqual(plain(completion.usage), usage);

  const c = await checkCapture(tag, { route: 'openai', path: '/v1/chat/completions',
                                      secret: OPENAI_KEY });
  const events = mockEvents(c);
  assert.equal(events, 17);  // role, 4 content, 2 x (1 + fragments), finish, usage, [DONE]
  const { llm } = await waitForLlm(c.record.id);
  checkLlm(llm, { provider: 'openai-compatible', api: 'chat.completions', model: 'mock-tools',
                  response_model: 'mock-tools-2025-06-01', stream: true,
                  response_id: 'chatcmpl-mocktools01', input_tokens: 112, output_tokens: 58,
                  cached_input_tokens: 64, reasoning_tokens: 12, total_tokens: 170,
                  finish_reason: 'tool_calls', events, usage },
           { absent: ['cache_creation_input_tokens', 'error'], minContentGapMs: GAP_MS / 2 });
  assert.deepEqual(await assembledOf(c.record.id), chatCompletionOnWire(completion));
});

test('OpenAI SDK: text stream split mid-word, with and without include_usage; llm, assembled',
     async () => {
  const said = [{ role: 'user', content: 'How is the weather in Paris?' }];
  const usage = { prompt_tokens: 21, completion_tokens: 14, total_tokens: 35,
                  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
                  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0,
                                               accepted_prediction_tokens: 0,
                                               rejected_prediction_tokens: 0 } };
  for (const includeUsage of [true, false]) {
    const tag = includeUsage ? 'openai-text-stream' : 'openai-nousage-stream';
    const stream = openaiClient().chat.completions.stream(
        { model: 'mock-text', messages: said,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}) },
        { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': String(GAP_MS) } });
    const completion = await stream.finalChatCompletion();
    assert.equal(completion.choices[0].message.content,
                 'The weather in Paris is sunny and 22 \u00b0C, with a light breeze.');
    assert.equal(completion.choices[0].message.tool_calls, undefined);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    if (includeUsage) {
      assert.deepEqual(plain(completion.usage), usage);
    } else {
      assert.ok(!('usage' in completion), 'no usage on the wire, none in the SDK result');
    }

    const c = await checkCapture(tag, { route: 'openai', path: '/v1/chat/completions',
                                        secret: OPENAI_KEY });
    const events = mockEvents(c);
    assert.equal(events, includeUsage ? 9 : 8);
    const { llm } = await waitForLlm(c.record.id);
    const common = { provider: 'openai-compatible', api: 'chat.completions', model: 'mock-text',
                     response_model: 'mock-text-2025-06-01', stream: true,
                     response_id: 'chatcmpl-mocktext01', finish_reason: 'stop', events };
    if (includeUsage) {
      // Details that are 0 on the wire are 0, not absent.
      checkLlm(llm, { ...common, input_tokens: 21, output_tokens: 14, cached_input_tokens: 0,
                      reasoning_tokens: 0, total_tokens: 35, usage },
               { absent: ['cache_creation_input_tokens', 'error'], minContentGapMs: GAP_MS / 2 });
    } else {
      // No usage chunk: no token counts at all (never counted locally, never 0).
      checkLlm(llm, { ...common, usage: null },
               { absent: ['input_tokens', 'output_tokens', 'cached_input_tokens',
                          'cache_creation_input_tokens', 'reasoning_tokens', 'total_tokens',
                          'error'],
                 minContentGapMs: GAP_MS / 2 });
    }
    assert.deepEqual(await assembledOf(c.record.id), chatCompletionOnWire(completion), tag);
  }
});

// The fields openai-node adds to a Response that are not on the wire, all by maybeParseResponse
// (openai/lib/ResponsesParser.mjs; called by finalizeResponse in lib/responses/ResponseStream.mjs)
// when nothing asks for parsing: output_parsed = null, output[].parsed_arguments = null on
// function_call items, output[].content[].parsed = null on message contents, and output_text
// (addOutputText, also called by lib/responses/ResponseAccumulator.mjs and by
// responses.create()): the concatenated output_text parts.
function responseOnWire(sdkResult, { parseHelpers = true } = {}) {
  const out = plain(sdkResult);
  const text = out.output.filter((o) => o.type === 'message')
    .flatMap((o) => o.content).filter((p) => p.type === 'output_text').map((p) => p.text).join('');
  strip(out, 'output_text', text, 'response');
  if (parseHelpers) {
    strip(out, 'output_parsed', null, 'response');
    for (const [i, item] of out.output.entries()) {
      if (item.type === 'function_call') strip(item, 'parsed_arguments', null, `output[${i}]`);
      if (item.type === 'message') {
        for (const [j, part] of item.content.entries()) {
          strip(part, 'parsed', null, `output[${i}].content[${j}]`);
        }
      }
    }
  }
  return out;
}

test('OpenAI SDK: Responses API stream and non-stream; llm fields, assembled', async () => {
  const tag = 'openai-responses-stream';
  const request = { model: 'mock-gpt', input: 'What is the weather in Paris?',
                    tools: [{ type: 'function', name: 'get_weather', strict: false,
                              parameters: { type: 'object',
                                            properties: { city: { type: 'string' },
                                                          unit: { type: 'string' } } } }] };
  const stream = openaiClient().responses.stream(
      request, { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': String(GAP_MS) } });
  const response = await stream.finalResponse();

  assert.equal(response.id, 'resp_mock0001');
  assert.equal(response.model, 'mock-gpt-2025-06-01');
  assert.equal(response.status, 'completed');
  assert.equal(response.output_text, 'Checking the weather in Paris for you now.');
  assert.deepEqual(response.output.map((o) => o.type), ['message', 'function_call']);
  assert.equal(response.output[1].call_id, 'call_mock0001');
  assert.equal(response.output[1].name, 'get_weather');
  assert.equal(response.output[1].arguments, '{"city":"Paris","unit":"celsius"}');
  const usage = { input_tokens: 328, input_tokens_details: { cached_tokens: 256 },
                  output_tokens: 47, output_tokens_details: { reasoning_tokens: 8 },
                  total_tokens: 375 };
  assert.deepEqual(plain(response.usage), usage);

  const c = await checkCapture(tag, { route: 'openai', path: '/v1/responses',
                                      secret: OPENAI_KEY });
  const events = mockEvents(c);
  assert.equal(events, 18);  // no [DONE]: the stream ends at response.completed
  const { llm } = await waitForLlm(c.record.id);
  // Responses has no finish_reason: §7's finish_reason is the response status.
  checkLlm(llm, { provider: 'openai-compatible', api: 'responses', model: 'mock-gpt',
                  response_model: 'mock-gpt-2025-06-01', stream: true,
                  response_id: 'resp_mock0001', input_tokens: 328, output_tokens: 47,
                  cached_input_tokens: 256, reasoning_tokens: 8, total_tokens: 375,
                  finish_reason: 'completed', events, usage },
           // created, in_progress, output_item.added, content_part.added, then the first delta
           { absent: ['cache_creation_input_tokens', 'error'], minContentGapMs: 2 * GAP_MS });
  const wire = responseOnWire(response);
  assert.deepEqual(await assembledOf(c.record.id), wire);

  // Non-streaming: the same final response object; assembled is the body.
  const jsonTag = 'openai-responses-json';
  const created = await openaiClient().responses.create(request, { query: { lp_test: jsonTag } });
  // responses.create() adds output_text only (openai/resources/responses/responses.mjs).
  const createdWire = responseOnWire(created, { parseHelpers: false });
  assert.deepEqual(createdWire, wire, 'the non-stream answer is the streamed final response');
  const cj = await checkCapture(jsonTag, { route: 'openai', path: '/v1/responses',
                                           secret: OPENAI_KEY });
  const rj = await waitForLlm(cj.record.id);
  checkLlm(rj.llm, { provider: 'openai-compatible', api: 'responses', model: 'mock-gpt',
                     response_model: 'mock-gpt-2025-06-01', stream: false,
                     response_id: 'resp_mock0001', input_tokens: 328, output_tokens: 47,
                     cached_input_tokens: 256, reasoning_tokens: 8, total_tokens: 375,
                     finish_reason: 'completed', usage },
           { absent: ['cache_creation_input_tokens', 'error'], stream: false });
  assert.deepEqual(await assembledOf(cj.record.id), createdWire);
});

test('Anthropic SDK: thinking, text and tool_use stream with cache usage; llm, assembled',
     async () => {
  const tag = 'anthropic-tools-stream';
  const stream = anthropicClient().messages.stream(
      { model: 'mock-tools', max_tokens: 1024, thinking: { type: 'enabled', budget_tokens: 512 },
        tools: [{ name: 'get_weather', description: 'Current weather',
                  input_schema: { type: 'object', properties: { city: { type: 'string' },
                                                                unit: { type: 'string' } } } }],
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }] },
      { query: { lp_test: tag }, headers: { 'X-Mock-Chunk-Ms': String(GAP_MS) } });
  const message = await stream.finalMessage();

  assert.equal(message.id, 'msg_mock_tools01');
  assert.equal(message.model, 'mock-tools-2025-06-01');
  assert.equal(message.stop_reason, 'tool_use');
  assert.deepEqual(plain(message.content), [
    { type: 'thinking',
      thinking: 'The user asks about the weather in Paris; I should call get_weather.',
      signature: 'EqQBCkgIBxABGAIiQG1vY2stc2lnbmF0dXJlLWZvci10ZXN0cw==' },
    { type: 'text', text: "I'll check the current weather in Paris." },
    { type: 'tool_use', id: 'toolu_mock01', name: 'get_weather',
      input: { city: 'Paris', unit: 'celsius' } },
  ]);
  // message_start's usage with message_delta's cumulative values written over it.
  const usage = { input_tokens: 25, cache_creation_input_tokens: 120,
                  cache_read_input_tokens: 2048,
                  cache_creation: { ephemeral_5m_input_tokens: 120,
                                    ephemeral_1h_input_tokens: 0 },
                  output_tokens: 97, service_tier: 'standard' };
  assert.deepEqual(plain(message.usage), usage);

  const c = await checkCapture(tag, { route: 'anthropic', path: '/v1/messages',
                                      secret: ANTHROPIC_KEY });
  const events = mockEvents(c);
  assert.equal(events, 19);  // start, ping, 3 + 4 + 6 block events, message_delta, stop
  const { llm } = await waitForLlm(c.record.id);
  // input_tokens = input + cache read + cache creation (OpenTelemetry's meaning); no total on
  // the wire, so total = input + output.
  checkLlm(llm, { provider: 'anthropic', api: 'messages', model: 'mock-tools',
                  response_model: 'mock-tools-2025-06-01', stream: true,
                  response_id: 'msg_mock_tools01', input_tokens: 25 + 2048 + 120,
                  output_tokens: 97, cached_input_tokens: 2048, cache_creation_input_tokens: 120,
                  total_tokens: 25 + 2048 + 120 + 97, finish_reason: 'tool_use', events, usage },
           // message_start, ping, content_block_start, then the first thinking_delta
           { absent: ['reasoning_tokens', 'error'], minContentGapMs: GAP_MS });

  // @anthropic-ai/sdk adds parsed_output = null to the message (maybeParseMessage in
  // @anthropic-ai/sdk/lib/parser.mjs, called by MessageStream); its per-text-block
  // parsed_output and the tool_use block's __json_buf are non-enumerable, so JSON drops them.
  const wire = plain(message);
  strip(wire, 'parsed_output', null, 'message');
  assert.deepEqual(await assembledOf(c.record.id), wire);
});

// Decodes a body coded with `codings` (Content-Encoding order: undone last to first).
function decodeBody(bytes, codings) {
  let out = bytes;
  for (const coding of [...codings].reverse()) {
    if (coding === 'gzip') {
      out = zlib.gunzipSync(out);
    } else if (coding === 'br') {
      out = zlib.brotliDecompressSync(out);
    } else if (coding === 'zstd') {
      if (typeof zlib.zstdDecompressSync === 'function') {
        out = zlib.zstdDecompressSync(out);
      } else {
        // Node before 22.15 has no zstd; the zstd command line tool does it.
        const r = spawnSync('zstd', ['-d', '-c', '-q'], { input: out });
        assert.equal(r.status, 0, `zstd -d (needed for Node ${process.version}): ` +
                                   `${r.error?.message ?? r.stderr}`);
        out = r.stdout;
      }
    } else {
      assert.fail(`unknown coding ${coding}`);
    }
  }
  return out;
}

test('Compressed JSON answers (gzip, br, zstd, gzip+br): decoded body, raw body, llm', async () => {
  const request = { model: 'mock-text',
                    messages: [{ role: 'user', content: 'How is the weather in Paris?' }] };
  // The mock's answer does not depend on the coding: the SDK's plain answer is the reference.
  const reference = plain(await openaiClient().chat.completions.create(
      request, { query: { lp_test: 'compressed-identity' } }));
  assert.equal(reference.id, 'chatcmpl-mocktext01');

  // (Tags must not be substrings of each other: captures are found by a substring search.)
  for (const [name, header] of [['gzip', 'gzip'], ['br', 'br'], ['zstd', 'zstd'],
                                ['stacked', 'gzip, br']]) {
    const codings = header.split(', ');
    const tag = `compressed-${name}`;
    const sent = await rawPost(`${proxyUrl}/openai/v1/chat/completions?lp_test=${tag}`,
                               JSON.stringify(request),
                               { Authorization: `Bearer ${OPENAI_KEY}`,
                                 'X-Mock-Encoding': header, 'Accept-Encoding': header });
    assert.equal(sent.status, 200, `${tag}: ${sent.body}`);
    assert.equal(sent.headers['content-encoding'], header, tag);
    assert.equal(sha256(sent.body), sent.headers['x-body-sha256'], `${tag}: coded bytes`);
    const decoded = decodeBody(sent.body, codings);
    assert.equal(sha256(decoded), sent.headers['x-plain-sha256'], `${tag}: decoded bytes`);
    assert.deepEqual(JSON.parse(decoded.toString('utf8')), reference, tag);
    if (name === 'gzip' || name === 'br') {
      // fetch (undici) in the SDK undoes gzip and br itself (not zstd before Node 22.15).
      const viaSdk = await openaiClient().chat.completions.create(
          request, { query: { lp_test: `sdk-${tag}` }, headers: { 'X-Mock-Encoding': header } });
      assert.deepEqual(plain(viaSdk), reference, `${tag}: the SDK decoded the same answer`);
    }

    const c = await checkCapture(tag, { route: 'openai', path: '/v1/chat/completions',
                                        secret: OPENAI_KEY });
    assert.equal(c.response.header('Content-Encoding'), header, `${tag}: stored as sent`);
    const body = await httpGet(`${logUrl}/requests/${c.record.id}/response/body`);
    assert.equal(body.status, 200, `${tag} /response/body: ${body.status} ${body.body}`);
    assert.match(String(body.headers['content-type']), /^application\/json/, tag);
    assert.equal(body.headers['content-encoding'], undefined, `${tag}: served decoded`);
    assert.equal(sha256(body.body), sent.headers['x-plain-sha256'],
                 `${tag}: /response/body is the decoded JSON, byte for byte`);
    assert.deepEqual(JSON.parse(body.body.toString('utf8')), reference, tag);
    const raw = await httpGet(`${logUrl}/requests/${c.record.id}/response/body?raw=1`);
    assert.equal(raw.status, 200, `${tag} ?raw=1: ${raw.status} ${raw.body}`);
    assert.equal(sha256(raw.body), sent.headers['x-body-sha256'],
                 `${tag}: ?raw=1 is the coded body as the mock sent it`);

    // The llm fields come from the decoded body too.
    const { llm } = await waitForLlm(c.record.id);
    checkLlm(llm, { provider: 'openai-compatible', api: 'chat.completions', model: 'mock-text',
                    response_model: 'mock-text-2025-06-01', stream: false,
                    response_id: 'chatcmpl-mocktext01', input_tokens: 21, output_tokens: 14,
                    cached_input_tokens: 0, reasoning_tokens: 0, total_tokens: 35,
                    finish_reason: 'stop', usage: reference.usage },
             { absent: ['cache_creation_input_tokens', 'error'], stream: false });
    assert.deepEqual(await assembledOf(c.record.id), reference, `${tag}: assembled`);
  }
});
