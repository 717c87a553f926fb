// The conversation of an LLM call, from its request body (OpenAI chat / Responses / Anthropic
// messages / Gemini), and the assembled answer. Text only: captured content is hostile.
import { h } from './dom.js';
import { jsonTree } from './jsonview.js';

// A part: {kind: 'text'|'thinking'|'tool_call'|'tool_result'|'image'|'other', text?, name?,
// id?, value?}
function textParts(content, kind = 'text') {
  if (content === null || content === undefined) return [];
  if (typeof content === 'string') return content ? [{ kind, text: content }] : [];
  if (!Array.isArray(content)) return [{ kind: 'other', value: content }];
  const out = [];
  for (const p of content) {
    if (typeof p === 'string') { out.push({ kind, text: p }); continue; }
    if (!p || typeof p !== 'object') continue;
    switch (p.type) {
      case 'text': case 'input_text': case 'output_text':
        out.push({ kind, text: p.text ?? '' }); break;
      case 'refusal': out.push({ kind: 'text', text: `(refusal) ${p.refusal ?? ''}` }); break;
      case 'thinking': out.push({ kind: 'thinking', text: p.thinking ?? '' }); break;
      case 'redacted_thinking': out.push({ kind: 'thinking', text: '(redacted thinking)' }); break;
      case 'tool_use': case 'server_tool_use':
        out.push({ kind: 'tool_call', name: p.name, id: p.id, value: p.input }); break;
      case 'tool_result': case 'web_search_tool_result':
        out.push({ kind: 'tool_result', id: p.tool_use_id,
                   text: typeof p.content === 'string' ? p.content : undefined,
                   value: typeof p.content === 'string' ? undefined : p.content }); break;
      case 'image': case 'image_url': case 'input_image':
        out.push({ kind: 'image', text: '(image)' }); break;
      default: out.push({ kind: 'other', value: p });
    }
  }
  return out;
}

function parseArgs(args) {
  if (typeof args !== 'string') return args;
  try { return JSON.parse(args); } catch { return args; }
}

function chatMessage(m) {
  const parts = [];
  if (m.reasoning_content) parts.push({ kind: 'thinking', text: m.reasoning_content });
  if (typeof m.reasoning === 'string' && m.reasoning) parts.push({ kind: 'thinking', text: m.reasoning });
  if (m.role === 'tool') {
    parts.push({ kind: 'tool_result', id: m.tool_call_id,
                 text: typeof m.content === 'string' ? m.content : undefined,
                 value: typeof m.content === 'string' ? undefined : m.content });
  } else {
    parts.push(...textParts(m.content));
  }
  if (m.refusal) parts.push({ kind: 'text', text: `(refusal) ${m.refusal}` });
  for (const tc of m.tool_calls || []) {
    parts.push({ kind: 'tool_call', name: tc.function?.name ?? tc.type, id: tc.id,
                 value: parseArgs(tc.function?.arguments) });
  }
  if (m.function_call) {
    parts.push({ kind: 'tool_call', name: m.function_call.name, value: parseArgs(m.function_call.arguments) });
  }
  return { role: m.role ?? '?', name: m.name, parts };
}

function responsesItems(input) {
  if (typeof input === 'string') return [{ role: 'user', parts: [{ kind: 'text', text: input }] }];
  const out = [];
  for (const it of Array.isArray(input) ? input : []) {
    if (!it || typeof it !== 'object') continue;
    if (it.type === 'function_call') {
      out.push({ role: 'assistant', parts: [{ kind: 'tool_call', name: it.name, id: it.call_id,
                                               value: parseArgs(it.arguments) }] });
    } else if (it.type === 'function_call_output') {
      out.push({ role: 'tool', parts: [{ kind: 'tool_result', id: it.call_id,
                                          text: typeof it.output === 'string' ? it.output : undefined,
                                          value: typeof it.output === 'string' ? undefined : it.output }] });
    } else if (it.type === 'reasoning') {
      const text = (it.summary || []).map((s) => s.text).join('\n') || '(reasoning)';
      out.push({ role: 'assistant', parts: [{ kind: 'thinking', text }] });
    } else if (it.role || it.type === 'message') {
      out.push({ role: it.role ?? 'assistant', parts: textParts(it.content) });
    } else {
      out.push({ role: it.type ?? '?', parts: [{ kind: 'other', value: it }] });
    }
  }
  return out;
}

function geminiParts(parts) {
  const out = [];
  for (const p of parts || []) {
    if (typeof p.text === 'string') out.push({ kind: p.thought ? 'thinking' : 'text', text: p.text });
    else if (p.functionCall) out.push({ kind: 'tool_call', name: p.functionCall.name, value: p.functionCall.args });
    else if (p.functionResponse) out.push({ kind: 'tool_result', id: p.functionResponse.name, value: p.functionResponse.response });
    else if (p.inlineData) out.push({ kind: 'image', text: `(${p.inlineData.mimeType ?? 'inline data'})` });
    else out.push({ kind: 'other', value: p });
  }
  return out;
}

