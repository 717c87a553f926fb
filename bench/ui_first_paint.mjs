// Time to first paint of the web UI's feed, run by hand (never in the test suite):
//
//   node bench/ui_first_paint.mjs URL NEWEST_SHORT_ID [RUNS]
//
// Opens URL in a fresh browser context RUNS times (default 7) with Debian's chromium
// ($LP_CHROMIUM, else /usr/bin/chromium) through tests/ui's playwright-core, and reports, per
// run and as medians: first contentful paint, DOMContentLoaded, and the moment the newest
// capture's row (its short id, NEWEST_SHORT_ID) is on screen. bench/ui_bench.py prepares a
// log server with a large index and calls this.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'ui', 'package.json'));
const { chromium } = require('playwright-core');

const [url, newest, runsArg] = process.argv.slice(2);
if (!url || !newest) {
  console.error('usage: node bench/ui_first_paint.mjs URL NEWEST_SHORT_ID [RUNS]');
  process.exit(2);
}
const runs = Number(runsArg || 7);
const browser = await chromium.launch({ executablePath: process.env.LP_CHROMIUM || '/usr/bin/chromium',
                                        headless: true });
const results = [];
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction((id) => document.querySelector('main')?.textContent.includes(id), newest,
                               { timeout: 60000, polling: 'raf' });
    results.push(await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      return { fcp: fcp ? fcp.startTime : NaN, dcl: nav.domContentLoadedEventEnd, row: performance.now() };
    }));
    await context.close();
  }
} finally {
  await browser.close();
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
for (const r of results) {
  console.log(`  FCP ${r.fcp.toFixed(0)} ms  DOMContentLoaded ${r.dcl.toFixed(0)} ms  newest row ${r.row.toFixed(0)} ms`);
}
console.log(`ui: median of ${runs}: FCP ${median(results.map((r) => r.fcp)).toFixed(0)} ms, ` +
            `DOMContentLoaded ${median(results.map((r) => r.dcl)).toFixed(0)} ms, ` +
            `newest row on screen ${median(results.map((r) => r.row)).toFixed(0)} ms`);
