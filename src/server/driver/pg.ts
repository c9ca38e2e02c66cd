import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import { OciError } from '../../spec/index.js';
import { fsError } from './errors.js';
import { checkPath } from './paths.js';
import type { DriverWriter, FileInfo, FileReader, PutOptions, StageOptions, Staged, StorageDriver } from './types.js';

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

/** What KeptFiles holds at most, in bytes of paths and data. */
const KEPT_BYTES = 8 << 20;

/** What an entry of KeptFiles counts as holding: its path, its data and the entry itself. */
const sizeOf = (path: string, data: Buffer | undefined): number => path.length + (data?.length ?? 0) + 64;

/**
 * Small files kept in memory, checked with one read of the change count (wharf_changes, moved by
 * a trigger in the transaction of every change to a file that is not an upload record). An entry
 * read when the count was n is current while the count is n.
 *
 * A read with `since` (a mark taken when its request started) needs a check of the count sent
 * after that mark, and shares it with every read that waits at the same time: under load, one
 * query answers many requests, and no request is answered from a state older than its start,
 * whichever replica wrote last. Two reads of one request (a tag, then its manifest's link) share
 * one check. A file not kept is read together with the count, in one query.
 */
class KeptFiles {
  private readonly files = new Map<string, { n: string; data: Buffer | undefined }>();
  private bytes = 0;
  /** The count the entries were checked against; a new count empties the map. */
  private n = '';
  /** Checks sent so far, and the latest answered. */
  private sent = 0;
  private last: { seq: number; n: string } | undefined;
  private inflight: { seq: number; p: Promise<string> } | undefined;
  private next: Promise<string> | undefined;

  constructor(private readonly q: <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>) {}

  tick(): number {
    return this.sent;
  }

  async get(path: string, since: number): Promise<Buffer | undefined> {
    const hit = this.files.get(path);
    if (hit) {
      const n = await this.count(since);
      if (hit.n === n && this.files.get(path) === hit) return hit.data;
    }
    const r = await this.q<{ n: string; data: Buffer | null }>('SELECT (SELECT n FROM wharf_changes WHERE id = 1)::text AS n, f.data FROM (SELECT 1) one LEFT JOIN wharf_files f ON f.path = $1', [path]);
    const row = r.rows[0]!;
    const data = row.data ?? undefined;
    this.keep(row.n, path, data);
    return data;
  }

  private keep(n: string, path: string, data: Buffer | undefined): void {
    if (!this.at(n)) return;
    const size = sizeOf(path, data);
    if (size > KEPT_BYTES / 64) return;
    const old = this.files.get(path);
    if (old) this.bytes -= sizeOf(path, old.data);
    this.files.delete(path);
    this.files.set(path, { n, data });
    this.bytes += size;
    for (const [k, v] of this.files) {
      if (this.bytes <= KEPT_BYTES) break;
      this.files.delete(k);
      this.bytes -= sizeOf(k, v.data);
    }
  }

  /**
   * Only entries of one count are kept: a newer count empties the map (its entries are stale, or
   * soon will be). False for an older count, whose answer is not kept.
   */
  private at(n: string): boolean {
    if (n === this.n) return true;
    if (BigInt(n) < BigInt(this.n || '0')) return false;
    this.files.clear();
    this.bytes = 0;
    this.n = n;
    return true;
  }

  /** The change count, as read by a query sent after the mark `since`. */
  private count(since: number): Promise<string> {
    if (this.last && this.last.seq > since) return Promise.resolve(this.last.n);
    if (this.inflight && this.inflight.seq > since) return this.inflight.p;
    if (!this.inflight) return this.check();
    // The check in flight went out before the mark: the next one, shared by all who wait now.
    return (this.next ??= this.inflight.p.then(
      () => ((this.next = undefined), this.check()),
      () => ((this.next = undefined), this.check()),
    ));
  }

  private check(): Promise<string> {
    const seq = ++this.sent;
    const p = this.q<{ n: string }>('SELECT n::text AS n FROM wharf_changes WHERE id = 1', [])
      .then((r) => {
        const n = r.rows[0]!.n;
        if (!this.last || seq > this.last.seq) this.last = { seq, n };
        this.at(n);
        return n;
      })
      .finally(() => {
        if (this.inflight?.seq === seq) this.inflight = undefined;
      });
    this.inflight = { seq, p };
    return p;
  }
}

/** Writes that have no name yet, which sweepTemp may end. */
interface Unnamed {
  readonly started: number;
  swept: boolean;
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
  private readonly kept = new KeptFiles((text, values) => this.q(text, values));

  /** `release`: what close() does with the connections (end the pool, when this driver owns it). */
  constructor(
    private readonly pool: pg.Pool,
    private readonly release?: () => Promise<void>,
  ) {}

  async close(): Promise<void> {
    await this.release?.();
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
    if (opts.since === undefined || path.includes('/_uploads/')) {
      const r = await this.q<{ data: Buffer }>('SELECT data FROM wharf_files WHERE path = $1', [path]);
      return r.rows[0]?.data;
    }
    return this.kept.get(path, opts.since);
  }

  /** Marks for get()'s `since`: the count of change checks sent so far. */
  tick(): number {
    return this.kept.tick();
  }

  async put(path: string, data: Uint8Array | string, opts: PutOptions = {}): Promise<void> {
    checkPath(path);
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    if (opts.after) await opts.after;
    await this.write(path, bytes);
  }

  private async write(path: string, bytes: Buffer): Promise<void> {
    if (bytes.length > PG_FILE_MAX) throw fsError('EFBIG', 'write', path);
    await this.q(
      `INSERT INTO wharf_files (path, data, mtime_ms) VALUES ($1, $2, ${NOW})
       ON CONFLICT (path) DO UPDATE SET data = excluded.data, mtime_ms = excluded.mtime_ms, version = nextval('wharf_file_version')`,
      [path, bytes],
    );
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

  async writer(path: string, opts: { appendAt?: number; size?: number } = {}): Promise<DriverWriter> {
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
      if (appendAt === undefined) return this.write(path, bytes);
      const r = await this.q(
        `UPDATE wharf_files SET data = substring(data FROM 1 FOR $2::int) || $3::bytea, mtime_ms = ${NOW}, version = nextval('wharf_file_version') WHERE path = $1`,
        [path, appendAt, bytes],
      );
      if (r.rowCount === 0) throw fsError('ENOENT', 'write', path);
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
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    const [lo, hi] = range(path);
    await this.q('DELETE FROM wharf_files WHERE path = $1 OR (path >= $2 AND path < $3)', [path, lo, hi]);
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
