/**
 * A throwaway server cluster run by one of the project's scripts (scripts/rgw.sh for Ceph RGW,
 * scripts/pg.sh for PostgreSQL), which all take `start DIR`, `stop [--purge] DIR`, print
 * `NAME=value` lines on start, and stop and purge themselves when `<OWNER_VAR>` names a process
 * that is gone.
 *
 * One cluster per test process, started by the first `start()` of that process and shared by its
 * later calls (reference-counted: the last `stop()` stops it). Node's test runner runs test files
 * in parallel processes; each gets a cluster of its own in its own temp directory, on ports the
 * script picks, so two files never share state or a port (a cross-process reference count would
 * need a last-one-out stop that a killed process could not do). A port taken between the script's
 * pick and the daemon's bind fails that start at once, and it is tried again on a fresh directory.
 *
 * Nothing is left running: `stop()` stops and removes the cluster; an exit of the process that
 * skipped it (a failed assertion, an uncaught error, SIGINT or SIGTERM) does the same
 * synchronously; and the script's watchdog does it when this process is gone without a word
 * (SIGKILL).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What every cluster handle has beside what its script printed. */
export interface ClusterHandle {
  /** The cluster's state directory (the script's DIR). */
  dir: string;
  /** Releases this reference; the last one stops the cluster and removes its directory. */
  stop(): Promise<void>;
  /** Stops every daemon and keeps the data, for fault tests: down for every user of this process's cluster. */
  halt(): Promise<void>;
  /** Restarts on the same state and ports. */
  resume(): Promise<void>;
}

export interface ClusterKind<C> {
  /** The script's path, and its name in messages. */
  script: string;
  /** The script's variable naming the process whose end stops the cluster. */
  ownerVar: string;
  /** Prefix of the temp directories. */
  tmpPrefix: string;
  /** What the script's `NAME=value` lines say; throws when something is missing. */
  parse(env: Record<string, string>, out: string): C;
}

/** Prints why tests that need a peer are skipped on a laptop; under CI=true that is a failure. */
export function skipOrFail(reason: string | undefined): string | undefined {
  if (reason === undefined) return undefined;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
  console.log(`# skip: ${reason}`);
  return reason;
}

/** The `start()` of one kind of cluster: this process's one, started on first use. */
export function clusterStarter<C extends object>(kind: ClusterKind<C>): () => Promise<C & ClusterHandle> {
  let shared: Promise<C & { dir: string }> | undefined;
  let users = 0;
  let liveDir: string | undefined;
  let hooked = false;
  const owner = (): Record<string, string> => ({ [kind.ownerVar]: String(process.pid) });

  /** Runs the script; resolves with its stdout, rejects with its stderr's tail on a non-zero exit. */
  const run = (args: string[], env: Record<string, string> = {}): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = spawn('bash', [kind.script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
      child.once('error', reject);
      child.once('close', (code) => {
        if (code === 0) resolve(stdout);
        else reject(new Error(`${kind.script} ${args.join(' ')} exited with ${code}:\n${stderr}`));
      });
    });

  /** On any exit of this process that skipped stop(): stop and remove the cluster, synchronously. */
  const installExitHooks = (): void => {
    if (hooked) return;
    hooked = true;
    const cleanup = (): void => {
      const dir = liveDir;
      if (dir === undefined || !existsSync(dir)) return;
      liveDir = undefined;
      spawnSync('bash', [kind.script, 'stop', '--purge', dir], { stdio: 'ignore' });
    };
    process.on('exit', cleanup);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        cleanup();
        // Then die of the signal as if no handler had been installed.
        process.kill(process.pid, signal);
      });
    }
  };

  const stopCluster = async (dir: string): Promise<void> => {
    await run(['stop', '--purge', dir]);
    // The script removes only a directory it marked; one whose start failed early may lack the mark.
    await rm(dir, { recursive: true, force: true });
    if (liveDir === dir) liveDir = undefined;
  };

  const startCluster = async (): Promise<C & { dir: string }> => {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const dir = await mkdtemp(join(tmpdir(), kind.tmpPrefix));
      liveDir = dir;
      installExitHooks();
      try {
        const out = await run(['start', dir], owner());
        const env = Object.fromEntries(
          out
            .split('\n')
            .map((l) => l.match(/^([A-Z_]+)=(.*)$/))
            .filter((m): m is RegExpMatchArray => m !== null)
            .map((m) => [m[1]!, m[2]!]),
        );
        return { ...kind.parse(env, out), dir };
      } catch (err) {
        lastErr = err;
        await stopCluster(dir);
      }
    }
    throw lastErr;
  };

  return async () => {
    users++;
    shared ??= startCluster();
    let cluster: C & { dir: string };
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
      resume: async () => void (await run(['start', cluster.dir], owner())),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        if (--users > 0) return;
        shared = undefined;
        await stopCluster(cluster.dir);
      },
    };
  };
}
