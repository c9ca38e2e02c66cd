import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, type SqliteDb, type SqliteStatement } from '../sqlite.js';
import type { ArtifactKind } from './types.js';
import { describedOf, FTS, json, num, SCHEMA, str, toTag, type IndexedHit, type IndexedManifest, type IndexedRepo, type IndexedTag, type Paged, type Visible } from './catalog-rows.js';

export type { IndexedHit, IndexedManifest, IndexedRepo, IndexedTag, Paged, Visible } from './catalog-rows.js';

/**
 * The web UI's catalog index: repositories, tags and manifests (media types, kind, size,
 * annotations) in SQLite at <data>/ui/index.db, so that listing and searching 10,000 repositories
 * and 100,000 tags never walks the store. It is a cache of the store, never the source of truth:
 * catalog-sync.ts keeps it current from the registry's own writes and rebuilds it from the store
 * when it may have missed some (a crash, a change made by another process). What the routes need
 * is a handful of methods, so that the index can move to PostgreSQL (issue 22) behind the same
 * class shape.
 *
 * Search is an FTS5 trigram index over one text per manifest (repository, tags, artifactType,
 * annotation values): a substring query of three or more characters is answered from the index
 * (~0.1-2 ms over 100,000 manifests) rather than by scanning every row (~20 ms). Where SQLite has
 * no FTS5, and for shorter queries, the rows are scanned, a bounded number per request.
 */

/** Bumped when the schema or what is derived into it (kinds, sizes, search text) changes: the index is then rebuilt. */
export const INDEX_VERSION = 2;

/** Rebuilt on start when the last full rebuild is older than this, for changes made by other processes. */
export const REBUILD_AFTER = 24 * 3600e3;

/** Search text per manifest is capped: annotations are data from pushers, not a place to store books. */
const TEXT_MAX = 16 << 10;
/** Rows a search looks at per request before it answers with what it found and a cursor. */
const SCAN_BUDGET = 5000;
/** Ids a text scan covers per query, and at most per request (see search): ~1 ms each. */
const SCAN_WINDOW = 1000;
const SCAN_TEXT_BUDGET = 2000;
/** Search shows a manifest that is only a platform of an index when a tag names it. */
const LISTED = '(m.child = 0 OR m.tags > 0)';

