import { join, resolve } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError, WharfError, asDigest, assertName, assertTag, isKnownError, truncate } from '../../spec/index.js';
import { nextAuditId, type AuditRecord } from '../audit/index.js';
import type { SqliteStatement } from '../sqlite.js';
import { CatalogIndex, type IndexedHit, type Visible } from './catalog.js';
import { CatalogSync, kindsFingerprint } from './catalog-sync.js';
import type { WebDeps } from './deps.js';
import type { Page, RepositorySummary, SearchHit, TagSummary } from './types.js';
import { assertCsrf, requireAccess, viewerOf, type Viewer } from './viewer.js';

export { CatalogIndex, type IndexedTag, type IndexedManifest } from './catalog.js';

type Query = Record<string, string | string[] | undefined>;

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;
/**
 * A viewer whose repositories hold about this many manifests at most (and who may not see all) is
 * searched repository by repository: reading and filtering that many rows (~1 ms) beats walking
 * the matches of the whole registry for the few that are theirs.
 */
const FEW_MANIFESTS = 3000;
/** Re-scan the store this often while running: changes made by other processes (wharf gc) show up. */
const REBUILD_EVERY = 24 * 3600e3;

const catalogs = new WeakMap<object, CatalogIndex>();

/**
 * The catalog index of a web UI, once installBrowse has opened it: the artifact page reads what a
 * tag names from it (`lookup`) and checks that against the store before showing it.
 */
export function catalogOf(deps: WebDeps): CatalogIndex | undefined {
  return catalogs.get(deps);
}

/**
 * The web API's repositories, tags, search and deletes, answered from the catalog index
 * (<data>/ui/index.db, catalog.ts), which follows the store's writes and is rebuilt from the store
 * in the background when it may have missed some. Everything is filtered by the viewer's pull
 * right; a repository they may not pull is one they never see.
 */
export function installBrowse(app: FastifyInstance, deps: WebDeps): void {
  let index: CatalogIndex;
  try {
    index = CatalogIndex.open(join(resolve(deps.config.data), 'ui', 'index.db'), { derived: kindsFingerprint() });
  } catch (err) {
    // No SQLite on this Node (better-sqlite3 not built), or a data directory it cannot write:
    // the registry still starts, and the lists say why they cannot answer.
    deps.log.error({ err }, 'catalog index: cannot open it; the UI cannot list or search');
    const unavailable = async (): Promise<never> => {
      throw new OciError('UNAVAILABLE', `the catalog index cannot be opened: ${(err as Error).message}`);
    };
    for (const path of ['/api/v1/repositories', '/api/v1/tags', '/api/v1/search']) app.get(path, unavailable);
    installDeletes(app, deps);
    return;
  }
  catalogs.set(deps, index);
  const sync = new CatalogSync(index, deps.store, { log: deps.log });
  sync.watch();
  // The scans start with the first request of the UI's API after the start, in the background: a
  // registry whose UI nobody opens never lists its storage for it (on S3, a request per listing).
  let timer: NodeJS.Timeout | undefined;
  app.addHook('onRequest', (req, _reply, done) => {
    if (timer === undefined && (req.raw.url ?? '').startsWith('/api/v1/')) {
      timer = setInterval(() => void sync.rebuild(), REBUILD_EVERY);
      timer.unref();
      if (index.stale) {
        deps.log.info('catalog index: rebuilding from the store in the background');
        void sync.rebuild();
      }
    }
    done();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await sync.stop();
    index.close();
  });

  const visibleTo = visibility(deps);
  // The repositories of a viewer who may see few of them (by user, until a repository comes or
  // goes): search then reads only theirs.
  const few = new WeakMap<readonly string[], Map<string, string[] | undefined>>();
  const fewOf = (viewer: Viewer, visible: Visible): readonly string[] | undefined => {
    if (!deps.auth || viewer.id.kind === 'token') return undefined;
    const names = index.repoNames();
    let m = few.get(names);
    if (!m) {
      m = new Map();
      few.set(names, m);
    }
    const key = viewer.id.kind === 'user' ? `u:${viewer.id.user}` : '';
    if (m.has(key)) return m.get(key);
    const mine = names.filter(visible);
    // Their share of the manifests, estimated by their share of the repositories.
    const theirs = mine.length === 0 ? 0 : (index.counts().manifests * mine.length) / names.length;
    const out = theirs <= FEW_MANIFESTS && mine.length < names.length ? mine : undefined;
    if (m.size >= 1000) m.clear();
    m.set(key, out);
    return out;
  };
  const lastPulled = lastPulledOf(deps);
  const send = <T>(reply: FastifyReply, body: Page<T>): FastifyReply => {
    // While the first rebuild runs the lists are partial; the UI may say so.
    if (!sync.ready) reply.header('x-wharf-index', 'rebuilding');
    return reply.header('cache-control', 'no-store').type('application/json').send(JSON.stringify(body));
  };

  app.get('/api/v1/repositories', async (req, reply) => {
    const q = req.query as Query;
    const limit = limitOf(q);
    const after = cursorOf(q, 'r');
    const viewer = await viewerOf(req, deps);
    const page = index.repositories({ q: textOf(q, 'q'), artifactType: textOf(q, 'artifactType'), after, limit, visible: visibleTo(viewer) });
    const items: RepositorySummary[] = page.items.map((r) => ({ ...r, lastPulled: lastPulled(r.name) }));
    return send(reply, { items, next: page.next === null ? null : cursor('r', page.next) });
  });

  app.get('/api/v1/tags', async (req, reply) => {
    const q = req.query as Query;
    const repo = repoOf(q);
    const limit = limitOf(q);
    const after = cursorOf(q, 't');
    const viewer = await viewerOf(req, deps);
    requireAccess(viewer, repo, 'pull');
    if (!index.hasRepo(repo) && sync.ready) throw new OciError('NAME_UNKNOWN', `repository ${repo} is not known to this registry`, { detail: { name: repo } });
    const page = index.tags(repo, { q: textOf(q, 'q'), after, limit });
    const items: TagSummary[] = page.items.map((t) => ({
      name: t.tag,
      digest: t.digest,
      mediaType: t.mediaType,
      artifactType: t.artifactType,
      kind: t.kindInfo,
      size: t.size,
      updated: t.updated,
    }));
    return send(reply, { items, next: page.next === null ? null : cursor('t', page.next) });
  });

  app.get('/api/v1/search', async (req, reply) => {
    const q = req.query as Query;
    const limit = limitOf(q);
    const raw = cursorOf(q, 's');
    const after = raw === undefined ? undefined : Number(raw);
    if (after !== undefined && !(Number.isSafeInteger(after) && after > 0)) throw badCursor();
    const viewer = await viewerOf(req, deps);
    const text = textOf(q, 'q');
    const visible = visibleTo(viewer);
    const page = index.search({ q: text, artifactType: textOf(q, 'artifactType'), after, limit, visible, only: fewOf(viewer, visible) });
    const items: SearchHit[] = page.items.map((h) => hitOf(h, text));
    return send(reply, { items, next: page.next === null ? null : cursor('s', String(page.next)) });
  });

  installDeletes(app, deps);
}

