/**
 * The benchmark's contract. `npm run bench` (bench/run.ts) imports each section module
 * (bench/<section>.ts) and calls its `run(ctx)`; every section returns rows, which run.ts prints
 * and, with `--write`, puts in docs/BENCHMARKS.md (one block per section; the blocks of sections
 * that did not run are kept as they were).
 *
 * Adding a section (bench/estargz.ts, bench/proxy.ts are expected):
 *
 *   import type { BenchContext, BenchRow } from './types.js';
 *   export async function run(ctx: BenchContext): Promise<BenchRow[]> {
 *     const w = await ctx.startWharf();              // wharf serve in its own process, port 0
 *     const d = await ctx.startDistribution();       // undefined (and a printed reason) if missing
 *     try {
 *       const t = await ctx.measure(async () => { ... });   // median seconds of ctx.runs runs
 *       return [ctx.row({ metric: 'pull 1 file', wharf: t, peer: ..., unit: 's', lowerIsBetter: true, note: 'vs X' })];
 *     } finally { await w.stop(); await d?.stop(); }
 *   }
 *
 * With `--baseline <rev>`, ctx.builds holds a second build of Wharf, that revision's. A section that
 * compares them (server, proxy) starts every build, takes each figure run by run on every build in
 * turn, and passes the baseline's figure as row({ baseline }); run.ts prints those rows in a table
 * of their own, current beside baseline. Other sections measure this checkout's build only.
 *
 * Rules: a section cleans up what it starts; it sizes its work from `ctx.scale` so that the
 * whole `small` run takes a few minutes; it never fails the run for a missing peer (the peer's
 * column is null and the note says why); it sends traffic to 127.0.0.1 only.
 */

/** `small` (default, a few minutes in all) or `full` (the sizes the issues' goals name). */
export type BenchScale = 'small' | 'full';

/** One figure, Wharf beside its peer. `ratio` is wharf/peer, inverted for lower-is-better units. */
export interface BenchRow {
  section: string;
  metric: string;
  wharf: number | null;
  peer: number | null;
  unit: string;
  /** >1 means Wharf is better (faster, more ops, fewer seconds); null when a side is missing. */
  ratio: number | null;
  /** The peer's name and any caveat, e.g. "vs Distribution 2.8.2, median of 3". */
  note: string;
  /** With --baseline: the baseline build's figure, current/baseline (inverted as `ratio`), and a note. */
  baseline?: { wharf: number | null; ratio: number | null; note: string };
}

/** A registry the benchmark started on 127.0.0.1, in its own process. */
export interface BenchRegistry {
  name: string;
  /** `127.0.0.1:<port>` */
  host: string;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The server's process id (for RSS), when known. */
  pid: number | undefined;
  dataDir: string;
  stop(): Promise<void>;
}

export interface StartWharfOptions {
  /** Extra settings in the config file's shape, e.g. `{ storage: { fsync: false } }`. */
  config?: Record<string, unknown>;
  /** A data directory to serve, seeded beforehand (kept at stop: the caller owns it); default a fresh one. */
  data?: string;
}

export interface RowInput {
  metric: string;
  wharf: number | null;
  peer: number | null;
  unit: string;
  /** Seconds, bytes of RSS: a smaller value is the better one (the ratio is peer/wharf). */
  lowerIsBetter?: boolean;
  note?: string;
  /** A goal from the issues: the ratio at least this (e.g. 2 for "2x Distribution"). */
  goalRatio?: number;
  /** A goal from the issues: Wharf's figure at most this, in `unit` (e.g. 150 MiB of RSS). */
  goalMax?: number;
  /** The baseline build's figure (ctx.builds[1]), when the run has one; `wharf` is the current build's. */
  baseline?: number | null;
}

/** A build of Wharf that a section can start. */
export interface WharfBuild {
  /** `current`, or the baseline's short commit hash. */
  label: string;
  /** Starts this build's `wharf serve` in a child process on a free port of 127.0.0.1. */
  start(opts?: StartWharfOptions): Promise<BenchRegistry>;
}

export interface BenchContext {
  scale: BenchScale;
  /** Repetitions per figure (env BENCH_RUNS, default 3); figures are medians. */
  runs: number;
  /** A fresh temp directory for this section, removed after it. */
  tmp: string;
  /** Root of the checkout. */
  root: string;
  /** Starts `wharf serve` of this checkout in a child process on a free port of 127.0.0.1. */
  startWharf(opts?: StartWharfOptions): Promise<BenchRegistry>;
  /** This checkout's build first (its start() is startWharf); with --baseline <rev>, that revision's second. */
  builds: WharfBuild[];
  /** Starts Debian's docker-registry on a free port; undefined, with a printed reason, if missing. */
  startDistribution(): Promise<BenchRegistry | undefined>;
  /** Why a peer binary cannot be used (printed once), or undefined when it can. */
  missing(bin: string): string | undefined;
  /** Runs `fn` ctx.runs times (after `setup` each time, unmeasured) and returns the median seconds. */
  measure(fn: (i: number) => Promise<void>, setup?: (i: number) => Promise<void>): Promise<number>;
  /** Builds a row with the section name and the ratio filled in. */
  row(r: RowInput): BenchRow;
  /** Runs a command, timed and its RSS sampled; rejects on a non-zero exit. */
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Runs this checkout's `wharf` CLI (compiled once per run, else through tsx) like `exec`. */
  wharf(args: string[], opts?: ExecOptions): Promise<ExecResult>;
  log(msg: string): void;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  /** Highest RSS sampled while it ran (every 25 ms), MiB. */
  peakRss: number;
}

export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** What a section module exports. */
export interface BenchSection {
  run(ctx: BenchContext): Promise<BenchRow[]>;
}
