// Building DOM from data. Captured bytes are hostile: everything here sets text
// (textContent, text nodes) and attributes, never markup. Links may only point into this UI
// (#/...) or at this server's own paths (/requests/..., /export?...).

const SVG_NS = 'http://www.w3.org/2000/svg';

// A safe href: a hash route or an absolute path on this origin ("//host" is another origin).
export function safeHref(href) {
  const s = String(href);
  if (s.startsWith('#/') || s === '#') return s;
  if (s.startsWith('/') && !s.startsWith('//') && !s.startsWith('/\\')) return s;
  throw new Error(`refusing link ${JSON.stringify(s.slice(0, 40))}`);
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'href') el.setAttribute('href', safeHref(value));
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'style') {
      for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, v);
    } else if (/^(src|srcdoc|formaction|action)$/i.test(key)) {
      throw new Error(`refusing attribute ${key}`);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

// h('div', {class: 'x'}, 'text', otherNode, [more]) — strings become text nodes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = String(value);
    else if (/^(href|xlink:href)$/i.test(key) || key.startsWith('on')) {
      throw new Error(`refusing SVG attribute ${key}`);
    } else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}
