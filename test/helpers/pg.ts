/**
 * PostgreSQL 15, the shared-state store of several replicas (issue 22), through scripts/pg.sh.
 *
 * One cluster per test process, started by the first `startPg()` of that process and shared by its
 * later calls (reference-counted: the last `stop()` stops it), as test/helpers/rgw.ts does for
 * Ceph: each test file, run in a process of its own, gets its own cluster in its own temp
 * directory on a port the kernel hands out. A cluster costs ~1 s and ~40 MiB, so there is nothing
 * to gain from sharing one across processes. Tests keep apart with a database each
 * (`createDatabase()`).
 *
 * Nothing is left running: `stop()` stops and removes the cluster; an exit of the process that
 * skipped it (a failed assertion, an uncaught error, SIGINT or SIGTERM) does the same
 * synchronously; and pg.sh's watchdog (PG_OWNER_PID) stops and removes it when this process is
 * gone without a word (SIGKILL).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PG_SCRIPT = fileURLToPath(new URL('../../scripts/pg.sh', import.meta.url));

const BINDIR = process.env.PG_BINDIR ?? '/usr/lib/postgresql/15/bin';
const BINARIES = ['initdb', 'pg_ctl', 'postgres', 'pg_isready', 'psql'];

export interface Pg {
  /** `postgres://wharf:<password>@127.0.0.1:<port>/wharf`; the role is the cluster's superuser. */
  url: string;
  port: number;
  /** The cluster's state directory (scripts/pg.sh's DIR). */
  dir: string;
  /** Releases this reference; the last one stops the cluster and removes its directory. */
  stop(): Promise<void>;
  /**
   * Stops the server and keeps the data (a fast shutdown: every session is ended): connections
   * are refused until `resume()`, which restarts on the same state and port in well under a
   * second. It takes the store away from every user of this process's cluster.
   */
  halt(): Promise<void>;
  resume(): Promise<void>;
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
  if (reason === undefined) return undefined;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
  console.log(`# skip: ${reason}`);
  return reason;
}

interface Cluster {
  url: string;
  port: number;
  dir: string;
}

let shared: Promise<Cluster> | undefined;
let users = 0;
let liveDir: string | undefined;

/** Starts this process's cluster, or reuses it. Each call's `stop()` releases one reference. */
export async function startPg(): Promise<Pg> {
  users++;
  shared ??= startCluster();
  let cluster: Cluster;
  try {
    cluster = await shared;
  } catch (err) {
    users--;
    shared = undefined;
    throw err;
  }
  let stopped = false;
  return {
    ...cluster,
    halt: async () => void (await run(['stop', cluster.dir])),
    resume: async () => void (await run(['start', cluster.dir], { PG_OWNER_PID: String(process.pid) })),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (--users > 0) return;
      shared = undefined;
      await stopCluster(cluster.dir);
    },
  };
}

async function startCluster(): Promise<Cluster> {
  let lastErr: unknown;
  // A port taken between pg.sh's pick and the server's bind fails that start at once: try again
  // on a fresh directory.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-pg-'));
    liveDir = dir;
    installExitHooks();
    try {
      const out = await run(['start', dir], { PG_OWNER_PID: String(process.pid) });
      const env = Object.fromEntries(
        out
          .split('\n')
          .map((l) => l.match(/^([A-Z_]+)=(.*)$/))
          .filter((m): m is RegExpMatchArray => m !== null)
          .map((m) => [m[1], m[2]]),
      );
      const { PG_URL, PG_PORT } = env;
      if (!PG_URL || !PG_PORT) throw new Error(`scripts/pg.sh printed no PG_URL and PG_PORT:\n${out}`);
      return { url: PG_URL, port: Number(PG_PORT), dir };
    } catch (err) {
      lastErr = err;
      await stopCluster(dir);
    }
  }
  throw lastErr;
}

async function stopCluster(dir: string): Promise<void> {
  await run(['stop', '--purge', dir]);
  // pg.sh removes only a directory it marked; one whose start failed early may lack the mark.
  await rm(dir, { recursive: true, force: true });
  if (liveDir === dir) liveDir = undefined;
}

/** Runs pg.sh; resolves with its stdout, rejects with its stderr's tail on a non-zero exit. */
function run(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [PG_SCRIPT, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`scripts/pg.sh ${args.join(' ')} exited with ${code}:\n${stderr}`));
    });
  });
}

let hooked = false;

/** On any exit of this process that skipped stop(): stop and remove the cluster, synchronously. */
function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  const cleanup = (): void => {
    const dir = liveDir;
    if (dir === undefined || !existsSync(dir)) return;
    liveDir = undefined;
    spawnSync('bash', [PG_SCRIPT, 'stop', '--purge', dir], { stdio: 'ignore' });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanup();
      process.kill(process.pid, signal);
    });
  }
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
