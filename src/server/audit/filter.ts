import { WharfError } from '../../spec/index.js';
import type { AuditFilter } from './types.js';

function parseTime(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const rel = /^(\d+)([smhd])$/.exec(v);
  if (rel) return Date.now() - Number(rel[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new WharfError('INVALID_ARGUMENT', `${name}: "${v.slice(0, 40)}" is no time (ISO 8601, or 7d, 12h ago)`);
  return t;
}

/** `--since`/`since=` and the other filters, from strings. */
export function auditFilter(q: Record<string, string | undefined>): AuditFilter {
  const f: AuditFilter = {};
  if (q.repo) f.repo = q.repo;
  if (q.user) f.user = q.user;
  if (q.digest) f.digest = q.digest;
  if (q.action) f.action = q.action;
  const since = parseTime(q.since, 'since');
  const until = parseTime(q.until, 'until');
  if (since !== undefined) f.since = since;
  if (until !== undefined) f.until = until;
  return f;
}
