import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, type SqliteDb, type SqliteEngine, type SqliteStatement, type SqliteValue } from '../sqlite.js';
import type { AuditFilter, AuditRecord, DownloadRow } from './types.js';
import { DownloadAnalytics } from './analytics-db.js';

export type { DownloadScope, SeriesRow, TagMoveRow } from './analytics-db.js';

const SCHEMA_VERSION = 3;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  user TEXT, ip TEXT NOT NULL, user_agent TEXT, method TEXT NOT NULL, action TEXT NOT NULL,
  repo TEXT, reference TEXT, digest TEXT, media_type TEXT, artifact_type TEXT,
  status INTEGER NOT NULL, bytes INTEGER NOT NULL, duration_ms REAL NOT NULL, outcome TEXT NOT NULL,
  download_id INTEGER, file TEXT
);
CREATE INDEX IF NOT EXISTS requests_time ON requests(time);
CREATE INDEX IF NOT EXISTS requests_repo ON requests(repo, time);
CREATE INDEX IF NOT EXISTS requests_user ON requests(user, time);
CREATE INDEX IF NOT EXISTS requests_digest ON requests(digest);
CREATE TABLE IF NOT EXISTS downloads (
  id INTEGER PRIMARY KEY, time INTEGER NOT NULL, last_time INTEGER NOT NULL,
  user TEXT, ip TEXT NOT NULL, repo TEXT NOT NULL, reference TEXT, digest TEXT NOT NULL, artifact_type TEXT,
  blobs_total INTEGER NOT NULL, blobs_done INTEGER NOT NULL, bytes INTEGER NOT NULL, completed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS downloads_time ON downloads(time);
`;
/**
 * Indexes for the web UI's analytics (src/server/web/analytics.ts), created on every open with IF
 * NOT EXISTS: they change no table, so no version bump; a database that has them is still read
 * by an older server, and one without them gets them on its next open.
 * - downloads by time, by repository and by artifact, each covering what the series and top
 *   queries read (user, ip, bytes, reference), so that they scan an index and never the table;
 * - UI file downloads (partial: the few rows with a file), by time and by repository;
 * - tag moves (partial: manifest PUTs and DELETEs only), by repository and reference;
 * - where this database is in a journal shared through PostgreSQL (AuditLog's `shared`);
 * - daily rollups (rollUp): per artifact, and per user, of the days that can no longer change.
 *   A series or top list over all repositories reads whole days from them and only the edges of
 *   its range from the rows: a 90-day dashboard reads a few thousand rows, not every download.
 */
const ANALYTICS_INDEXES = `
CREATE INDEX IF NOT EXISTS downloads_when ON downloads(time, repo, digest, user, ip, bytes, reference);
CREATE INDEX IF NOT EXISTS downloads_repo ON downloads(repo, time, user, ip, bytes);
CREATE INDEX IF NOT EXISTS downloads_artifact ON downloads(repo, digest, time, user, ip, bytes, reference);
CREATE INDEX IF NOT EXISTS requests_file ON requests(time) WHERE file IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_file_repo ON requests(repo, time) WHERE file IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_moves ON requests(repo, reference, time) WHERE method IN ('PUT', 'DELETE');
CREATE TABLE IF NOT EXISTS rollup_days (day INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS shared_position (id INTEGER PRIMARY KEY CHECK (id = 1), txid INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rollup_artifacts (
  day INTEGER NOT NULL, repo TEXT NOT NULL, digest TEXT NOT NULL,
  downloads INTEGER NOT NULL, bytes INTEGER NOT NULL, last_time INTEGER NOT NULL, reference TEXT,
  PRIMARY KEY (day, repo, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_artifacts_by ON rollup_artifacts(repo, digest, day);
CREATE TABLE IF NOT EXISTS rollup_users (
  day INTEGER NOT NULL, who TEXT NOT NULL, downloads INTEGER NOT NULL, bytes INTEGER NOT NULL,
  PRIMARY KEY (day, who)
) WITHOUT ROWID;
`;
/** Version 2 to 3: the file a download from the web UI took out of its layer. */
const ADD_FILE = 'ALTER TABLE requests ADD COLUMN file TEXT';

type Row = Record<string, unknown>;

const INSERT_RECORD_SQL = `INSERT OR IGNORE INTO requests (id, time, user, ip, user_agent, method, action, repo, reference, digest, media_type, artifact_type, status, bytes, duration_ms, outcome, download_id, file)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const UPSERT_DOWNLOAD_SQL = `INSERT INTO downloads (id, time, last_time, user, ip, repo, reference, digest, artifact_type, blobs_total, blobs_done, bytes, completed)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT(id) DO UPDATE SET last_time = excluded.last_time, blobs_done = excluded.blobs_done, bytes = excluded.bytes, completed = excluded.completed`;
/** Retention: [sql, which bound value] in order; see AuditDb.prune. */
const PRUNE_SQL = {
  ageRequests: 'DELETE FROM requests WHERE time < ?',
  ageDownloads: 'DELETE FROM downloads WHERE last_time < ?',
  rowsRequests: 'DELETE FROM requests WHERE id <= (SELECT id FROM requests ORDER BY id DESC LIMIT 1 OFFSET ?)',
  rowsDownloads: 'DELETE FROM downloads WHERE id IN (SELECT id FROM downloads ORDER BY time DESC LIMIT -1 OFFSET ?)',
} as const;

export type RecordParams = [number, number, string | null, string, string | null, string, string, string | null, string | null, string | null, string | null, string | null, number, number, number, string, number | null, string | null];
export type DownloadParams = [number, number, number, string | null, string, string, string | null, string, string | null, number, number, number, number];

/** A record as the positional parameters of INSERT_RECORD_SQL (no object per row to bind). */
export function recordParams(r: AuditRecord & { downloadId?: number | null }): RecordParams {
  return [r.id, r.time, r.user, r.ip, r.userAgent, r.method, r.action, r.repo, r.reference, r.digest, r.mediaType, r.artifactType, r.status, r.bytes, r.durationMs, r.outcome, r.downloadId ?? null, r.file ?? null];
}

export function downloadParams(d: DownloadRow): DownloadParams {
  return [d.id, d.time, d.lastTime, d.user, d.ip, d.repo, d.reference, d.digest, d.artifactType, d.blobsTotal, d.blobsDone, d.bytes, d.completed ? 1 : 0];
}

function toRecord(r: Row): AuditRecord & { downloadId: number | null } {
  return {
    id: r.id as number,
    time: r.time as number,
    user: r.user as string | null,
    ip: r.ip as string,
    userAgent: r.user_agent as string | null,
    method: r.method as string,
    action: r.action as AuditRecord['action'],
    repo: r.repo as string | null,
    reference: r.reference as string | null,
    digest: r.digest as string | null,
    mediaType: r.media_type as string | null,
    artifactType: r.artifact_type as string | null,
    status: r.status as number,
    bytes: r.bytes as number,
    durationMs: r.duration_ms as number,
    outcome: r.outcome as AuditRecord['outcome'],
    downloadId: r.download_id as number | null,
    file: (r.file as string | null | undefined) ?? null,
  };
}

function toDownload(r: Row): DownloadRow {
  return {
    id: r.id as number,
    time: r.time as number,
    lastTime: r.last_time as number,
    user: r.user as string | null,
    ip: r.ip as string,
    repo: r.repo as string,
    reference: r.reference as string | null,
    digest: r.digest as string,
    artifactType: r.artifact_type as string | null,
    blobsTotal: r.blobs_total as number,
    blobsDone: r.blobs_done as number,
    bytes: r.bytes as number,
    completed: r.completed === 1,
  };
}

function where(f: AuditFilter, table: 'requests' | 'downloads'): { sql: string; args: SqliteValue[] } {
  const c: string[] = [];
  const args: SqliteValue[] = [];
  if (f.repo !== undefined) {
    c.push(f.repo.includes('*') ? 'repo GLOB ?' : 'repo = ?');
    args.push(f.repo);
  }
  if (f.user !== undefined) (c.push('user = ?'), args.push(f.user));
  if (f.digest !== undefined) (c.push('digest = ?'), args.push(f.digest));
  if (f.since !== undefined) (c.push('time >= ?'), args.push(f.since));
  if (f.until !== undefined) (c.push('time <= ?'), args.push(f.until));
  if (table === 'requests') {
    if (f.action !== undefined && f.action !== 'denied') (c.push('action = ?'), args.push(f.action));
    if (f.denied || f.action === 'denied') c.push('status IN (401, 403)');
  }
  return { sql: c.length ? `WHERE ${c.join(' AND ')}` : '', args };
}

/** The audit database: SQLite in WAL mode; one writer (the server), any number of readers. */
export class AuditDb {
  readonly db: SqliteDb;
  private readonly insert: SqliteStatement;
  private upsertDownload: SqliteStatement | undefined;
  private correct: SqliteStatement | undefined;
  /** The web UI's analytics over this database (analytics-db.ts). */
  readonly analytics: DownloadAnalytics;

  constructor(readonly path: string, opts: { readonly?: boolean; engine?: SqliteEngine } = {}) {
    if (!opts.readonly) mkdirSync(dirname(path), { recursive: true });
    this.db = openSqlite(path, opts);
    if (!opts.readonly) {
      this.db.exec('PRAGMA journal_mode = WAL');
      // NORMAL in WAL mode: a committed transaction survives the process being killed.
      this.db.exec('PRAGMA synchronous = NORMAL');
      const version = this.db.prepare('PRAGMA user_version').get()!.user_version as number;
      if (version === 2) {
        // Only a column added: the rows stay where they are.
        this.db.exec(ADD_FILE);
        this.db.exec(SCHEMA);
        this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      } else if (version < SCHEMA_VERSION) {
        // An older layout is kept aside, not converted.
        const old = this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('requests', 'downloads')").all() as Array<{ name: string }>;
        for (const t of old) this.db.exec(`ALTER TABLE ${t.name} RENAME TO ${t.name}_v${version}`);
        this.db.exec(SCHEMA);
        this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      }
      this.db.exec(ANALYTICS_INDEXES);
    }
    this.db.exec('PRAGMA busy_timeout = 5000');
    this.insert = this.db.prepare(opts.readonly ? 'SELECT 1' : INSERT_RECORD_SQL);
    this.analytics = new DownloadAnalytics(this.db);
  }

  /**
   * One transaction: inserts records (a record already there is kept), upserts download rows,
   * applies corrections (a client that left after its record was written) and the retention pass.
   */
  commit(
    records: RecordParams[],
    downloads: DownloadParams[] = [],
    corrections: Array<{ id: number; bytes: number }> = [],
    prune?: { maxAge?: number | undefined; maxRows?: number | undefined; now: number },
    position?: string,
  ): void {
    const up = (this.upsertDownload ??= this.db.prepare(UPSERT_DOWNLOAD_SQL));
    const fix = (this.correct ??= this.db.prepare("UPDATE requests SET outcome = 'aborted', bytes = ? WHERE id = ?"));
    this.db.transaction(() => {
      for (const r of records) this.insert.run(...r);
      for (const d of downloads) up.run(...d);
      for (const c of corrections) fix.run(c.bytes, c.id);
      if (prune) this.prune(prune, prune.now);
      // In the same transaction as the rows: a crash never leaves the position ahead of them, or
      // behind. It only moves forward: \`wharf audit\` may bring this database up to date while the
      // server does, and must not send it back over rows it already has.
      if (position !== undefined) {
        const [txid, seq] = position.split(':').map(Number) as [number, number];
        this.db
          .prepare('INSERT INTO shared_position (id, txid, seq) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET txid = excluded.txid, seq = excluded.seq WHERE (excluded.txid, excluded.seq) > (txid, seq)')
          .run(txid, seq);
      }
    });
  }

  /** Where this database is in the shared journal; undefined before its first batch. */
  position(): string | undefined {
    const r = this.db.prepare('SELECT txid, seq FROM shared_position WHERE id = 1').get();
    return r ? `${String(r.txid)}:${String(r.seq)}` : undefined;
  }

  has(id: number): boolean {
    return this.db.prepare('SELECT 1 FROM requests WHERE id = ?').get(id) !== undefined;
  }

  /** Records, newest first; `before` is the id cursor of the previous page. */
  query(f: AuditFilter, page: { limit?: number; before?: number } = {}): Array<AuditRecord & { downloadId: number | null }> {
    const w = where(f, 'requests');
    const cursor = page.before !== undefined ? `${w.sql ? `${w.sql} AND` : 'WHERE'} id < ?` : w.sql;
    const args = page.before !== undefined ? [...w.args, page.before] : w.args;
    const rows = this.db.prepare(`SELECT * FROM requests ${cursor} ORDER BY id DESC LIMIT ?`).all(...args, page.limit ?? 100) as Row[];
    return rows.map(toRecord);
  }

  downloads(f: AuditFilter, limit = 100): DownloadRow[] {
    const w = where(f, 'downloads');
    return (this.db.prepare(`SELECT * FROM downloads ${w.sql} ORDER BY time DESC LIMIT ?`).all(...w.args, limit) as Row[]).map(toDownload);
  }

  /** Artifact downloads per artifact and per user over a period. */
  stats(f: AuditFilter): { perArtifact: Array<{ repo: string; reference: string | null; digest: string; downloads: number; users: number; completed: number; bytes: number }>; perUser: Array<{ user: string | null; downloads: number; bytes: number }> } {
    const w = where(f, 'downloads');
    const perArtifact = this.db
      .prepare(`SELECT repo, reference, digest, COUNT(*) AS downloads, COUNT(DISTINCT COALESCE(user, ip)) AS users, SUM(completed) AS completed, SUM(bytes) AS bytes
        FROM downloads ${w.sql} GROUP BY repo, digest ORDER BY downloads DESC, repo`)
      .all(...w.args) as Array<{ repo: string; reference: string | null; digest: string; downloads: number; users: number; completed: number; bytes: number }>;
    const perUser = this.db
      .prepare(`SELECT user, COUNT(*) AS downloads, SUM(bytes) AS bytes FROM downloads ${w.sql} GROUP BY user ORDER BY downloads DESC`)
      .all(...w.args) as Array<{ user: string | null; downloads: number; bytes: number }>;
    return { perArtifact, perUser };
  }

  /** Drops records older than `maxAge` ms and beyond the newest `maxRows`; returns how many. */
  prune(opts: { maxAge?: number | undefined; maxRows?: number | undefined }, now = Date.now()): number {
    let n = 0;
    if (opts.maxAge !== undefined) {
      n += this.db.prepare(PRUNE_SQL.ageRequests).run(now - opts.maxAge).changes;
      this.db.prepare(PRUNE_SQL.ageDownloads).run(now - opts.maxAge);
    }
    if (opts.maxRows !== undefined) {
      n += this.db.prepare(PRUNE_SQL.rowsRequests).run(opts.maxRows).changes;
      this.db.prepare(PRUNE_SQL.rowsDownloads).run(opts.maxRows);
    }
    return n;
  }

  close(): void {
    this.db.close();
  }
}

const CSV_COLUMNS = ['time', 'user', 'ip', 'userAgent', 'method', 'action', 'repo', 'reference', 'digest', 'mediaType', 'artifactType', 'status', 'bytes', 'durationMs', 'outcome', 'file'] as const;

/** One CSV cell: quoted when needed, and a leading formula character defused. */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  // A leading =, +, - or @ would be a formula in a spreadsheet.
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function recordsToCsv(rows: AuditRecord[], header = true): string {
  const lines = header ? [CSV_COLUMNS.join(',')] : [];
  for (const r of rows) lines.push(CSV_COLUMNS.map((c) => csvCell(c === 'time' ? new Date(r.time).toISOString() : r[c])).join(','));
  return `${lines.join('\n')}\n`;
}
