import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { OciError, assertName, assertTag, isDigest, truncate } from '../../spec/index.js';
import { csvCell, noAuditIndex, type AuditLog, type DownloadEventRow, type DownloadScope } from '../audit/index.js';
import { installAdmin } from './admin.js';
import type { WebDeps } from './deps.js';
import type { DownloadEvent, DownloadSeries, Page, TagMove, TopArtifact } from './types.js';
import { signedIn } from './signed-in.js';
import { requireAccess, viewerOf, type Viewer } from './viewer.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
/** 1970-01-01 was a Thursday: weeks start on the Monday after it, 4 days in. */
const MONDAY = 4 * DAY;
const INTERVALS: Record<string, number> = { hour: HOUR, day: DAY, week: WEEK };
/** A series never has more points than this: a chart has no use for more, and the answer stays small. */
export const MAX_POINTS = 1000;
/** The default span of a query without `from`. */
const DEFAULT_SPAN = 30 * DAY;
/** Repositories a non-admin's query without `repo` looks at (those with downloads that they may push to). */
const MAX_REPOS = 10_000;
/** Rows of one CSV export: streamed page by page, never held. */
const CSV_MAX_ROWS = 100_000;
const TAG_HISTORY_MAX = 1000;
/** Beyond the grouping window, before a day is rolled up: flush intervals, clocks. */
const ROLLUP_SLACK = 5 * 60_000;

/** A bad query parameter: 400 with the registry's error body (there is no spec code for it). */
function badParam(name: string, why: string): OciError {
  return new OciError('UNSUPPORTED', `invalid ${name}: ${why}`, { status: 400, detail: { parameter: name } });
}

type Query = Record<string, string | string[] | undefined>;

/** A single-valued parameter; given twice is an error, not a silent pick. */
function param(q: Query, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) throw badParam(name, 'given more than once');
  return v === '' ? undefined : v;
}

/** A time: ms since the epoch, or an ISO 8601 date. */
function timeParam(q: Query, name: string): number | undefined {
  const v = param(q, name);
  if (v === undefined) return undefined;
  const n = /^\d{1,15}$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isSafeInteger(n)) throw badParam(name, `"${truncate(v, 40)}" is neither ms since the epoch nor an ISO 8601 date`);
  return n;
}

function intParam(q: Query, name: string, dflt: number, max: number): number {
  const v = param(q, name);
  if (v === undefined) return dflt;
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1) throw badParam(name, `"${truncate(v, 40)}" is not a number from 1 to ${max}`);
  return Math.min(Number(v), max);
}

/** `from`/`to`, both inclusive on the wire; `to` becomes exclusive here. Default: the last 30 days. */
function spanOf(q: Query, now = Date.now()): { from: number; to: number } {
  const to = timeParam(q, 'to') ?? now;
  const from = timeParam(q, 'from') ?? Math.max(0, to - DEFAULT_SPAN);
  if (from > to) throw badParam('from', 'from is after to');
  return { from, to: to + 1 };
}

function repoParam(q: Query): string | undefined {
  const v = param(q, 'repo');
  return v === undefined ? undefined : assertName(v);
}

function digestParam(q: Query): string | undefined {
  const v = param(q, 'digest');
  if (v !== undefined && !isDigest(v)) throw new OciError('DIGEST_INVALID', `invalid digest "${truncate(v)}"`);
  return v;
}

/** The bucket width: the one asked for, or (auto) the finest of hour/day/week that keeps the chart readable. */
export function intervalOf(name: string | undefined, span: number): { width: number; offset: number } {
  let width: number;
  if (name === undefined || name === 'auto') {
    width = span <= 7 * DAY ? HOUR : span <= 180 * DAY ? DAY : WEEK;
    // Decades of log: whole weeks per point, still within the bound.
    if (span / width > MAX_POINTS) width = Math.ceil(span / WEEK / MAX_POINTS) * WEEK;
  } else {
    const w = INTERVALS[name];
    if (w === undefined) throw badParam('interval', `"${truncate(name, 40)}" is not one of hour, day, week, auto`);
    if (Math.ceil(span / w) + 1 > MAX_POINTS) throw badParam('interval', `${name} over this range gives more than ${MAX_POINTS} points; pick a wider interval or a shorter range`);
    width = w;
  }
  return { width, offset: width % WEEK === 0 ? MONDAY : 0 };
}

async function auditOf(deps: WebDeps): Promise<AuditLog> {
  if (!deps.audit) throw new OciError('UNSUPPORTED', noAuditIndex(deps.config.audit), { status: 404 });
  // What is journaled but not yet in SQLite (at most flushInterval old) is counted too.
  await deps.audit.catchUp();
  // A day is final once no blob pull can still join one of its downloads (the grouping window).
  deps.audit.db.analytics.rollUp(Date.now() - deps.config.audit.groupWindow - ROLLUP_SLACK);
  return deps.audit;
}

