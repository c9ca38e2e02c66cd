import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { CONNECT_TIMEOUT_MS, NOW_MS, ownConnection } from './connection.js';
import { MIGRATIONS } from './migrations.js';

export { MIGRATIONS } from './migrations.js';
export { claimSlot, pgJournal, pgWebhookLedger, type JournalBatch, type JournalPosition, type PgJournal, type PgWebhookLedger, type WebhookTurn } from './journal.js';

/** The state that several replicas share (issue 22, docs/SCALE-OUT.md): one PostgreSQL database. */
export interface Database {
  readonly pool: pg.Pool;
  /** The URL it was opened with, for a connection outside the pool (journal.ts's claimSlot). */
  readonly url: string;
  /** The schema version this process found or made. */
  readonly version: number;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** `postgres://user:password@host:port/database` */
  url: string;
  /** Connections this process keeps at most. */
  maxConnections?: number;
  /** How long a query may take before it fails, in ms. */
  queryTimeoutMs?: number;
  log?: Pick<Logger, 'warn' | 'info'>;
}

/**
 * Any number of replicas may start at once: each takes this advisory lock for its migration, so
 * one migrates while the others wait, then find the schema current. The number is fixed ("wharf"
 * in ASCII); an advisory lock is per database, so other applications' locks do not meet it.
 */
const MIGRATION_LOCK = 0x7768617266;

/**
 * Connects, and migrates the schema to the newest version this build knows. A database that a
 * newer build has migrated further is refused: this build would not know its tables.
 */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.maxConnections ?? 10,
    // A server that went away must not hang a request: fail, answer 503, and try again later.
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: opts.queryTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
  });
  // pg's Pool emits 'error' when the server ends an idle connection (a restart, a failover);
  // unheard, that event would end the process. The pool replaces the connection on next use.
  pool.on('error', (err) => opts.log?.warn({ err }, 'database: an idle connection failed'));
  let version: number;
  try {
    version = await migrate(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  opts.log?.info({ version }, 'database: schema current');
  return {
    pool,
    url: opts.url,
    version,
    close: () => pool.end(),
  };
}

/** A secret by name: read, or made by `make` and kept, once for all replicas (auth's SecretSource). */
export type SecretSource = (name: string, make: () => Promise<string>) => Promise<string>;

/**
 * The database's secrets. Replicas that find one missing at once each make a candidate; the first
 * insert wins and every one of them reads the winner.
 */
export function sharedSecrets(db: Database): SecretSource {
  const read = async (name: string): Promise<string | undefined> =>
    (await db.pool.query<{ value: string }>('SELECT value FROM wharf_secrets WHERE name = $1', [name])).rows[0]?.value;
  return async (name, make) => {
    const have = await read(name);
    if (have !== undefined) return have;
    await db.pool.query('INSERT INTO wharf_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, await make()]);
    const won = await read(name);
    if (won === undefined) throw new Error(`the database lost the secret ${name} just written`);
    return won;
  };
}

/**
 * Failed logins counted in the database (auth's SharedFailures): one statement adds one to the
 * key's window, or starts a new window once the old one is over. Windows long over are deleted
 * now and then, by whichever replica counts a failure.
 */
export function sharedFailures(db: Database): (key: string, windowMs: number) => Promise<{ n: number; leftMs: number }> {
  let counted = 0;
  return async (key, windowMs) => {
    const r = await db.pool.query<{ n: number; left_ms: string }>(
      `INSERT INTO wharf_login_failures AS f (key, n, reset_ms) VALUES ($1, 1, ${NOW_MS} + $2::bigint)
       ON CONFLICT (key) DO UPDATE SET
         n = CASE WHEN f.reset_ms <= ${NOW_MS} THEN 1 ELSE f.n + 1 END,
         reset_ms = CASE WHEN f.reset_ms <= ${NOW_MS} THEN ${NOW_MS} + $2::bigint ELSE f.reset_ms END
       RETURNING n, reset_ms - ${NOW_MS} AS left_ms`,
      [key, windowMs],
    );
    if (++counted % 1000 === 0) await db.pool.query(`DELETE FROM wharf_login_failures WHERE reset_ms < ${NOW_MS} - 3600000`);
    const row = r.rows[0]!;
    return { n: row.n, leftMs: Math.max(0, Number(row.left_ms)) };
  };
}

/**
 * Leases on pull-through fills (the proxy's FillLeases): the replica that takes a blob's lease
 * fetches it; the lease ends with the fill, or runs out after `ttlMs` if its replica died.
 */
export function fillLeases(db: Database, ttlMs = 600_000): { take(digest: string): Promise<(() => Promise<void>) | undefined> } {
  const owner = randomUUID();
  return {
    async take(digest) {
      const r = await db.pool.query(
        `INSERT INTO wharf_fill_leases AS l (digest, owner, expires_ms) VALUES ($1, $2, ${NOW_MS} + $3::bigint)
         ON CONFLICT (digest) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms WHERE l.expires_ms < ${NOW_MS}
         RETURNING owner`,
        [digest, owner, ttlMs],
      );
      if (r.rowCount === 0) return undefined;
      return async () => {
        await db.pool.query('DELETE FROM wharf_fill_leases WHERE digest = $1 AND owner = $2', [digest, owner]);
      };
    },
  };
}

/**
 * Runs `fn` under the advisory lock `key`, held by one session for as long as it runs, unless
 * another session (a replica, a host) holds it: then undefined, at once. The lock goes with the
 * session if this process dies, or its connection breaks.
 */
export async function alone<T>(db: Database, key: number, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
  // The lock's session is outside the pool: `fn` queries through the pool.
  const c = ownConnection(db.url);
  c.on('error', () => undefined);
  await c.connect();
  try {
    const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
    if (!got.rows[0]?.ok) return undefined;
    return { value: await fn() };
  } finally {
    // Ending the session frees the lock.
    await c.end().catch(() => undefined);
  }
}

async function migrate(pool: pg.Pool): Promise<number> {
  const c = await pool.connect();
  try {
    await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await c.query('CREATE TABLE IF NOT EXISTS wharf_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      const r = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM wharf_schema');
      let version = r.rows[0]?.v ?? 0;
      if (version > MIGRATIONS.length) {
        throw new Error(`the database's schema is version ${version}, newer than this build knows (${MIGRATIONS.length}): run a newer wharf`);
      }
      for (; version < MIGRATIONS.length; version++) {
        await c.query('BEGIN');
        try {
          await c.query(MIGRATIONS[version]!);
          await c.query('INSERT INTO wharf_schema (version) VALUES ($1)', [version + 1]);
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK');
          throw err;
        }
      }
      return version;
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    c.release();
  }
}
