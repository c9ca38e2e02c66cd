import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { KeptStats } from './types.js';

/**
 * How long an answer from memory may rest on the last confirmation that this replica has heard of
 * every change: a kept file is served only while the last completed check of the change count was
 * sent less than this long ago.
 */
export const KEPT_LEASE_MS = 50;

/**
 * How long a write that changed or deleted a file another replica may keep waits before it is
 * acknowledged: longer than the lease (with room for clocks that tick at slightly other rates),
 * so that by then every replica has either heard of the change or stopped answering from memory.
 */
export const CHANGE_WAIT_MS = KEPT_LEASE_MS + 10;

/** How often the change count is checked on the listening connection. */
const BEAT_MS = 10;

/**
 * With no read for this long, the checks pause until the next read: an idle replica asks the
 * database nothing (3 idle replicas made 300 queries a second). The read that ends a pause is
 * answered by the database, as is every read while the lease has lapsed.
 */
const IDLE_AFTER_MS = 1_000;

/** How long to wait before listening again after the connection failed. */
const RETRY_MS = 1_000;

/** What KeptFiles holds at most, in bytes of paths and data. */
const KEPT_BYTES = 8 << 20;

/** The listening connection's name in pg_stat_activity. */
export const KEPT_APPLICATION_NAME = 'wharf-kept-files';

/** What an entry counts as holding: its path, its data and the entry itself. */
const sizeOf = (path: string, data: Buffer): number => path.length + data.length + 64;

type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

export interface KeptOptions {
  /** The database to listen on; without it nothing is kept, and every read is a query. */
  url?: string | undefined;
  /** Hears the first failure of the listening connection after it worked (not every retry). */
  onError?: (err: unknown) => void;
}

/**
 * The registry's small files (tags, links, referrer descriptors) kept in memory, so that a hot read
 * (a manifest GET, a blob HEAD) makes no database round trip, on one replica as on many.
 *
 * Every change to a file that can be kept moves a count (wharf_changes) and sends its number and
 * path to the channel `wharf_changes` in the transaction that makes it (a trigger); PostgreSQL
 * delivers those in commit order. A dedicated connection listens, drops what changed, and checks
 * the count every few ms while reads come (IDLE_AFTER_MS): a count ahead of what was heard
 * (notifications not yet delivered) drops everything. A kept file is served only while the last
 * check was sent within KEPT_LEASE_MS, and a writer that changed or deleted a file waits
 * CHANGE_WAIT_MS before it answers (PgDriver). So a
 * request that starts after a write was acknowledged on any replica finds a check sent after that
 * write committed, or no lease, and then asks the database: read-after-write holds with no round
 * trip on the hot path, and a replica cut off from the database stops answering from memory
 * within the lease.
 *
 * Only files that exist are kept: creating a file needs no wait, so a push of new content pays
 * nothing for this; moving a tag or deleting pays the wait.
 */
export class KeptFiles {
  private readonly files = new Map<string, Buffer>();
  private bytes = 0;
  /** The count every entry is current to; undefined while not listening. */
  private applied: bigint | undefined;
  /** performance.now() when the last check that completed was sent. */
  private confirmedAt = Number.NEGATIVE_INFINITY;
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private client: pg.Client | undefined;
  private failing = false;
  private fromMemory = 0;
  private fromDatabase = 0;
  /** performance.now() of the last read, and what resumes the checks after a pause. */
  private wantedAt = performance.now();
  private wake: (() => void) | undefined;

  constructor(
    private readonly q: Query,
    private readonly opts: KeptOptions = {},
  ) {
    if (opts.url !== undefined) this.running = this.listen(opts.url);
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.client?.end().catch(() => undefined);
    await this.running;
  }

  stats(): KeptStats {
    return { entries: this.files.size, bytes: this.bytes, fromMemory: this.fromMemory, fromDatabase: this.fromDatabase };
  }

  /** Whether a read of `path` would be answered from memory now. */
  has(path: string): boolean {
    this.wanted();
    return this.leased() && this.files.has(path);
  }

