/** Plain formatting of sizes, times and digests for display. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${UNITS[i]}`;
}

/** An absolute time in the viewer's locale; "—" when unknown. */
export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toLocaleString();
}

const RTF = typeof Intl !== 'undefined' && 'RelativeTimeFormat' in Intl ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' }) : null;
const STEPS: Array<[Intl.RelativeTimeFormatUnit, number]> = [
  ['year', 365 * 86400e3],
  ['month', 30 * 86400e3],
  ['week', 7 * 86400e3],
  ['day', 86400e3],
  ['hour', 3600e3],
  ['minute', 60e3],
];

/** "3 hours ago"; the absolute time goes in the title beside it. */
export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return '—';
  const d = ms - now;
  if (!RTF) return time(ms);
  for (const [unit, size] of STEPS) if (Math.abs(d) >= size) return RTF.format(Math.round(d / size), unit);
  return RTF.format(Math.round(d / 1000), 'second');
}

/** sha256:0123456789ab… for tables; the whole digest is in the title and the copy button. */
export function shortDigest(d: string | null | undefined): string {
  if (!d) return '—';
  const i = d.indexOf(':');
  return i < 0 ? d.slice(0, 12) : `${d.slice(0, i + 1)}${d.slice(i + 1, i + 13)}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** The UI path of a repository, a tag or a digest: /r/<repo>, /r/<repo>:<tag>, /r/<repo>@<digest>. */
export function repoPath(repo: string): string {
  return `/r/${repo.split('/').map(encodeURIComponent).join('/')}`;
}

export function refPath(repo: string, ref: string): string {
  return `${repoPath(repo)}${ref.includes(':') ? '@' : ':'}${encodeURIComponent(ref)}`;
}

/**
 * Splits what follows /r/ back into repository and reference. A repository name has neither ':'
 * nor '@' (distribution-spec), so the first '@', or a ':' in the last segment, starts the reference.
 */
export function parseRef(rest: string): { repo: string; ref: string | null } {
  const s = rest.replace(/^\/+|\/+$/g, '');
  const at = s.indexOf('@');
  if (at >= 0) return { repo: s.slice(0, at), ref: s.slice(at + 1) };
  const slash = s.lastIndexOf('/');
  const colon = s.indexOf(':', slash + 1);
  if (colon >= 0) return { repo: s.slice(0, colon), ref: s.slice(colon + 1) };
  return { repo: s, ref: null };
}
