import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startDistribution as startDist, stopChild, waitReady, REGISTRY_BIN, type DistributionOptions } from '../test/helpers/distribution.js';
import type { BenchRegistry, ExecResult, StartWharfOptions } from './types.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI_MAIN = join(ROOT, 'src', 'cli', 'main.ts');
export const TSX = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
export { REGISTRY_BIN };

/** Whether an executable is on PATH (or at the given path). */
export function hasBin(bin: string): boolean {
  if (bin.includes('/')) return spawnSync('test', ['-x', bin]).status === 0;
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

/** Resident set size and its peak (VmHWM) of a process, in MiB; undefined once it is gone. */
export async function rssOf(pid: number): Promise<{ rss: number; peak: number } | undefined> {
  try {
    const s = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every `ms` until stopped; returns the highest RSS seen. */
export function sampleRss(pid: number, ms = 50): { stop(): Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await rssOf(pid);
      if (!r) break;
      max = Math.max(max, r.rss);
      await sleep(ms);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}

export interface WharfEntry {
  /** Node arguments that run the `wharf` CLI. */
  argv: string[];
  how: string;
}

let entry: WharfEntry | undefined;

/**
 * Compiles the checkout at `root` into `out` (no source maps, no declarations), as `npm start`
 * runs it; `out`/../package.json is written, for dist/cli/version.js reads ../../package.json.
 * Returns the build's CLI, or tsc's first line of output when the build fails.
 */
async function compile(root: string, out: string): Promise<WharfEntry | string> {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', out, '--sourceMap', 'false', '--declaration', 'false'], { encoding: 'utf8' });
  if (r.status !== 0) return (r.stdout + r.stderr).trim().split('\n')[0] ?? `tsc exited ${r.status}`;
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  await mkdir(dirname(out), { recursive: true });
  await writeFile(join(dirname(out), 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module' }));
  return { argv: [join(out, 'cli', 'main.js')], how: 'compiled (tsc)' };
}

/**
 * How to run the `wharf` CLI of this checkout: compiled once per bench run into .bench/dist-<pid> (as
 * `npm start` runs it, without a TypeScript loader in the process), or through tsx if the build
 * fails (say, while someone is half-way through an edit).
 */
export async function wharfEntry(): Promise<WharfEntry> {
  if (entry) return entry;
  // One build per bench process: another bench running beside this one must not replace it.
  await pruneBuilds();
  const built = await compile(ROOT, join(ROOT, '.bench', `dist-${process.pid}`));
  if (typeof built !== 'string') entry = built;
  else {
    console.log(`  note: the build failed, running the CLI through tsx: ${built}`);
    entry = { argv: ['--import', TSX, CLI_MAIN], how: 'through tsx (the build failed)' };
  }
  return entry;
}

const baselineDir = (pid: number): string => join(ROOT, '.bench', `baseline-${pid}`);

/**
 * The build of another git revision (`--baseline <rev>`): a detached worktree of it in
 * .bench/baseline-<pid>, with this checkout's node_modules linked in, compiled as wharfEntry
 * compiles this one (into its own .bench/dist). Throws if the revision is unknown or does not build.
 */
export async function baselineEntry(rev: string): Promise<WharfEntry & { commit: string }> {
  const git = (...args: string[]): string => {
    const r = spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
    return r.stdout.trim();
  };
  const commit = git('rev-parse', '--short', `${rev}^{commit}`);
  await pruneBuilds();
  const dir = baselineDir(process.pid);
  await mkdir(dirname(dir), { recursive: true });
  git('worktree', 'add', '--detach', dir, commit);
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const built = await compile(dir, join(dir, '.bench', 'dist'));
  if (typeof built === 'string') throw new Error(`the baseline ${commit} does not build: ${built}`);
  return { ...built, commit };
}

/** Removes a baseline worktree: its registration in git, then its files. */
async function removeWorktree(dir: string): Promise<void> {
  spawnSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', dir], { encoding: 'utf8' });
  await rm(dir, { recursive: true, force: true });
  spawnSync('git', ['-C', ROOT, 'worktree', 'prune'], { encoding: 'utf8' });
}

/** Removes builds and baseline worktrees left by bench processes that are gone (killed by a timeout, say). */
async function pruneBuilds(): Promise<void> {
  const dir = join(ROOT, '.bench');
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    const m = /^(dist|baseline)(?:-(\d+))?$/.exec(n);
    if (!m) continue;
    if (m[2] !== undefined && alive(Number(m[2]))) continue;
    if (m[1] === 'baseline') await removeWorktree(join(dir, n));
    else await rm(join(dir, n), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes this process's build of the CLI and its baseline worktree, if it made them. */
export async function removeBuild(): Promise<void> {
  await rm(join(ROOT, '.bench', `dist-${process.pid}`), { recursive: true, force: true });
  if (existsSync(baselineDir(process.pid))) await removeWorktree(baselineDir(process.pid));
}

/**
 * Node options for every `wharf serve` the bench starts, from BENCH_SERVE_NODE_ARGS (split on
 * spaces), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the servers (Node refuses
 * --cpu-prof in NODE_OPTIONS). Each profile names the build it ran in its scripts' paths.
 */
function serveNodeArgs(): string[] {
  return (process.env.BENCH_SERVE_NODE_ARGS ?? '').split(' ').filter(Boolean);
}

/**
 * `wharf serve` from this checkout (or from `build`, a baseline's), in its own process (so its RSS
 * is its own), on a free port.
 */
export async function startWharfProcess(opts: StartWharfOptions = {}, build?: { entry: WharfEntry; name: string }): Promise<BenchRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-serve-'));
  const dataDir = opts.data ?? join(dir, 'data');
  let lastErr: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const cfg = { log: { level: 'warn' }, ...opts.config, data: dataDir, listen: `127.0.0.1:${port}` };
    const cfgFile = join(dir, 'config.json');
    await writeFile(cfgFile, JSON.stringify(cfg));
    const child = spawn(process.execPath, [...serveNodeArgs(), ...(build?.entry ?? (await wharfEntry())).argv, 'serve', '--config', cfgFile], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitReady(url, child, () => stderr, 30_000);
      return {
        name: build?.name ?? 'wharf serve',
        host: `127.0.0.1:${port}`,
        url,
        pid: child.pid,
        dataDir,
        stop: async () => {
          await stopChild(child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastErr = err;
      await stopChild(child);
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`wharf serve did not start: ${(lastErr as Error).message}`);
}

/** Debian's docker-registry (through the tests' helper); with `proxy`, in pull-through mode. */
export async function startDistributionProcess(opts: DistributionOptions = {}): Promise<BenchRegistry> {
  const d = await startDist(opts);
  return { name: opts.proxy ? 'Distribution (proxy)' : 'Distribution', host: d.host, url: d.url, pid: d.pid, dataDir: d.dataDir, stop: d.stop };
}

export { stopChild };

/**
 * The runtime's limit for a pull-through cache: a bare Node relay (node:http's request piped into
 * the response; no hash, no disk, nothing kept) in front of `upstream`, in its own process on the
 * Node that runs the bench. CommonJS through -e, so that it needs no build.
 */
const RELAY_SOURCE = `
const http = require('node:http');
const up = new URL(process.argv[1]);
const agent = new http.Agent({ keepAlive: true });
const server = http.createServer((req, res) => {
  const r = http.request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers: { ...req.headers, host: up.host }, agent }, (u) => {
    res.writeHead(u.statusCode, u.headers);
    u.pipe(res);
  });
  r.on('error', () => res.destroy());
  req.pipe(r);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

export async function startNodeRelay(upstream: string): Promise<BenchRegistry> {
  const child = spawn(process.execPath, ['-e', RELAY_SOURCE, upstream], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`the relay exited with code ${code}`)));
  });
  return { name: 'Node relay', host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, pid: child.pid, dataDir: '', stop: () => stopChild(child) };
}

/** The version Debian's docker-registry reports, e.g. "2.8.2". */
export function distributionVersion(): string {
  const r = spawnSync(REGISTRY_BIN, ['--version'], { encoding: 'utf8' });
  return /v?(\d+\.\d+\.\d+\S*)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs a command, timing it and sampling its RSS; rejects on a non-zero exit. */
export function exec(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const sampler = child.pid ? sampleRss(child.pid, 25) : undefined;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      void (sampler?.stop() ?? Promise.resolve(0)).then((peakRss) => {
        const r = { code: code ?? 1, stdout, stderr, seconds, peakRss };
        if (r.code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
        else resolve(r);
      });
    });
  });
}

/** The `wharf` CLI from this checkout (see wharfEntry), as `exec` runs it. */
export async function wharfCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return exec(process.execPath, [...(await wharfEntry()).argv, ...args], opts);
}
