/**
 * PostgreSQL 15, the shared-state store of several replicas (issue 22), through scripts/pg.sh: one
 * cluster per test process, shared and cleaned up as test/helpers/cluster.ts says. A cluster
 * costs ~1 s and ~40 MiB. Tests keep apart with a database each (`createDatabase()`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterStarter, skipOrFail, type ClusterHandle } from './cluster.js';

export const PG_SCRIPT = fileURLToPath(new URL('../../scripts/pg.sh', import.meta.url));

const BINDIR = process.env.PG_BINDIR ?? '/usr/lib/postgresql/15/bin';
const BINARIES = ['initdb', 'pg_ctl', 'postgres', 'pg_isready', 'psql'];

/**
 * `halt()` is a fast shutdown (every session is ended): connections are refused until `resume()`,
 * which restarts on the same state and port in well under a second.
 */
export interface Pg extends ClusterHandle {
  /** `postgres://wharf:<password>@127.0.0.1:<port>/wharf`; the role is the cluster's superuser. */
  url: string;
  port: number;
}

/**
 * Why the PostgreSQL tests cannot run here, or undefined when they can: Debian's postgresql 15
 * and, as root, its `postgres` user. Prints the reason and skips on a laptop; throws under CI=true.
 */
export function missingPg(): string | undefined {
  const absent = BINARIES.filter((b) => !existsSync(join(BINDIR, b)));
  let reason: string | undefined;
  if (absent.length > 0) {
    reason = `PostgreSQL 15 is not installed (${absent.join(', ')} missing in ${BINDIR}: apt-get install postgresql)`;
  } else if (process.getuid?.() === 0 && spawnSync('id', ['postgres'], { stdio: 'ignore' }).status !== 0) {
    reason = 'PostgreSQL refuses to run as root, and there is no postgres user to run it as';
  }
  return skipOrFail(reason);
}

const start = clusterStarter({
  script: PG_SCRIPT,
  ownerVar: 'PG_OWNER_PID',
  tmpPrefix: 'wharf-pg-',
  parse(env, out) {
    const { PG_URL, PG_PORT } = env;
    if (!PG_URL || !PG_PORT) throw new Error(`scripts/pg.sh printed no PG_URL and PG_PORT:\n${out}`);
    return { url: PG_URL, port: Number(PG_PORT) };
  },
});

/** Starts this process's cluster, or reuses it. Each call's `stop()` releases one reference. */
export function startPg(): Promise<Pg> {
  return start();
}

/**
 * A database of its own for a test, on the cluster; its name says which test made it. Resolves
 * with its URL (the same role and password as `pg.url`).
 */
export async function createDatabase(pg: Pg, hint: string): Promise<string> {
  const { default: pgModule } = await import('pg');
  const name = `${hint.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40)}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const admin = new pgModule.Client({ connectionString: pg.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(pg.url);
  url.pathname = `/${name}`;
  return url.toString();
}