/** DELETE /api/v1/tags and /api/v1/artifact: the same semantics as /v2 (a tag, or a manifest with every tag naming it). */
function installDeletes(app: FastifyInstance, deps: WebDeps): void {
  const remove = async (req: FastifyRequest, reply: FastifyReply, repo: string, reference: string, digestOf: () => Promise<string | null>): Promise<FastifyReply> => {
    const viewer = await viewerOf(req, deps);
    assertCsrf(req, viewer);
    const t0 = Date.now();
    let digest: string | null = reference.includes(':') ? reference : null;
    let status = 204;
    try {
      requireAccess(viewer, repo, 'delete');
      if (!deps.config.delete.enabled) throw new OciError('UNSUPPORTED', 'deletion is disabled on this registry');
      digest ??= await digestOf();
      await deps.backend.deleteManifest(repo, reference);
    } catch (err) {
      status = err instanceof OciError || err instanceof WharfError ? err.status : 500;
      throw err;
    } finally {
      audit(deps, req, viewer, { repo, reference, digest, status, t0 });
    }
    return reply.code(204).header('cache-control', 'no-store').send();
  };

  app.delete('/api/v1/tags', async (req, reply) => {
    const q = req.query as Query;
    const repo = repoOf(q);
    const tag = textOf(q, 'tag');
    if (tag === undefined) throw new OciError('TAG_INVALID', 'the tag to delete is missing (?tag=)');
    assertTag(tag);
    return remove(req, reply, repo, tag, async () => {
      try {
        return (await deps.backend.getManifest(repo, tag)).digest;
      } catch (err) {
        if (isKnownError(err)) return null;
        throw err;
      }
    });
  });

  app.delete('/api/v1/artifact', async (req, reply) => {
    const q = req.query as Query;
    const repo = repoOf(q);
    const raw = textOf(q, 'digest');
    if (raw === undefined) throw new OciError('DIGEST_INVALID', 'the digest to delete is missing (?digest=)');
    const digest = asDigest(raw);
    return remove(req, reply, repo, digest, async () => digest);
  });
}

/** What the search hit shows as the reason it matched: the first field, in this order, that holds the query. */
function hitOf(h: IndexedHit, q: string | undefined): SearchHit {
  let matched: SearchHit['matched'] = null;
  let tag = h.tags[0] ?? null;
  if (q) {
    const needle = q.toLowerCase();
    const has = (s: string | null | undefined): boolean => s !== null && s !== undefined && s.toLowerCase().includes(needle);
    const t = h.tags.find(has);
    if (has(h.repo)) matched = { field: 'repository', value: h.repo };
    else if (t !== undefined) {
      matched = { field: 'tag', value: t };
      tag = t;
    } else if (has(h.artifactType)) matched = { field: 'artifactType', value: h.artifactType! };
    else {
      const a = Object.entries(h.annotations).find(([, v]) => has(v));
      if (a) matched = { field: `annotations.${a[0]}`, value: a[1] };
    }
  }
  return { repo: h.repo, tag, digest: h.digest, kind: h.kindInfo, artifactType: h.artifactType, matched };
}

