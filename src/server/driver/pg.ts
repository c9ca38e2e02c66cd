import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciError } from '../../spec/index.js';
import { fsError } from './errors.js';
import { CHANGE_WAIT_MS, KeptFiles } from './pg-kept.js';
import { checkPath } from './paths.js';
import type { DriverWriter, FileInfo, FileReader, KeptStats, PutOptions, StageOptions, Staged, StorageDriver, WriterOptions } from './types.js';

/**
 * The most bytes a file here may hold. This driver keeps the registry's small files (tags, links,
 * referrer descriptors: bytes to a few KiB), which several replicas must read-after-write; blobs
 * and upload data stay on the object store. A file is held whole in memory while read or written.
 */
export const PG_FILE_MAX = 64 << 20;

/** What a reader hands out at once. */
const CHUNK = 1 << 20;

/** PostgreSQL's clock, in ms: replicas compare mtimes (gc's grace period), so one clock for all. */
const NOW = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

interface Row {
  size: string;
  mtime_ms: string;
  version: string;
}

const info = (r: Row): FileInfo => ({ size: Number(r.size), mtimeMs: Number(r.mtime_ms), isDir: false, version: r.version });

/** The key range of a directory's files: every path that starts with `dir/` (`0` follows `/`). */
function range(dir: string): [string, string] {
  return dir === '' ? ['', '\u{10FFFF}'] : [`${dir}/`, `${dir}0`];
}

/**
 * SQLSTATE classes of a database that is away or overloaded, not of a wrong statement: 08
 * connection exception, 53 insufficient resources, 57 operator intervention (a shutdown, a
 * cancelled query), 58 system error, 40 a transaction rolled back (a deadlock, serialization).
 */
const TRANSIENT = new Set(['08', '53', '57', '58', '40']);

