import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

/**
 * SQLite for the audit log and the webhook queue, on whichever engine this Node has: its built-in
 * `node:sqlite` (Node 22.13+ without a flag, 23.4+, 24) or, on Node 20, the native module
 * better-sqlite3 (an optional dependency: it compiles on install). Only what those two callers need:
 * prepared statements, exec, a transaction, close. Rows are plain objects; integers are numbers.
 */

export type SqliteValue = null | number | bigint | string | Uint8Array;
export type SqliteRow = Record<string, unknown>;

export interface SqliteStatement {
  run(...params: SqliteValue[]): { changes: number };
  get(...params: SqliteValue[]): SqliteRow | undefined;
  all(...params: SqliteValue[]): SqliteRow[];
}

export interface SqliteDb {
  /** Which engine opened it. */
  readonly engine: SqliteEngine;
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  /** Runs `fn` in one transaction: committed if it returns, rolled back if it throws. */
  transaction(fn: () => void): void;
  close(): void;
}

export type SqliteEngine = 'node:sqlite' | 'better-sqlite3';

export interface OpenOptions {
  /** Read only; the file must exist. */
  readonly?: boolean;
  /** The engine to use; default node:sqlite where this Node has it, else better-sqlite3. */
  engine?: SqliteEngine;
}

// node:sqlite's own shape (not in @types/node 20).
interface NodeStatement {
  run(...params: SqliteValue[]): { changes: number | bigint };
  get(...params: SqliteValue[]): SqliteRow | undefined;
  all(...params: SqliteValue[]): SqliteRow[];
}
interface NodeDatabase {
  prepare(sql: string): NodeStatement;
  exec(sql: string): void;
  close(): void;
}
interface NodeSqlite {
  DatabaseSync: new (path: string, opts?: { readOnly?: boolean }) => NodeDatabase;
}

let nodeSqlite: NodeSqlite | null | undefined;

/** The built-in module, or null on a Node without it (20, or 22 before 22.13 without --experimental-sqlite). */
export function builtinSqlite(): NodeSqlite | null {
  if (nodeSqlite !== undefined) return nodeSqlite;
  // Node 22 warns once that node:sqlite is experimental (24 does not): the server owns no such
  // warning, so that one is left out while the module loads; any other warning goes through.
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (/SQLite is an experimental feature/.test(text)) return;
    (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    nodeSqlite = (process.getBuiltinModule('node:sqlite') as NodeSqlite | undefined) ?? null;
  } catch {
    nodeSqlite = null;
  } finally {
    process.emitWarning = emit;
  }
  return nodeSqlite;
}

let better: typeof BetterSqlite3 | null | undefined;

/** better-sqlite3, or null where it is not installed or does not load (built for another Node). */
export function betterSqlite(): typeof BetterSqlite3 | null {
  if (better !== undefined) return better;
  try {
    const mod = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
    // The addon itself loads on the first open: one built for another Node's ABI fails here.
    new mod(':memory:').close();
    better = mod;
  } catch {
    better = null;
  }
  return better;
}

/** The engines that load on this Node, preferred first. */
export function sqliteEngines(): SqliteEngine[] {
  const out: SqliteEngine[] = [];
  if (builtinSqlite()) out.push('node:sqlite');
  if (betterSqlite()) out.push('better-sqlite3');
  return out;
}

/** The most each connection's page cache holds, in KiB (SQLite's own default is 2000). */
export const CACHE_KIB = 2048;

export function openSqlite(path: string, opts: OpenOptions = {}): SqliteDb {
  const engine = opts.engine ?? (builtinSqlite() ? 'node:sqlite' : 'better-sqlite3');
  const db = engine === 'node:sqlite' ? openNode(path, opts) : openBetter(path, opts);
  // better-sqlite3 is built with a 16 MB page cache per connection (SQLite's default is 2 MB), in
  // the malloc heap, resident once filled: the audit log inserts a row per request into a table
  // with several indexes, so thousands of manifest GETs a second fill it within seconds. Measured
  // on the s3 bench's manifest loads (Node 20): malloc heap 25 → 10-11 MiB, peak RSS 139-141 →
  // 125-126 MiB. Pages past the cap are read again from the OS's page cache. Same on both engines.
  db.exec(`PRAGMA cache_size = -${CACHE_KIB}`);
  return db;
}

function openNode(path: string, opts: OpenOptions): SqliteDb {
  const mod = builtinSqlite();
  if (!mod) throw new Error(`node:sqlite is not available on Node ${process.versions.node} (it needs 22.13 or later)`);
  // Read only opens without SQLITE_OPEN_CREATE: a missing file is an error, as with better-sqlite3's fileMustExist.
  const db = new mod.DatabaseSync(path, opts.readonly ? { readOnly: true } : {});
  // Rows come with a null prototype; callers get plain objects, as from better-sqlite3.
  const plain = (r: SqliteRow | undefined): SqliteRow | undefined => (r === undefined ? undefined : { ...r });
  return {
    engine: 'node:sqlite',
    prepare(sql) {
      const st = db.prepare(sql);
      return {
        run: (...p) => ({ changes: Number(st.run(...p).changes) }),
        get: (...p) => plain(st.get(...p)),
        all: (...p) => st.all(...p).map((r) => plain(r)!),
      };
    },
    exec: (sql) => db.exec(sql),
    transaction(fn) {
      db.exec('BEGIN');
      try {
        fn();
      } catch (err) {
        db.exec('ROLLBACK');
        throw err;
      }
      db.exec('COMMIT');
    },
    close: () => db.close(),
  };
}

function openBetter(path: string, opts: OpenOptions): SqliteDb {
  const Database = betterSqlite();
  if (!Database) {
    throw new Error(
      `SQLite is not available: Node ${process.versions.node} has no node:sqlite (22.13 or later has it) and better-sqlite3 is not installed or was built for another Node (npm rebuild better-sqlite3)`,
    );
  }
  const db = new Database(path, opts.readonly ? { readonly: true, fileMustExist: true } : {});
  return {
    engine: 'better-sqlite3',
    prepare(sql) {
      const st = db.prepare(sql);
      return {
        run: (...p) => ({ changes: st.run(...p).changes }),
        get: (...p) => st.get(...p) as SqliteRow | undefined,
        all: (...p) => st.all(...p) as SqliteRow[],
      };
    },
    exec: (sql) => void db.exec(sql),
    transaction: (fn) => db.transaction(fn)(),
    close: () => void db.close(),
  };
}
