/**
 * Ceph RGW, the real S3 object store of the S3 tests, through scripts/rgw.sh.
 *
 * One cluster per test process, started by the first `startRgw()` of that process and shared by
 * its later calls (reference-counted: the last `stop()` stops it). Node's test runner runs test
 * files in parallel processes; each of those gets a cluster of its own in its own temp directory,
 * on ports the kernel hands out (rgw.sh binds port 0 to pick them), so two files never share
 * state or a port. Sharing one cluster between processes instead would need a cross-process
 * reference count and a last-one-out stop that a killed process could not do; a cluster costs
 * ~5 s and ~1 GiB of memory, and `npm test` runs two files at a time. A port taken between
 * rgw.sh's pick and the daemon's bind fails that start at once, and it is tried again on a fresh
 * directory.
 *
 * Nothing is left running: `stop()` stops and removes the cluster; an exit of the process that
 * skipped it (a failed assertion, an uncaught error, SIGINT or SIGTERM) does the same
 * synchronously; and rgw.sh's watchdog (RGW_OWNER_PID) stops and removes it when this process
 * is gone without a word (SIGKILL). Buckets are the tests' to keep apart: use a unique name.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RGW_SCRIPT = fileURLToPath(new URL('../../scripts/rgw.sh', import.meta.url));

const BINARIES = ['radosgw', 'ceph-mon', 'ceph-osd', 'radosgw-admin', 'ceph', 'monmaptool'];

export interface Rgw {
  /** `http://127.0.0.1:<port>`: path-style addressing only (no DNS names for buckets). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The cluster's state directory (scripts/rgw.sh's DIR). */
  dir: string;
  /** Releases this reference; the last one stops the cluster and removes its directory. */
  stop(): Promise<void>;
  /**
   * Stops every daemon and keeps the data: the store is down (connections refused) until
   * `resume()`, which restarts on the same state and ports in ~2 s. For the fault tests; it
   * takes the store away from every user of this process's cluster.
   */
  halt(): Promise<void>;
  resume(): Promise<void>;
}

/**
 * Why the S3 tests cannot run here, or undefined when they can: Debian's radosgw, ceph-mon and
 * ceph-osd, and root. Prints the reason and skips on a laptop; throws under CI=true.
 */
export function missingRgw(): string | undefined {
  const absent = BINARIES.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  let reason: string | undefined;
  if (absent.length > 0) {
    reason = `Ceph RGW is not installed (${absent.join(', ')} missing: apt-get install radosgw ceph-mon ceph-osd)`;
  } else if (process.getuid?.() !== 0) {
    reason = 'Ceph RGW needs root (scripts/rgw.sh runs the monitor and the OSD as root)';
  }
  if (reason === undefined) return undefined;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
  console.log(`# skip: ${reason}`);
  return reason;
}

interface Cluster {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
}

let shared: Promise<Cluster> | undefined;
let users = 0;
let liveDir: string | undefined;

/** Starts this process's cluster, or reuses it. Each call's `stop()` releases one reference. */
export async function startRgw(): Promise<Rgw> {
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
    resume: async () => void (await run(['start', cluster.dir], { RGW_OWNER_PID: String(process.pid) })),
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
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-rgw-'));
    liveDir = dir;
    installExitHooks();
    try {
      const out = await run(['start', dir], { RGW_OWNER_PID: String(process.pid) });
      const env = Object.fromEntries(
        out
          .split('\n')
          .map((l) => l.match(/^([A-Z_]+)=(.*)$/))
          .filter((m): m is RegExpMatchArray => m !== null)
          .map((m) => [m[1], m[2]]),
      );
      const { RGW_ENDPOINT, RGW_ACCESS_KEY, RGW_SECRET_KEY, RGW_REGION } = env;
      if (!RGW_ENDPOINT || !RGW_ACCESS_KEY || !RGW_SECRET_KEY || !RGW_REGION) {
        throw new Error(`scripts/rgw.sh printed no endpoint and keys:\n${out}`);
      }
      return { endpoint: RGW_ENDPOINT, accessKeyId: RGW_ACCESS_KEY, secretAccessKey: RGW_SECRET_KEY, region: RGW_REGION, dir };
    } catch (err) {
      lastErr = err;
      await stopCluster(dir);
    }
  }
  throw lastErr;
}

async function stopCluster(dir: string): Promise<void> {
  await run(['stop', '--purge', dir]);
  // rgw.sh removes only a directory it marked; one whose start failed early may lack the mark.
  await rm(dir, { recursive: true, force: true });
  if (liveDir === dir) liveDir = undefined;
}

/** Runs rgw.sh; resolves with its stdout, rejects with its stderr's tail on a non-zero exit. */
function run(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [RGW_SCRIPT, ...args], {
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
      else reject(new Error(`scripts/rgw.sh ${args.join(' ')} exited with ${code}:\n${stderr}`));
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
    spawnSync('bash', [RGW_SCRIPT, 'stop', '--purge', dir], { stdio: 'ignore' });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanup();
      // Then die of the signal as if no handler had been installed.
      process.kill(process.pid, signal);
    });
  }
}

/** A bucket of its own for a test, on the cluster; its name says which test made it. */
export async function makeBucket(rgw: Rgw, hint: string): Promise<string> {
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const name = `${hint.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40)}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const s3 = new S3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    s3.destroy();
  }
  return name;
}

/** The `storage.s3` options of a bucket on the cluster. */
export function s3Options(rgw: Rgw, bucket: string, prefix?: string): { endpoint: string; region: string; bucket: string; forcePathStyle: boolean; credentials: { accessKeyId: string; secretAccessKey: string }; prefix?: string } {
  return { endpoint: rgw.endpoint, region: rgw.region, bucket, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey }, ...(prefix ? { prefix } : {}) };
}