/** A failed query as the registry answers it: the database unreachable is UNAVAILABLE; a bug stays itself. */
export function dbError(err: unknown): Error {
  const code = (err as { code?: unknown }).code;
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  // No SQLSTATE: the connection failed (refused, reset, a timeout of pg's own).
  if (sqlState === undefined || TRANSIENT.has(sqlState.slice(0, 2))) {
    const why = sqlState ?? (typeof code === 'string' ? code : (err as Error).message);
    return new OciError('UNAVAILABLE', `the database is unavailable (${why}); try again`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** Writes that have no name yet, which sweepTemp may end. */
interface Unnamed {
  readonly started: number;
  swept: boolean;
}

/** Upload records change with every chunk: they are never kept, so changing them needs no wait. */
const keepable = (path: string): boolean => !path.includes('/_uploads/');

export interface PgDriverOptions {
  /** The database's URL: given, the driver keeps small files in memory (pg-kept.ts), as a server does. */
  url?: string | undefined;
  onError?: (err: unknown) => void;
}

/**
 * A StorageDriver over one PostgreSQL table (wharf_files, src/server/db/migrations.ts): each file
 * is a row, and directories are path prefixes, as in an object store. Every write is one statement
 * (atomic), every read sees every replica's committed writes: this is what lets several replicas
 * serve tags and manifests with no stale answer (docs/SCALE-OUT.md).
 */
export class PgDriver implements StorageDriver {
  readonly objectStore = true;
  private readonly unnamed = new Set<Unnamed>();
  private readonly kept: KeptFiles;
  private ticks = 0;

  /** `release`: what close() does with the connections (end the pool, when this driver owns it). */
  constructor(
    private readonly pool: pg.Pool,
    private readonly release?: () => Promise<void>,
    opts: PgDriverOptions = {},
  ) {
    this.kept = new KeptFiles((text, values) => this.q(text, values), opts);
  }

  async close(): Promise<void> {
    await this.kept.close();
    await this.release?.();
  }

  /**
   * After a change to a file that other replicas may keep: wait until each has heard of it or
   * stopped answering from memory (pg-kept.ts), so that what this write acknowledges is read
   * everywhere next.
   */
  private async settled(changed: boolean): Promise<void> {
    if (changed) await sleep(CHANGE_WAIT_MS);
  }

  /** A query; the database down, slow or restarting becomes UNAVAILABLE (503, and the client tries again). */
  private async q<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (err) {
      throw dbError(err);
    }
  }

  /** Throws when the database does not answer (/healthz). */
  async ping(): Promise<void> {
    await this.q('SELECT 1', []);
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    checkPath(path);
    const r = await this.q<Row>('SELECT length(data) AS size, mtime_ms, version FROM wharf_files WHERE path = $1', [path]);
    return r.rows[0] && info(r.rows[0]);
  }

  async get(path: string, opts: { since?: number | undefined } = {}): Promise<Buffer | undefined> {
    checkPath(path);
    if (opts.since === undefined || !keepable(path)) {
      const r = await this.q<{ data: Buffer }>('SELECT data FROM wharf_files WHERE path = $1', [path]);
      return r.rows[0]?.data;
    }
    return this.kept.get(path);
  }

  keptStats(): KeptStats {
    return this.kept.stats();
  }

  /** Whether a read of `path` would be answered from memory now. */
  keeps(path: string): boolean {
    return this.kept.has(path);
  }

  /** Marks for get()'s `since`. Any mark will do: what is kept is never older than a request's start. */
  tick(): number {
    return ++this.ticks;
  }

  async put(path: string, data: Uint8Array | string, opts: PutOptions = {}): Promise<void> {
    checkPath(path);
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    if (opts.after) await opts.after;
    await this.write(path, bytes);
  }

  private async write(path: string, bytes: Buffer): Promise<void> {
    if (bytes.length > PG_FILE_MAX) throw fsError('EFBIG', 'write', path);
    // wharf_put (migration 7) says whether the file held other bytes: only then may a replica keep the old ones.
    const r = await this.q<{ changed: boolean }>('SELECT wharf_put($1, $2) AS changed', [path, bytes]);
    await this.settled(keepable(path) && r.rows[0]!.changed);
  }

  async open(path: string): Promise<FileReader> {
    const data = await this.get(path);
    if (!data) throw fsError('ENOENT', 'open', path);
    return {
      read: async (into, position) => {
        if (position >= data.length) return 0;
        return data.copy(into, 0, position, Math.min(data.length, position + into.length));
      },
      close: async () => undefined,
    };
  }

  async reader(path: string, r?: { start: number; end: number }): Promise<Readable> {
    const data = await this.get(path);
    if (!data) throw fsError('ENOENT', 'open', path);
    const bytes = r ? data.subarray(r.start, r.end + 1) : data;
    return Readable.from(
      (function* () {
        for (let at = 0; at < bytes.length; at += CHUNK) yield bytes.subarray(at, at + CHUNK);
      })(),
    );
  }

  async writer(path: string, opts: WriterOptions = {}): Promise<DriverWriter> {
    checkPath(path);
    const { appendAt, size } = opts;
    if (appendAt !== undefined) {
      const st = await this.stat(path);
      if (!st) throw fsError('ENOENT', 'open', path);
    }
    const chunks: Buffer[] = [];
    let length = 0;
    let state: 'open' | 'committed' | 'cancelled' = 'open';
    const entry: Unnamed = { started: Date.now(), swept: false };
    this.unnamed.add(entry);
    const w = new Writable({
      write(chunk: Buffer, _enc, cb) {
        length += chunk.length;
        if (length > PG_FILE_MAX) return cb(fsError('EFBIG', 'write', path));
        chunks.push(Buffer.from(chunk));
        cb();
      },
    }) as DriverWriter;
    w.commit = async () => {
      if (state !== 'open') return;
      this.unnamed.delete(entry);
      if (!w.writableEnded) w.end();
      await finished(w);
      state = 'committed';
      if (entry.swept) throw fsError('ENOENT', 'rename', path);
      // An object store takes a length up front: a file of another length is refused, as there.
      if (appendAt === undefined && size !== undefined && size !== length) throw fsError('EINVAL', 'write', path);
      const bytes = Buffer.concat(chunks, length);
      if (appendAt === undefined && opts.ifAbsent) {
        const r = await this.q(`INSERT INTO wharf_files (path, data, mtime_ms) VALUES ($1, $2, ${NOW}) ON CONFLICT (path) DO NOTHING`, [path, bytes]);
        if (r.rowCount === 0) throw fsError('EEXIST', 'write', path);
        return;
      }
      if (appendAt === undefined) return this.write(path, bytes);
      const r = await this.q(
        `UPDATE wharf_files SET data = substring(data FROM 1 FOR $2::int) || $3::bytea, mtime_ms = ${NOW}, version = nextval('wharf_file_version') WHERE path = $1`,
        [path, appendAt, bytes],
      );
      if (r.rowCount === 0) throw fsError('ENOENT', 'write', path);
      await this.settled(keepable(path));
    };
    w.cancel = async () => {
      if (state !== 'open') return;
      state = 'cancelled';
      this.unnamed.delete(entry);
      w.destroy();
      // As a file's append would: what lay past appendAt is cut off.
      if (appendAt !== undefined) {
        await this.q(
          `UPDATE wharf_files SET data = substring(data FROM 1 FOR $2::int), mtime_ms = ${NOW}, version = nextval('wharf_file_version') WHERE path = $1 AND length(data) > $2::int`,
          [path, appendAt],
        );
      }
    };
    return w;
  }

  async list(path: string): Promise<string[]> {
    if (path !== '') checkPath(path);
    const [lo, hi] = range(path);
    const r = await this.q<{ name: string }>(
      `SELECT DISTINCT split_part(substring(path FROM $3::int), '/', 1) AS name FROM wharf_files WHERE path >= $1 AND path < $2`,
      [lo, hi, lo.length + 1],
    );
    return r.rows.map((x) => x.name);
  }

  async move(from: string, to: string): Promise<void> {
    checkPath(from);
    checkPath(to);
    if (from === to) {
      if (!(await this.stat(from))) throw fsError('ENOENT', 'rename', from);
      return;
    }
    // One statement: the source goes and the destination takes its bytes at once, or neither.
    const r = await this.q(
      `WITH src AS (DELETE FROM wharf_files WHERE path = $1 RETURNING data)
       INSERT INTO wharf_files (path, data, mtime_ms) SELECT $2, data, ${NOW} FROM src
       ON CONFLICT (path) DO UPDATE SET data = excluded.data, mtime_ms = excluded.mtime_ms, version = nextval('wharf_file_version')`,
      [from, to],
    );
    if (r.rowCount === 0) throw fsError('ENOENT', 'rename', from);
    await this.settled(keepable(from) || keepable(to));
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    const [lo, hi] = range(path);
    const r = await this.q<{ changed: boolean }>(
      `WITH gone AS (DELETE FROM wharf_files WHERE path = $1 OR (path >= $2 AND path < $3) RETURNING path)
       SELECT coalesce(bool_or(path NOT LIKE '%/\\_uploads/%'), false) AS changed FROM gone`,
      [path, lo, hi],
    );
    await this.settled(r.rows[0]!.changed);
  }

  async touch(path: string): Promise<FileInfo | undefined> {
    checkPath(path);
    const r = await this.q<Row>(
      `UPDATE wharf_files f SET mtime_ms = ${NOW}, version = nextval('wharf_file_version')
       FROM (SELECT path, length(data) AS size, mtime_ms, version FROM wharf_files WHERE path = $1 FOR UPDATE) old
       WHERE f.path = old.path RETURNING old.size, old.mtime_ms, old.version`,
      [path],
    );
    return r.rows[0] && info(r.rows[0]);
  }

  async stage(opts: StageOptions = {}): Promise<Staged> {
    const chunks: Buffer[] = [];
    let written = 0;
    let state: 'open' | 'committed' | 'cancelled' = 'open';
    const entry: Unnamed = { started: Date.now(), swept: false };
    this.unnamed.add(entry);
    const bytes = (): Buffer => {
      // Joined once asked for, then kept joined: reads of a growing stage stay cheap.
      if (chunks.length > 1) chunks.splice(0, chunks.length, Buffer.concat(chunks, written));
      return chunks[0] ?? Buffer.alloc(0);
    };
    return {
      get written() {
        return written;
      },
      append: async (bufs) => {
        if (state !== 'open') throw new Error('the staged bytes were committed or cancelled');
        for (const b of bufs) {
          written += b.length;
          if (written > PG_FILE_MAX) throw fsError('EFBIG', 'write', 'staged bytes');
          chunks.push(b);
        }
        if (bufs.length > 0) opts.onWritten?.();
      },
      read: async (into, position) => {
        const all = bytes();
        if (position >= all.length) return 0;
        return all.copy(into, 0, position, Math.min(all.length, position + into.length));
      },
      commit: async (path) => {
        checkPath(path);
        if (state !== 'open' || entry.swept) throw fsError('ENOENT', 'rename', path);
        state = 'committed';
        this.unnamed.delete(entry);
        await this.write(path, bytes());
      },
      cancel: async () => {
        if (state !== 'open') return;
        state = 'cancelled';
        this.unnamed.delete(entry);
      },
      close: async () => {
        this.unnamed.delete(entry);
        chunks.length = 0;
      },
    };
  }

  async sweepTemp(maxAgeMs: number): Promise<number> {
    let n = 0;
    const now = Date.now();
    for (const u of this.unnamed) {
      if (now - u.started < maxAgeMs) continue;
      u.swept = true;
      this.unnamed.delete(u);
      n++;
    }
    return n;
  }
}
