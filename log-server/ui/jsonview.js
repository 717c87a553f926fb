// A JSON value as a foldable tree (<details>), built from text nodes only.
import { h } from './dom.js';

const MAX_NODES = 20000;  // past this, the rest is shown as pretty-printed text

function leaf(value) {
  if (value === null) return h('span', { class: 'j-null', text: 'null' });
  switch (typeof value) {
    case 'string': return h('span', { class: 'j-str', text: JSON.stringify(value) });
    case 'number': return h('span', { class: 'j-num', text: String(value) });
    case 'boolean': return h('span', { class: 'j-bool', text: String(value) });
    default: return h('span', { text: String(value) });
  }
}

export function jsonTree(value, { openDepth = 3 } = {}) {
  let nodes = 0;
  const build = (v, key, depth) => {
    nodes++;
    const label = key === undefined ? null : h('span', { class: 'j-key', text: `${key}: ` });
    if (v === null || typeof v !== 'object') return h('div', { class: 'j-row' }, label, leaf(v));
    const isArray = Array.isArray(v);
    const entries = isArray ? v.map((x, i) => [i, x]) : Object.entries(v);
    const open = isArray ? '[' : '{';
    const close = isArray ? ']' : '}';
    if (!entries.length) return h('div', { class: 'j-row' }, label, h('span', { text: open + close }));
    if (nodes > MAX_NODES) {
      return h('div', { class: 'j-row' }, label,
               h('pre', { class: 'j-rest', text: JSON.stringify(v, null, 2) }));
    }
    const summary = h('summary', {}, label, h('span', { class: 'j-brace', text: open }),
      h('span', { class: 'j-count', text: ` ${entries.length} ${isArray ? 'item' : 'key'}${entries.length === 1 ? '' : 's'} ` }));
    const details = h('details', { class: 'j-node', open: depth < openDepth },
      summary,
      h('div', { class: 'j-children' }, entries.map(([k, x]) => build(x, k, depth + 1))),
      h('div', { class: 'j-brace', text: close }));
    return details;
  };
  return h('div', { class: 'json-tree mono' }, build(value, undefined, 0));
}

// A body as text: JSON as a tree, anything else verbatim (as text).
export function bodyView(text, contentType) {
  const looksJson = /json/i.test(contentType || '') || /^\s*[[{]/.test(text);
  if (looksJson && text.length < 8 * 1024 * 1024) {
    try {
      return jsonTree(JSON.parse(text));
    } catch {
      // not JSON after all
    }
  }
  return h('pre', { class: 'body-text mono', text });
}