/**
 * The viewer's pull right per repository, remembered per user (the rules do not change while the
 * server runs): a listing past thousands of repositories the viewer may not see costs map lookups.
 * A token's rights are its own, so tokens are asked each time.
 */
function visibility(deps: WebDeps): (viewer: Viewer) => Visible {
  const memo = new Map<string, Map<string, boolean>>();
  return (viewer) => {
    if (!deps.auth) return () => true;
    const id = viewer.id;
    const key = id.kind === 'anonymous' ? '' : id.kind === 'user' ? `u:${id.user}` : undefined;
    if (key === undefined) return (repo) => viewer.can(repo, 'pull');
    let m = memo.get(key);
    if (!m) {
      if (memo.size >= 1000) memo.clear();
      m = new Map();
      memo.set(key, m);
    }
    const seen = m;
    return (repo) => {
      let v = seen.get(repo);
      if (v === undefined) {
        v = viewer.can(repo, 'pull');
        if (seen.size < 1_000_000) seen.set(repo, v);
      }
      return v;
    };
  };
}

/** The last pull of a repository from the audit log (null without one), by the audit DB's (repo, time) index. */
function lastPulledOf(deps: WebDeps): (repo: string) => number | null {
  let st: SqliteStatement | undefined;
  return (repo) => {
    const audit = deps.audit;
    if (!audit) return null;
    try {
      st ??= audit.db.db.prepare("SELECT time FROM requests WHERE repo = ? AND action = 'pull' AND status < 300 ORDER BY time DESC LIMIT 1");
      const t = st.get(repo)?.time;
      return typeof t === 'number' ? t : null;
    } catch {
      // A closed or busy audit database costs the column, not the listing.
      return null;
    }
  };
}

/** The audit record of a delete from the UI, as /v2 writes one for a DELETE. */
function audit(deps: WebDeps, req: FastifyRequest, viewer: Viewer, d: { repo: string; reference: string; digest: string | null; status: number; t0: number }): void {
  const rec: AuditRecord = {
    id: nextAuditId(),
    time: d.t0,
    user: viewer.user ?? null,
    ip: req.ip ?? '',
    userAgent: (req.headers['user-agent'] ?? '').slice(0, 256) || null,
    method: 'DELETE',
    action: 'delete',
    repo: d.repo,
    reference: d.reference,
    digest: d.digest,
    mediaType: null,
    artifactType: null,
    status: d.status,
    bytes: 0,
    durationMs: Date.now() - d.t0,
    outcome: 'completed',
  };
  for (const s of deps.sinks) {
    try {
      s.complete(rec, { kind: 'manifest' });
      s.sync?.();
    } catch (err) {
      req.log.error({ err }, 'audit: a sink failed to take a record');
    }
  }
}

// ---- query parameters

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** A text parameter: trimmed, at most 256 characters, absent when empty. */
function textOf(q: Query, name: string): string | undefined {
  const v = one(q[name])?.trim();
  if (v === undefined || v === '') return undefined;
  if (v.length > 256) throw new WharfError('INVALID_ARGUMENT', `${name} is longer than 256 characters`);
  return v;
}

function repoOf(q: Query): string {
  const repo = one(q.repo);
  if (repo === undefined || repo === '') throw new OciError('NAME_INVALID', 'the repository is missing (?repo=)');
  return assertName(repo);
}

function limitOf(q: Query): number {
  const v = one(q.limit);
  if (v === undefined || v === '') return DEFAULT_LIMIT;
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1) throw new WharfError('INVALID_ARGUMENT', `limit must be an integer from 1 to ${MAX_LIMIT}, got "${truncate(v)}"`);
  return Math.min(Number(v), MAX_LIMIT);
}

/** Cursors are opaque: the list they belong to and the last key of the page, base64url. */
function cursor(list: string, key: string): string {
  return Buffer.from(`${list}:${key}`, 'utf8').toString('base64url');
}

function badCursor(): WharfError {
  return new WharfError('INVALID_ARGUMENT', 'invalid cursor: pass the `next` of the previous page as it came');
}

function cursorOf(q: Query, list: string): string | undefined {
  const v = one(q.cursor);
  if (v === undefined || v === '') return undefined;
  if (!/^[A-Za-z0-9_-]{1,1400}$/.test(v)) throw badCursor();
  const text = Buffer.from(v, 'base64url').toString('utf8');
  if (!text.startsWith(`${list}:`) || text.length === list.length + 1) throw badCursor();
  return text.slice(list.length + 1);
}
