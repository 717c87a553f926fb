// Formatting numbers, times and sizes for display (always returns plain strings).

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  if (ms === 0) return '0 ms';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  // One decimal below 10 ms, so neighbouring chart ticks (1.2, 1.6 ms) never read the same.
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)}m${Math.round((ms % 60000) / 1000)}s`;
}

export function fmtUs(us) {
  return us === null || us === undefined ? '' : fmtMs(us / 1000);
}

export function fmtInt(n) {
  if (n === null || n === undefined) return '';
  return Number(n).toLocaleString('en-US');
}

export function fmtCost(c) {
  if (c === null || c === undefined) return '';
  const n = Number(c);
  if (n === 0) return '0';
  return n < 0.01 ? n.toPrecision(2) : n.toFixed(4);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// A capture time in the viewer's time zone: "14:03:05.123", with the date when not today.
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.` +
               `${pad(d.getMilliseconds(), 3)}`;
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

export function shortId(id) {
  return String(id || '').slice(0, 8);
}

export function tokens(inTok, outTok) {
  if (inTok == null && outTok == null) return '';
  return `${inTok == null ? '–' : fmtInt(inTok)} / ${outTok == null ? '–' : fmtInt(outTok)}`;
}