  private wanted(): void {
    this.wantedAt = performance.now();
    this.wake?.();
  }

  /** Returns at once while reads come; after IDLE_AFTER_MS without one, when the next comes. */
  private async idle(signal: AbortSignal): Promise<void> {
    if (performance.now() - this.wantedAt < IDLE_AFTER_MS || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.wake = undefined;
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.wake = done;
      signal.addEventListener('abort', done);
    });
  }

  private leased(): boolean {
    return performance.now() - this.confirmedAt < KEPT_LEASE_MS;
  }

  async get(path: string): Promise<Buffer | undefined> {
    this.wanted();
    if (this.leased()) {
      const hit = this.files.get(path);
      if (hit) {
        this.fromMemory++;
        return hit;
      }
    }
    this.fromDatabase++;
    const r = await this.q<{ n: string; data: Buffer | null }>(
      'SELECT (SELECT n FROM wharf_changes WHERE id = 1)::text AS n, f.data FROM (SELECT 1) one LEFT JOIN wharf_files f ON f.path = $1',
      [path],
    );
    const row = r.rows[0]!;
    const data = row.data ?? undefined;
    // Kept only when read at the count heard so far: later changes to it will be heard, and a read
    // from before a change already heard (or from after one not yet heard) is not kept.
    if (data && this.applied !== undefined && BigInt(row.n) === this.applied) this.keep(path, data);
    return data;
  }

  private keep(path: string, data: Buffer): void {
    const size = sizeOf(path, data);
    if (size > KEPT_BYTES / 64) return;
    this.drop(path);
    this.files.set(path, data);
    this.bytes += size;
    for (const [k, v] of this.files) {
      if (this.bytes <= KEPT_BYTES) break;
      this.files.delete(k);
      this.bytes -= sizeOf(k, v);
    }
  }

  private drop(path: string): void {
    const old = this.files.get(path);
    if (!old) return;
    this.files.delete(path);
    this.bytes -= sizeOf(path, old);
  }

  private forget(): void {
    this.files.clear();
    this.bytes = 0;
  }

  /** A notification: `<count> <path>`, or the count alone (a path too long to send: drop all). */
  private heard(payload: string | undefined): void {
    if (this.applied === undefined || !payload) return;
    const sp = payload.indexOf(' ');
    const count = sp < 0 ? payload : payload.slice(0, sp);
    if (!/^\d+$/.test(count)) return this.forget();
    const m = BigInt(count);
    if (m <= this.applied) return;
    if (m === this.applied + 1n && sp >= 0) this.drop(payload.slice(sp + 1));
    else this.forget(); // a change between was not heard
    this.applied = m;
  }

  private async listen(url: string): Promise<void> {
    const { signal } = this.stop;
    while (!signal.aborted) {
      const c = new pg.Client({ connectionString: url, application_name: KEPT_APPLICATION_NAME, connectionTimeoutMillis: 5_000, query_timeout: 5_000 });
      c.on('error', () => undefined);
      c.on('notification', (n) => this.heard(n.payload));
      this.client = c;
      try {
        await c.connect();
        await c.query('LISTEN wharf_changes');
        while (!signal.aborted) {
          await this.idle(signal);
          if (signal.aborted) break;
          const sentAt = performance.now();
          const r = await c.query<{ n: string }>('SELECT n::text AS n FROM wharf_changes WHERE id = 1');
          // Notifications sent before the answer were handled before it (one connection, in order).
          const n = BigInt(r.rows[0]!.n);
          if (this.applied === undefined || n > this.applied) {
            this.forget();
            this.applied = n;
          }
          this.confirmedAt = sentAt;
          this.failing = false;
          await sleep(BEAT_MS, undefined, { signal });
        }
      } catch (err) {
        if (!signal.aborted && !this.failing) this.opts.onError?.(err);
        this.failing = true;
      } finally {
        this.confirmedAt = Number.NEGATIVE_INFINITY;
        this.applied = undefined;
        this.forget();
        await c.end().catch(() => undefined);
      }
      await sleep(RETRY_MS, undefined, { signal }).catch(() => undefined);
    }
  }
}
