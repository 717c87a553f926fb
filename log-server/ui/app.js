// The log server's web UI: hash routing between the feed (#/), one capture (#/requests/ID)
// and stats (#/stats). No framework, no build step; served from the binary (ui_assets.h).
import { renderFeed } from './feed.js';
import { renderDetail } from './detail.js';
import { renderStats } from './stats.js';
import { h, replace } from './dom.js';

let teardown = null;
let generation = 0;

function setLive(state) {
  const el = document.getElementById('live-state');
  if (!el) return;
  el.className = `live-state ${state}`;
  el.textContent = { live: '● live', polling: '● polling every 2 s', reconnecting: '○ reconnecting…' }[state] ?? '';
}

function route() {
  const main = document.getElementById('main');
  if (teardown) teardown();
  teardown = null;
  const mine = ++generation;
  const ctx = { stale: () => mine !== generation, setLive: (s) => mine === generation && setLive(s) };
  const hash = location.hash.replace(/^#/, '') || '/';
  const q = hash.indexOf('?');
  const path = q < 0 ? hash : hash.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  document.getElementById('nav-feed').classList.toggle('active', path === '/');
  document.getElementById('nav-stats').classList.toggle('active', path === '/stats');
  setLive('');
  let m;
  try {
    if (path === '/' || path === '') {
      document.title = 'Requests · logging-proxy';
      teardown = renderFeed(main, params, ctx);
    } else if ((m = /^\/requests\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]);
      document.title = `${id.slice(0, 8)} · logging-proxy`;
      teardown = renderDetail(main, id, ctx);
      window.scrollTo(0, 0);
    } else if (path === '/stats') {
      document.title = 'Stats · logging-proxy';
      teardown = renderStats(main, params, ctx);
    } else {
      replace(main, h('p', { class: 'error', text: 'No such page.' }),
              h('p', {}, h('a', { href: '#/', text: 'All requests' })));
    }
  } catch (err) {
    replace(main, h('p', { class: 'error', text: `Something went wrong: ${err.message}` }));
  }
}

window.addEventListener('hashchange', route);
route();