/** The index of repository `after`'s successor in sorted `names`. */
function upperBound(names: string[], after: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class CatalogIndex {
  /** Whether the trigram index exists (SQLite built with FTS5). */
  readonly fts: boolean;
  /** Whether the index must be rebuilt from the store (new, crashed, another version, or old). */
  readonly stale: boolean;
  private readonly st: Record<string, SqliteStatement> = {};
  /** Repository names, sorted, and lower-cased for q: kept in memory until a repository comes or goes. */
  private names: { list: string[]; lower: string[] } | undefined;
  /** Set when a write to the index failed: it is then rebuilt at the next start. */
  private dirty = false;
  private closed = false;

  private constructor(private readonly db: SqliteDb, created: boolean, now: number, derived: string) {
    db.exec('PRAGMA journal_mode = WAL');
    // A cache: a commit lost to a power cut is found again by the rebuild that an unclean close asks for.
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('PRAGMA busy_timeout = 5000');
    const version = Number(db.prepare('PRAGMA user_version').get()!.user_version);
    let fresh = created;
    if (version !== INDEX_VERSION) {
      // Another layout (or none): start over; the rebuild fills it.
      for (const r of db.prepare("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'search_%'").all()) {
        db.exec(`DROP ${r.type === 'table' ? 'TABLE' : 'TRIGGER'} IF EXISTS "${String(r.name)}"`);
      }
      fresh = true;
    }
    db.exec(SCHEMA);
    let fts = true;
    try {
      db.exec(FTS);
    } catch {
      fts = false;
    }
    this.fts = fts;
    db.exec(`PRAGMA user_version = ${INDEX_VERSION}`);
    const meta = (k: string): string | undefined => str(db.prepare('SELECT value FROM meta WHERE key = ?').get(k)?.value) ?? undefined;
    const built = Number(meta('built') ?? NaN);
    this.stale = fresh || meta('clean') !== '1' || !Number.isFinite(built) || now - built > REBUILD_AFTER || meta('fts') !== String(fts) || meta('derived') !== derived;
    this.setMeta('clean', '0');
    this.setMeta('fts', String(fts));
    this.setMeta('derived', derived);
  }

  /**
   * Opens (or creates) the index; a file that is no SQLite database is replaced. `derived` names
   * how the stored values were worked out (kinds.ts's answers): another one makes the index stale.
   */
  static open(path: string, opts: { now?: number; derived?: string } = {}): CatalogIndex {
    const now = opts.now ?? Date.now();
    const derived = opts.derived ?? '';
    mkdirSync(dirname(path), { recursive: true });
    const created = !existsSync(path);
    try {
      return new CatalogIndex(openSqlite(path), created, now, derived);
    } catch (err) {
      // Damaged: a cache, so it goes (with its WAL) and is built again.
      if (created) throw err;
      for (const f of [path, `${path}-wal`, `${path}-shm`]) {
        try {
          unlinkSync(f);
        } catch {
          // absent
        }
      }
      return new CatalogIndex(openSqlite(path), true, now, derived);
    }
  }

  private depth = 0;

  /** One transaction; inside another (a batch), part of it: node:sqlite has no nested transactions. */
  private tx(fn: () => void): void {
    if (this.depth > 0) return fn();
    this.depth++;
    try {
      this.db.transaction(fn);
    } finally {
      this.depth--;
    }
  }

  private prep(sql: string): SqliteStatement {
    return (this.st[sql] ??= this.db.prepare(sql));
  }

  private setMeta(key: string, value: string): void {
    this.prep('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /** A full rebuild starts: until it ends, a restart rebuilds again. */
  rebuildStarted(): void {
    this.prep("DELETE FROM meta WHERE key = 'built'").run();
  }

  rebuildFinished(now = Date.now()): void {
    this.setMeta('built', String(now));
  }

  /** A write to the index failed: rebuild at the next start. */
  markDirty(): void {
    this.dirty = true;
  }

  // ---- writes

  /** Records a manifest (a push, a pull-through fill), and optionally the tag that now names it. */
  putManifest(m: IndexedManifest, tag?: { name: string; updated: number | null }): void {
    this.tx(() => {
      this.upsertManifest(m);
      if (tag) this.upsertTag(m.repo, tag.name, m.digest, tag.updated);
      this.refreshRepo(m.repo);
    });
  }

  /** Points a tag at a manifest the index holds (false when it holds none: describe it first). */
  setTag(repo: string, tag: string, digest: string, updated: number | null): boolean {
    if (!this.prep('SELECT 1 FROM manifests WHERE repo = ? AND digest = ?').get(repo, digest)) return false;
    this.tx(() => {
      this.upsertTag(repo, tag, digest, updated);
      this.refreshRepo(repo);
    });
    return true;
  }

  deleteTag(repo: string, tag: string): void {
    this.tx(() => {
      const old = this.prep('SELECT digest FROM tags WHERE repo = ? AND tag = ?').get(repo, tag);
      this.prep('DELETE FROM tags WHERE repo = ? AND tag = ?').run(repo, tag);
      if (old) this.refreshManifest(repo, String(old.digest));
      this.refreshRepo(repo);
    });
  }

  /** A manifest deleted by digest: it goes, and the tags that named it. */
  deleteManifest(repo: string, digest: string): void {
    this.tx(() => {
      this.prep('DELETE FROM tags WHERE repo = ? AND digest = ?').run(repo, digest);
      this.prep('DELETE FROM manifests WHERE repo = ? AND digest = ?').run(repo, digest);
      this.refreshRepo(repo);
    });
  }

  /** Replaces everything the index holds of a repository by what a scan of the store found. */
  replaceRepo(repo: string, manifests: IndexedManifest[], tags: Array<{ name: string; digest: string; updated: number | null }>): void {
    this.tx(() => {
      const keep = new Set(manifests.map((m) => m.digest));
      for (const r of this.prep('SELECT digest FROM manifests WHERE repo = ?').all(repo)) {
        if (!keep.has(String(r.digest))) this.prep('DELETE FROM manifests WHERE repo = ? AND digest = ?').run(repo, String(r.digest));
      }
      this.prep('DELETE FROM tags WHERE repo = ?').run(repo);
      for (const m of manifests) this.upsertManifest(m, false);
      for (const t of tags) if (keep.has(t.digest)) this.prep('INSERT INTO tags (repo, tag, digest, updated) VALUES (?, ?, ?, ?)').run(repo, t.name, t.digest, t.updated);
      for (const m of manifests) this.refreshManifest(repo, m.digest);
      this.refreshRepo(repo);
    });
  }

  /** Drops the repositories that are not in `names` (gone from the store). */
  retainRepos(names: Set<string>): number {
    let n = 0;
    this.tx(() => {
      for (const r of this.prep('SELECT name FROM repos').all()) {
        const name = String(r.name);
        if (names.has(name)) continue;
        this.prep('DELETE FROM tags WHERE repo = ?').run(name);
        this.prep('DELETE FROM manifests WHERE repo = ?').run(name);
        this.prep('DELETE FROM repo_types WHERE repo = ?').run(name);
        this.prep('DELETE FROM repos WHERE name = ?').run(name);
        n++;
      }
    });
    if (n > 0) this.names = undefined;
    return n;
  }

  private upsertManifest(m: IndexedManifest, refresh = true): void {
    this.prep(
      `INSERT INTO manifests (repo, digest, media_type, artifact_type, config_type, kind, kind_info, size, subject, annotations, updated)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(repo, digest) DO UPDATE SET media_type = excluded.media_type, artifact_type = excluded.artifact_type, config_type = excluded.config_type,
         kind = excluded.kind, kind_info = excluded.kind_info, size = excluded.size, subject = excluded.subject, annotations = excluded.annotations, updated = COALESCE(excluded.updated, manifests.updated)`,
    ).run(m.repo, m.digest, m.mediaType, m.artifactType, m.configMediaType, m.kind, JSON.stringify(m.kindInfo), m.size, m.subject, JSON.stringify(m.annotations), m.updated);
    for (const c of m.children) this.prep('UPDATE manifests SET child = 1 WHERE repo = ? AND digest = ?').run(m.repo, c);
    if (refresh) this.refreshManifest(m.repo, m.digest);
  }

  private upsertTag(repo: string, tag: string, digest: string, updated: number | null): void {
    const old = this.prep('SELECT digest FROM tags WHERE repo = ? AND tag = ?').get(repo, tag);
    this.prep('INSERT INTO tags (repo, tag, digest, updated) VALUES (?, ?, ?, ?) ON CONFLICT(repo, tag) DO UPDATE SET digest = excluded.digest, updated = excluded.updated').run(repo, tag, digest, updated);
    if (old && old.digest !== digest) this.refreshManifest(repo, String(old.digest));
    this.refreshManifest(repo, digest);
  }

  /** A manifest's tag count and search text, after its tags changed. */
  private refreshManifest(repo: string, digest: string): void {
    const row = this.prep('SELECT artifact_type, annotations FROM manifests WHERE repo = ? AND digest = ?').get(repo, digest);
    if (!row) return;
    const tags = this.prep('SELECT tag FROM tags WHERE repo = ? AND digest = ?').all(repo, digest).map((r) => String(r.tag));
    const parts = [repo, ...tags, str(row.artifact_type) ?? '', ...Object.values(json(row.annotations)).map((v) => String(v).slice(0, 1024))];
    // One field per line: a query (a line of its own, no newline) never matches across two fields.
    const text = parts.map((p) => p.replace(/[\r\n]+/g, ' ')).join('\n').slice(0, TEXT_MAX);
    this.prep('UPDATE manifests SET tags = ?, text = ? WHERE repo = ? AND digest = ? AND (tags != ? OR text != ?)').run(tags.length, text, repo, digest, tags.length, text);
  }

  /** A repository's row: tag count, kinds of what its tags name (most frequent first), last push; and its artifact types. */
  private refreshRepo(repo: string): void {
    const tags = num(this.prep('SELECT COUNT(*) AS n FROM tags WHERE repo = ?').get(repo)?.n) ?? 0;
    const kinds = this.prep('SELECT m.kind AS kind, COUNT(*) AS n FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = ? GROUP BY m.kind ORDER BY n DESC, m.kind')
      .all(repo)
      .map((r) => String(r.kind))
      .join(',');
    const last = this.prep('SELECT MAX(u) AS u FROM (SELECT MAX(updated) AS u FROM tags WHERE repo = ? UNION ALL SELECT MAX(updated) FROM manifests WHERE repo = ?)').get(repo, repo);
    const had = this.prep('SELECT 1 FROM repos WHERE name = ?').get(repo);
    this.prep('INSERT INTO repos (name, tags, kinds, updated) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET tags = excluded.tags, kinds = excluded.kinds, updated = excluded.updated')
      .run(repo, tags, kinds, num(last?.u));
    if (!had) this.names = undefined;
    this.prep('DELETE FROM repo_types WHERE repo = ?').run(repo);
    this.prep(`INSERT INTO repo_types (artifact_type, repo, n) SELECT artifact_type, repo, COUNT(*) FROM manifests m WHERE repo = ? AND artifact_type IS NOT NULL AND ${LISTED} GROUP BY artifact_type`).run(repo);
  }

  // ---- reads

  /** Every repository name, sorted (the same array until a repository comes or goes). */
  repoNames(): readonly string[] {
    return this.sortedNames().list;
  }

  private sortedNames(): { list: string[]; lower: string[] } {
    if (!this.names) {
      const list = this.prep('SELECT name FROM repos').all().map((r) => String(r.name)).sort();
      this.names = { list, lower: list.map((n) => n.toLowerCase()) };
    }
    return this.names;
  }

  /**
   * Repositories by name, after `after`: those `visible` lets the viewer see, whose name contains
   * `q`, that hold an artifact of `artifactType`. By name from the sorted names in memory; by type
   * in name order from repo_types. At most SCAN_BUDGET names are looked at per call beyond the
   * first match: a page may then be short, with a cursor to go on.
   */
  repositories(f: { q?: string | undefined; artifactType?: string | undefined; after?: string | undefined; limit: number; visible: Visible }): Paged<IndexedRepo, string> {
    const q = f.q?.toLowerCase();
    const names: string[] = [];
    let more: boolean;
    let last = f.after;
    if (f.artifactType !== undefined) {
      const page = 500;
      let scanned = 0;
      for (;;) {
        const rows = this.prep('SELECT repo FROM repo_types WHERE artifact_type = ? AND repo > ? ORDER BY repo LIMIT ?').all(f.artifactType, last ?? '', page);
        let i = 0;
        for (; i < rows.length && names.length < f.limit; i++) {
          const n = String(rows[i]!.repo);
          last = n;
          scanned++;
          if (q && !n.toLowerCase().includes(q)) continue;
          if (f.visible(n)) names.push(n);
        }
        if (names.length === f.limit) {
          more = i < rows.length || rows.length === page;
          break;
        }
        if (rows.length < page) {
          more = false;
          break;
        }
        if (scanned >= SCAN_BUDGET) {
          more = true;
          break;
        }
      }
    } else {
      const { list, lower } = this.sortedNames();
      let i = f.after !== undefined ? upperBound(list, f.after) : 0;
      for (; i < list.length && names.length < f.limit; i++) {
        const n = list[i]!;
        if (q && !lower[i]!.includes(q)) continue;
        if (!f.visible(n)) continue;
        names.push(n);
      }
      last = names[names.length - 1];
      more = i < list.length && names.length === f.limit;
    }
    const items: IndexedRepo[] = [];
    for (const n of names) {
      const r = this.prep('SELECT name, tags, kinds, updated FROM repos WHERE name = ?').get(n);
      if (r) items.push({ name: n, tags: num(r.tags) ?? 0, kinds: String(r.kinds).split(',').filter((k) => k !== '') as ArtifactKind[], updated: num(r.updated) });
    }
    return { items, next: more && last !== undefined ? last : null };
  }

  hasRepo(repo: string): boolean {
    return this.prep('SELECT 1 FROM repos WHERE name = ?').get(repo) !== undefined;
  }

  /** A repository's tags by name, after `after`, whose name contains `q`. */
  tags(repo: string, f: { q?: string | undefined; after?: string | undefined; limit: number }): Paged<IndexedTag, string> {
    const where = ['t.repo = ?'];
    const args: Array<string | number> = [repo];
    if (f.after !== undefined) {
      where.push('t.tag > ?');
      args.push(f.after);
    }
    if (f.q) {
      where.push('instr(lower(t.tag), ?) > 0');
      args.push(f.q.toLowerCase());
    }
    const rows = this.prep(
      `SELECT t.repo, t.tag, t.digest, t.updated, m.media_type, m.artifact_type, m.config_type, m.kind, m.kind_info, m.size, m.annotations
       FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE ${where.join(' AND ')} ORDER BY t.tag LIMIT ?`,
    ).all(...args, f.limit + 1);
    const more = rows.length > f.limit;
    const items = rows.slice(0, f.limit).map(toTag);
    return { items, next: more ? items[items.length - 1]!.tag : null };
  }

  /** What the index says a tag names (re-check it against the store before showing it as the truth). */
  lookup(repo: string, tag: string): IndexedTag | undefined {
    const r = this.prep(
      `SELECT t.repo, t.tag, t.digest, t.updated, m.media_type, m.artifact_type, m.config_type, m.kind, m.kind_info, m.size, m.annotations
       FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = ? AND t.tag = ?`,
    ).get(repo, tag);
    return r ? toTag(r) : undefined;
  }

  /** What the index holds of a manifest. */
  manifest(repo: string, digest: string): (IndexedManifest & { tags: string[] }) | undefined {
    const r = this.prep('SELECT * FROM manifests WHERE repo = ? AND digest = ?').get(repo, digest);
    if (!r) return undefined;
    return {
      ...describedOf(r),
      kind: String(r.kind) as ArtifactKind,
      size: num(r.size) ?? 0,
      subject: str(r.subject),
      children: [],
      updated: num(r.updated),
      tags: this.tagsOf(repo, digest),
    };
  }

  private tagsOf(repo: string, digest: string): string[] {
    return this.prep('SELECT tag FROM tags WHERE repo = ? AND digest = ? ORDER BY updated DESC, tag').all(repo, digest).map((r) => String(r.tag));
  }

  /**
   * Artifacts whose repository, tag, artifactType or an annotation value contains `q` (any case),
   * of `artifactType` if given, newest first; `after` is the last id of the previous page. At most
   * SCAN_BUDGET rows are looked at per call: a page may then be short, with a cursor to go on.
   */
  search(f: { q?: string | undefined; artifactType?: string | undefined; after?: number | undefined; limit: number; visible: Visible; only?: readonly string[] | undefined }): Paged<IndexedHit, number> {
    if (f.only) return this.searchIn(f.only, f);
    const q = f.q ?? '';
    // Without the trigram index (or for one or two characters) the text is scanned, a window of
    // ids at a time, so that a query that matches little costs a bounded scan per request.
    const scan = q !== '' && !(this.fts && [...q].length >= 3);
    const chunk = Math.min(Math.max(f.limit * 2, 50), 500);
    const items: IndexedHit[] = [];
    let cursor = f.after ?? (scan ? (num(this.prep('SELECT MAX(id) AS n FROM manifests').get()?.n) ?? 0) + 1 : Number.MAX_SAFE_INTEGER);
    let scanned = 0;
    for (;;) {
      const where = [`m.id < ?`, LISTED];
      const args: Array<string | number> = [cursor];
      if (f.artifactType !== undefined) {
        where.push('m.artifact_type = ?');
        args.push(f.artifactType);
      }
      let low = 0;
      let sql: string;
      if (q !== '' && !scan) {
        sql = `SELECT m.id, m.repo FROM search s JOIN manifests m ON m.id = s.rowid
               WHERE search MATCH ? AND s.rowid < ? AND ${where.slice(1).join(' AND ')} ORDER BY s.rowid DESC LIMIT ?`;
        args.unshift(`"${q.replace(/"/g, '""')}"`);
      } else {
        if (scan) {
          low = Math.max(0, cursor - SCAN_WINDOW);
          where.push('m.id >= ?', 'instr(lower(m.text), ?) > 0');
          args.push(low, q.toLowerCase());
        }
        sql = `SELECT m.id, m.repo FROM manifests m WHERE ${where.join(' AND ')} ORDER BY m.id DESC LIMIT ?`;
      }
      const rows = this.prep(sql).all(...args, chunk);
      const from = cursor;
      for (const r of rows) {
        cursor = num(r.id)!;
        scanned++;
        if (!f.visible(String(r.repo))) continue;
        items.push(this.hit(cursor));
        if (items.length === f.limit) return { items, next: cursor };
      }
      if (scan && rows.length < chunk) {
        // The window is done: the next one starts below it.
        scanned += from - low - rows.length;
        cursor = low;
        if (low <= 1) return { items, next: null };
      } else if (rows.length < chunk) return { items, next: null };
      if (scanned >= (scan ? SCAN_TEXT_BUDGET : SCAN_BUDGET)) return { items, next: cursor };
    }
  }

  /**
   * Search within the repositories a viewer may see, when they are few: their manifests are read
   * by repository and filtered, which beats walking every match of the whole registry to find the
   * few in them.
   */
  private searchIn(repos: readonly string[], f: { q?: string | undefined; artifactType?: string | undefined; after?: number | undefined; limit: number }): Paged<IndexedHit, number> {
    const where = ['m.repo IN (SELECT value FROM json_each(?))', 'm.id < ?', LISTED];
    const args: Array<string | number> = [JSON.stringify(repos), f.after ?? Number.MAX_SAFE_INTEGER];
    if (f.artifactType !== undefined) {
      where.push('m.artifact_type = ?');
      args.push(f.artifactType);
    }
    if (f.q) {
      where.push('instr(lower(m.text), ?) > 0');
      args.push(f.q.toLowerCase());
    }
    const rows = this.prep(`SELECT m.id FROM manifests m WHERE ${where.join(' AND ')} ORDER BY m.id DESC LIMIT ?`).all(...args, f.limit + 1);
    const items = rows.slice(0, f.limit).map((r) => this.hit(num(r.id)!));
    return { items, next: rows.length > f.limit ? items[items.length - 1]!.id : null };
  }

  private hit(id: number): IndexedHit {
    const r = this.prep('SELECT id, repo, digest, media_type, artifact_type, config_type, kind, kind_info, annotations FROM manifests WHERE id = ?').get(id)!;
    const d = describedOf(r);
    return { id, ...d, tags: this.tagsOf(d.repo, d.digest) };
  }

  /** Counts, for logs and tests. */
  counts(): { repos: number; tags: number; manifests: number } {
    const c = (t: string): number => num(this.prep(`SELECT COUNT(*) AS n FROM ${t}`).get()?.n) ?? 0;
    return { repos: c('repos'), tags: c('tags'), manifests: c('manifests') };
  }

  /** Runs `fn` in one transaction (bulk loads: the benchmark's seeding). */
  batch(fn: () => void): void {
    this.tx(fn);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Clean only when every write since the open reached the index.
    if (!this.dirty) this.setMeta('clean', '1');
    this.db.close();
  }
}