/**
 * Which repositories' analytics the viewer sees: an admin every one; anyone else those they may
 * push to (the owners). With `repo`, that one or an error (NAME_UNKNOWN if they may not even pull
 * it, else DENIED); without, the list of theirs that have downloads (undefined: no restriction).
 */
function scopeOf(viewer: Viewer, audit: AuditLog, repo: string | undefined): string[] | undefined {
  if (repo !== undefined) {
    if (!viewer.admin) requireAccess(viewer, repo, 'push');
    return undefined;
  }
  if (viewer.admin) return undefined;
  return audit.db.analytics.downloadedRepos(MAX_REPOS).filter((r) => viewer.can(r, 'push'));
}

const json = (reply: FastifyReply, body: unknown): FastifyReply => reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));

function encodeCursor(e: { time: number; id: number }): string {
  return Buffer.from(`${e.time}.${e.id}`).toString('base64url');
}

function decodeCursor(v: string | undefined): { time: number; id: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,15})\.(\d{1,17})$/.exec(/^[A-Za-z0-9_-]{1,64}$/.test(v) ? Buffer.from(v, 'base64url').toString('latin1') : '');
  const time = Number(m?.[1]);
  const id = Number(m?.[2]);
  if (!m || !Number.isSafeInteger(time) || !Number.isSafeInteger(id)) throw badParam('cursor', 'not a cursor this API gave');
  return { time, id };
}

/** The groups of each user in `auth.groups`; undefined when the config has none (the field is then left out). */
function groupsOf(deps: WebDeps): ((user: string | null) => string[]) | undefined {
  const groups = deps.auth?.config.groups ?? {};
  if (Object.keys(groups).length === 0) return undefined;
  const of = new Map<string, string[]>();
  for (const [g, users] of Object.entries(groups)) for (const u of users) of.set(u, [...(of.get(u) ?? []), g]);
  return (user) => (user === null ? [] : (of.get(user) ?? []));
}

function eventOf(r: DownloadEventRow, groups: ((user: string | null) => string[]) | undefined): DownloadEvent {
  const e: DownloadEvent = { time: r.time, user: r.user, ip: r.ip, client: r.client, repo: r.repo, reference: r.reference, digest: r.digest, file: r.file, bytes: r.bytes, completed: r.completed };
  if (groups) e.groups = groups(r.user);
  return e;
}

const CSV_COLUMNS = ['time', 'user', 'groups', 'ip', 'client', 'repo', 'reference', 'digest', 'file', 'bytes', 'completed'] as const;

function csvLine(e: DownloadEvent): string {
  return `${CSV_COLUMNS.map((c) => csvCell(c === 'time' ? new Date(e.time).toISOString() : c === 'groups' ? e.groups?.join(' ') : e[c])).join(',')}\n`;
}