// The messages of a request body: [{role, name?, parts}] or null when not recognised.
export function requestMessages(body) {
  if (!body || typeof body !== 'object') return null;
  const out = [];
  const system = body.system ?? body.instructions;
  if (system !== undefined) out.push({ role: 'system', parts: textParts(system) });
  if (body.systemInstruction) out.push({ role: 'system', parts: geminiParts(body.systemInstruction.parts) });
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) {
      if (!m || typeof m !== 'object') continue;
      if (Array.isArray(m.content) && m.content.some((p) => p && /^(tool_use|tool_result|thinking)$/.test(p.type))) {
        out.push({ role: m.role, parts: textParts(m.content) });
      } else out.push(chatMessage(m));
    }
  } else if (body.input !== undefined) {
    out.push(...responsesItems(body.input));
  } else if (Array.isArray(body.contents)) {
    for (const c of body.contents) out.push({ role: c.role ?? 'user', parts: geminiParts(c.parts) });
  } else if (typeof body.prompt === 'string' || Array.isArray(body.prompt)) {
    out.push({ role: 'user', parts: textParts(body.prompt) });
  } else {
    return out.length ? out : null;
  }
  return out;
}

// The assistant message(s) of an assembled answer.
export function answerMessages(a) {
  if (!a || typeof a !== 'object') return null;
  if (Array.isArray(a.choices)) {
    return a.choices.map((c) => {
      const m = c.message ?? { role: 'assistant', content: c.text };
      const msg = chatMessage({ role: 'assistant', ...m });
      msg.note = c.finish_reason ? `finish_reason: ${c.finish_reason}` : undefined;
      return msg;
    });
  }
  if (a.type === 'message' && Array.isArray(a.content)) {
    return [{ role: a.role ?? 'assistant', parts: textParts(a.content),
              note: a.stop_reason ? `stop_reason: ${a.stop_reason}` : undefined }];
  }
  if (Array.isArray(a.output)) return responsesItems(a.output);
  if (Array.isArray(a.candidates)) {
    return a.candidates.map((c) => ({ role: c.content?.role ?? 'model', parts: geminiParts(c.content?.parts),
                                      note: c.finishReason ? `finishReason: ${c.finishReason}` : undefined }));
  }
  return null;
}

function partView(p) {
  switch (p.kind) {
    case 'text':
      return h('div', { class: 'part text' }, h('pre', { class: 'msg-text', text: p.text }));
    case 'thinking':
      return h('details', { class: 'part thinking' }, h('summary', { text: 'thinking' }),
               h('pre', { class: 'msg-text', text: p.text }));
    case 'tool_call':
      return h('div', { class: 'part tool-call' },
        h('div', { class: 'part-head' }, h('span', { class: 'badge', text: 'tool call' }), ' ',
          h('code', { class: 'tool-name', text: p.name ?? '?' }),
          p.id ? h('span', { class: 'muted', text: ` ${p.id}` }) : null),
        typeof p.value === 'string' ? h('pre', { class: 'mono', text: p.value }) : jsonTree(p.value ?? null));
    case 'tool_result':
      return h('div', { class: 'part tool-result' },
        h('div', { class: 'part-head' }, h('span', { class: 'badge', text: 'tool result' }),
          p.id ? h('span', { class: 'muted', text: ` ${p.id}` }) : null),
        p.text !== undefined ? h('pre', { class: 'msg-text', text: p.text }) : jsonTree(p.value ?? null));
    case 'image':
      return h('div', { class: 'part muted', text: p.text });
    default:
      return h('div', { class: 'part other' }, jsonTree(p.value ?? null, { openDepth: 1 }));
  }
}

// The names of the tools a request offers the model (OpenAI chat and Responses, Anthropic,
// Gemini function declarations), in order; [] when none.
export function offeredTools(body) {
  const names = [];
  const add = (n) => { if (typeof n === 'string' && n) names.push(n); };
  for (const t of Array.isArray(body?.tools) ? body.tools : []) {
    if (!t || typeof t !== 'object') continue;
    if (t.function) add(t.function.name);                      // OpenAI chat
    else if (Array.isArray(t.functionDeclarations)) t.functionDeclarations.forEach((f) => add(f?.name));  // Gemini
    else add(t.name ?? t.type);                               // Anthropic, Responses, built-ins
  }
  return names;
}

export function toolsView(names) {
  return h('p', { class: 'tools-offered' }, h('span', { class: 'muted', text: `tools offered (${names.length}): ` }),
    names.map((n) => h('code', { class: 'tool-offered', text: n })));
}

export function messagesView(messages) {
  return h('div', { class: 'conversation' }, messages.map((m) =>
    h('div', { class: `msg role-${String(m.role).replace(/[^a-z_-]/gi, '')}` },
      h('div', { class: 'msg-role' }, String(m.role), m.name ? h('span', { class: 'muted', text: ` (${m.name})` }) : null),
      m.parts.length ? m.parts.map(partView) : h('div', { class: 'muted', text: '(empty)' }),
      m.note ? h('div', { class: 'muted small', text: m.note }) : null)));
}