/** Downloads over time, top artifacts, who downloaded, tag history; and the admin pages' API (admin.ts). */
export function installAnalytics(app: FastifyInstance, deps: WebDeps): void {
  app.get('/api/v1/analytics/downloads', async (req, reply) => {
    const viewer = await signedIn(req, reply, deps);
    const q = req.query as Query;
    const repo = repoParam(q);
    const tag = param(q, 'tag');
    if (tag !== undefined) assertTag(tag);
    const digest = digestParam(q);
    const file = param(q, 'file');
    const { from, to } = spanOf(q);
    const bucket = intervalOf(param(q, 'interval'), to - from);
    const audit = await auditOf(deps);
    const repos = scopeOf(viewer, audit, repo);
    const s: DownloadScope = { from, to, repo, repos, tag, digest, file };
    const rows = repos?.length === 0 ? [] : audit.db.analytics.downloadSeries(s, bucket);
    // Every bucket of the span, empty ones as zeros: the chart's x axis is time, not rows.
    const first = Math.floor((from - bucket.offset) / bucket.width);
    const last = Math.floor((to - 1 - bucket.offset) / bucket.width);
    const at = new Map(rows.map((r) => [r.bucket, r]));
    const points: DownloadSeries['points'] = [];
    for (let b = first; b <= last; b++) {
      const r = at.get(b);
      points.push({ t: b * bucket.width + bucket.offset, downloads: r?.downloads ?? 0, bytes: r?.bytes ?? 0, users: r?.users ?? 0 });
    }
    const body: DownloadSeries = { interval: bucket.width, points };
    return json(reply, body);
  });

  app.get('/api/v1/analytics/top', async (req, reply) => {
    const viewer = await signedIn(req, reply, deps);
    const q = req.query as Query;
    const { from, to } = spanOf(q);
    const limit = intParam(q, 'limit', 10, 100);
    const audit = await auditOf(deps);
    const repos = scopeOf(viewer, audit, undefined);
    const body: TopArtifact[] = repos?.length === 0 ? [] : audit.db.analytics.topArtifacts({ from, to, repos }, limit);
    return json(reply, body);
  });

  app.get('/api/v1/analytics/who', async (req, reply) => {
    const viewer = await signedIn(req, reply, deps);
    const q = req.query as Query;
    const repo = repoParam(q);
    const digest = digestParam(q);
    const { from, to } = spanOf(q);
    const csv = param(q, 'format') === 'csv';
    if (!csv && param(q, 'format') !== undefined && param(q, 'format') !== 'json') throw badParam('format', 'not csv or json');
    const limit = intParam(q, 'limit', csv ? CSV_MAX_ROWS : 100, csv ? CSV_MAX_ROWS : 1000);
    const before = decodeCursor(param(q, 'cursor'));
    const audit = await auditOf(deps);
    const repos = scopeOf(viewer, audit, repo);
    const s: DownloadScope = { from, to, repo, repos, digest };
    const groups = groupsOf(deps);
    const page = (after: { time: number; id: number } | undefined, n: number): DownloadEventRow[] => (repos?.length === 0 ? [] : audit.db.analytics.downloadEvents(s, { before: after, limit: n }));
    reply.header('cache-control', 'no-store');
    if (csv) {
      // Streamed a thousand rows at a time from the cursor on: memory stays flat for any export.
      let after = before;
      let left = limit;
      const lines = async function* (): AsyncGenerator<string> {
        yield `${CSV_COLUMNS.join(',')}\n`;
        while (left > 0) {
          const rows = page(after, Math.min(1000, left));
          if (rows.length === 0) return;
          left -= rows.length;
          after = rows[rows.length - 1]!;
          yield rows.map((r) => csvLine(eventOf(r, groups))).join('');
          if (rows.length < 1000) return;
        }
      };
      return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="wharf-downloads.csv"').send(Readable.from(lines()));
    }
    // One more than asked: whether there is a next page, without a count.
    const rows = page(before, limit + 1);
    const items = rows.slice(0, limit);
    const body: Page<DownloadEvent> = { items: items.map((r) => eventOf(r, groups)), next: rows.length > limit ? encodeCursor(items[items.length - 1]!) : null };
    return json(reply, body);
  });

  // Who moved a tag, when, to what: anyone who may pull the repository sees it, as they see
  // "pushed by" on the artifact page.
  app.get('/api/v1/tag-history', async (req, reply) => {
    const q = req.query as Query;
    const v = param(q, 'repo');
    if (v === undefined) throw new OciError('NAME_INVALID', 'repo is required');
    const repo = assertName(v);
    const t = param(q, 'tag');
    if (t === undefined) throw new OciError('TAG_INVALID', 'tag is required');
    const tag = assertTag(t);
    const viewer = await viewerOf(req, deps);
    if (deps.auth && viewer.id.kind === 'anonymous' && !viewer.can(repo, 'pull')) {
      reply.header('www-authenticate', deps.auth.challenge(`${req.protocol}://${req.host}/token`));
      throw new OciError('UNAUTHORIZED', 'authentication required');
    }
    requireAccess(viewer, repo, 'pull');
    const audit = await auditOf(deps);
    return json(reply, tagHistory(audit, repo, tag));
  });

  installAdmin(app, deps);
}

/**
 * Replays a tag's PUTs and DELETEs oldest first: a DELETE by digest counts when it removed the
 * manifest the tag pointed at then (the store drops that manifest's tags).
 */
function tagHistory(audit: AuditLog, repo: string, tag: string): TagMove[] {
  const { byTag, byDigest } = audit.db.analytics.tagMoves(repo, tag, TAG_HISTORY_MAX);
  const events = [...byTag, ...byDigest].sort((a, b) => a.time - b.time || a.id - b.id);
  const moves: TagMove[] = [];
  let current: string | null = null;
  for (const e of events) {
    if (e.method === 'PUT' && e.reference === tag) {
      moves.push({ time: e.time, digest: e.digest, user: e.user, action: 'push' });
      current = e.digest;
    } else if (e.method === 'DELETE' && e.reference === tag) {
      moves.push({ time: e.time, digest: current, user: e.user, action: 'delete' });
      current = null;
    } else if (e.method === 'DELETE' && current !== null && e.reference === current) {
      moves.push({ time: e.time, digest: current, user: e.user, action: 'delete' });
      current = null;
    }
  }
  return moves.reverse().slice(0, TAG_HISTORY_MAX);
}
