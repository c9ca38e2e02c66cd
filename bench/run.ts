/**
 * `npm run bench [-- --only <section>[,<section>]] [--baseline <rev>] [--write]`
 *
 * Runs each section (bench/<name>.ts, see bench/types.ts for the contract) and prints a table of
 * Wharf beside its peer. `--write` puts the figures in docs/BENCHMARKS.md, one block per section,
 * with the machine, the date and the command; blocks of sections that did not run are kept.
 * `--baseline <rev>` also builds that git revision (a worktree under .bench/) and runs its
 * `wharf serve` in turns with this checkout's in the sections that support it (server, proxy);
 * a second table puts the two builds side by side and flags a figure more than 10% worse.
 * BENCH_SCALE=small|full (default small), BENCH_RUNS=<n> (default 3), BENCH_SERVE_NODE_ARGS (Node
 * options for every wharf serve, e.g. --cpu-prof). The soak section (bench/soak.ts) runs only when
 * named (`--only soak`), for BENCH_SOAK_SECONDS of load per registry (default 600).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { baselineEntry, exec, hasBin, median, removeBuild, ROOT, startDistributionProcess, startWharfProcess, wharfCli, wharfEntry, type WharfEntry } from './lib.js';
import type { BenchContext, BenchRow, BenchScale, BenchSection, RowInput, WharfBuild } from './types.js';

/** In the order they run. Sections owned by other areas are imported only if their file exists. */
export const SECTIONS = ['server', 'client', 'estargz', 'proxy', 'auth', 's3', 'scale', 'ui', 'soak'] as const;
/** Sections that run only when named in --only: each takes many minutes (soak: 10 per registry). */
const ON_REQUEST: readonly string[] = ['soak'];

interface Args {
  only: string[] | undefined;
  write: boolean;
  /** A git revision whose build runs beside this checkout's (--baseline). */
  baseline: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { only: undefined, write: false, baseline: undefined };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    if (v === '--write') a.write = true;
    else if (v === '--only') a.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (v.startsWith('--only=')) a.only = v.slice(7).split(',').filter(Boolean);
    else if (v === '--baseline') a.baseline = argv[++i] || undefined;
    else if (v.startsWith('--baseline=')) a.baseline = v.slice(11) || undefined;
    else if (v === '--help' || v === '-h') {
      console.log('usage: npm run bench -- [--only server,client,estargz,proxy,auth,s3,scale,ui,soak] [--baseline <git rev>] [--write]\nenv: BENCH_SCALE=small|full, BENCH_RUNS=3, BENCH_SOAK_SECONDS=600 (soak runs only with --only soak)');
      process.exit(0);
    } else throw new Error(`bench: unknown argument ${v}`);
  }
  for (const s of a.only ?? []) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`bench: unknown section ${s} (${SECTIONS.join(', ')})`);
  return a;
}

export function fmt(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toLocaleString('en-US');
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function ratioOf(r: RowInput): number | null {
  if (r.wharf === null || r.peer === null || r.wharf <= 0 || r.peer <= 0) return null;
  return r.lowerIsBetter ? r.peer / r.wharf : r.wharf / r.peer;
}

/** The note, and whether the issue's goal for the figure is met. */
function withGoal(r: RowInput): string {
  const parts = r.note ? [r.note] : [];
  const ratio = ratioOf(r);
  if (r.goalRatio !== undefined) parts.push(`goal ≥ ${r.goalRatio}x: ${ratio === null ? 'not measured' : ratio >= r.goalRatio ? 'met' : 'NOT met'}`);
  if (r.goalMax !== undefined) parts.push(`goal < ${r.goalMax} ${r.unit}: ${r.wharf === null ? 'not measured' : r.wharf < r.goalMax ? 'met' : 'NOT met'}`);
  return parts.join('; ');
}

/** How much worse than the baseline's a figure may be before the comparison flags it. */
const TOLERANCE = 0.1;

/** The current build beside the baseline's: their ratio (as `ratio`, above 1x is better) and a note. */
function versus(r: RowInput): BenchRow['baseline'] {
  if (r.baseline === undefined) return undefined;
  const cur = r.wharf;
  const base = r.baseline;
  if (cur === null || base === null || cur <= 0 || base <= 0) return { wharf: base, ratio: null, note: 'not measured' };
  const worse = r.lowerIsBetter ? cur / base - 1 : 1 - cur / base;
  const pct = Math.round(Math.abs(worse) * 100);
  const note = worse > TOLERANCE ? `WORSE by ${pct}% (more than ${TOLERANCE * 100}%)` : worse > 0 ? `${pct}% worse` : `${pct}% better`;
  return { wharf: base, ratio: r.lowerIsBetter ? base / cur : cur / base, note };
}

function baselineTable(rows: BenchRow[], commit: string): string {
  const head = `| metric | current | baseline ${commit} | unit | current/baseline | note |\n| --- | ---: | ---: | --- | ---: | --- |`;
  const lines = rows.flatMap((r) =>
    r.baseline ? [`| ${r.metric} | ${fmt(r.wharf)} | ${fmt(r.baseline.wharf)} | ${r.unit} | ${r.baseline.ratio === null ? '–' : `${r.baseline.ratio.toFixed(2)}x`} | ${r.baseline.note} |`] : [],
  );
  return [head, ...lines].join('\n');
}

function table(rows: BenchRow[]): string {
  const head = '| metric | wharf | peer | unit | ratio | note |\n| --- | ---: | ---: | --- | ---: | --- |';
  const lines = rows.map((r) => `| ${r.metric} | ${fmt(r.wharf)} | ${fmt(r.peer)} | ${r.unit} | ${r.ratio === null ? '–' : `${r.ratio.toFixed(2)}x`} | ${r.note} |`);
  return [head, ...lines].join('\n');
}

export function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? 'unknown cpu'}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}

function makeContext(section: string, scale: BenchScale, runs: number, tmp: string, baseline: (WharfEntry & { commit: string }) | undefined): BenchContext {
  const said = new Set<string>();
  const missing = (bin: string): string | undefined => {
    if (hasBin(bin)) return undefined;
    const reason = `${bin} is not installed`;
    if (!said.has(bin)) console.log(`  skip: ${reason}; its column stays empty`);
    said.add(bin);
    return reason;
  };
  const builds: WharfBuild[] = [{ label: 'current', start: (opts) => startWharfProcess(opts) }];
  if (baseline) builds.push({ label: baseline.commit, start: (opts) => startWharfProcess(opts, { entry: baseline, name: `wharf serve ${baseline.commit}` }) });
  return {
    scale,
    runs,
    tmp,
    root: ROOT,
    startWharf: (opts) => startWharfProcess(opts),
    builds,
    startDistribution: async () => (missing('/usr/bin/docker-registry') ? undefined : startDistributionProcess()),
    missing,
    async measure(fn, setup) {
      const xs: number[] = [];
      for (let i = 0; i < runs; i++) {
        await setup?.(i);
        const t0 = process.hrtime.bigint();
        await fn(i);
        xs.push(Number(process.hrtime.bigint() - t0) / 1e9);
      }
      return median(xs);
    },
    row: (r) => ({ section, metric: r.metric, wharf: r.wharf, peer: r.peer, unit: r.unit, ratio: ratioOf(r), note: withGoal(r), baseline: versus(r) }),
    exec: (cmd, args, opts) => exec(cmd, args, opts),
    wharf: (args, opts) => wharfCli(args, opts),
    log: (msg) => console.log(`  ${section}: ${msg}`),
  };
}

const DOC = join(ROOT, 'docs', 'BENCHMARKS.md');
const begin = (s: string): string => `<!-- bench:${s} -->`;
const end = (s: string): string => `<!-- /bench:${s} -->`;

const INTRO = `# Benchmarks

\`npm run bench\` runs Wharf beside its peers in one run, on one machine: \`wharf serve\` beside
Distribution (Debian's \`docker-registry\`), the \`wharf\` CLI beside \`skopeo\`. Each figure is the
median of BENCH_RUNS runs (3 by default). \`ratio\` is Wharf's figure over the peer's, inverted
where lower is better (seconds, MiB), so above 1x means Wharf is ahead. Every section says the
command, machine and date of its figures; \`npm run bench -- --only <section> --write\` rewrites
one section and keeps the others. Sizes: \`BENCH_SCALE=small\` (default, a few minutes) or
\`full\` (the sizes of the goals in the issues; their figures go in blocks of their own).

\`wharf serve\` runs with its defaults (fsync on every write, the audit log on, every whole-blob
read verified against its digest) except \`log.level: warn\`; Distribution runs with its access log
off. The CLI and server are compiled once per run (\`tsc\` into \`.bench/dist-<pid>\`), as
\`npm start\` runs them.

\`--baseline <rev>\` (say \`npm run bench -- --only server,proxy --baseline 7a75e33\`) also checks
out that git revision in a worktree under \`.bench/\`, links this checkout's \`node_modules\` into
it and compiles it the same way; the server and proxy sections then run both builds' \`wharf
serve\`, each figure run by run on both in turn (their order swapped every other run), and print a
second table: the current build, the baseline, current/baseline (inverted where lower is better,
so below 1x means the current build is behind) and a note flagging a figure more than 10% worse.
With \`--write\`, such a run's blocks are \`<section>-vs-<commit>\`, beside the section's own.
\`BENCH_SERVE_NODE_ARGS\` passes Node options to every \`wharf serve\` the bench starts (say
\`BENCH_SERVE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"\`; Node refuses \`--cpu-prof\` in
\`NODE_OPTIONS\`); each profile names its build in its scripts' paths.

The soak section runs only when asked (\`npm run bench -- --only soak\`): 32 clients load one
registry at a time for BENCH_SOAK_SECONDS (600 by default), the issue's mix (70% pulls, 20% small
pushes, 10% tag lists and referrers) for the first half and pushes alone for the second, and the
server's RSS is read from /proc every second, then once more 60 s after the load. Its figures are
of one run; figures from a shorter BENCH_SOAK_SECONDS say "short mode".

The s3 section starts a fresh one-node Ceph RGW (\`scripts/rgw.sh\`, purged at the end: RGW
slows down as one cluster is reused) and runs \`wharf serve\` (\`storage.driver: s3\`) beside
Distribution's s3 driver on it, each in a bucket of its own, both path-style over plain HTTP on
127.0.0.1; Distribution runs with \`redirect: disable: true\` (its default redirects blob GETs)
and without the environment's AWS_* variables (its SDK panics at start on AWS_CA_BUNDLE). The
redirected pull is a second \`wharf serve\` on Wharf's bucket with \`storage.s3.redirect.enabled\`,
beside curl's GET of a URL presigned for the same object. RGW, its OSD, both servers and the load
generator share the 2 cores, so each figure there is as much RGW's as the registry's. Without
root, radosgw, ceph-mon, ceph-osd, docker-registry or curl, the section is skipped.

The scale section (docs/SCALE-OUT.md) puts nginx (test/helpers/nginx.ts) in front of 1, 2 and 3
\`wharf serve\` replicas over one fresh RGW bucket and one PostgreSQL 15 database
(\`database.url\`), then in front of 2 Distribution replicas (its s3 driver, one shared
http.secret) on a bucket of their own, and loads each through the balancer: small-artifact pushes
from 8 clients, failures counted, and manifest GETs at 50 connections. As docs/SCALE-OUT.md
deploys them, only the first replica keeps the audit index (the others have \`audit.index:
false\`); 3 replicas that all keep one, and 1 and 3 with the audit log off, follow on the same
bucket and database. Every replica, RGW, PostgreSQL, nginx and the load generator share the 2
cores, so more replicas cannot be faster here; the rows say whether 3 are slower than 1.

The ui section measures the web UI (issue 23), with no peer: the first page's bundle (index.html
and the script, styles and icon it names, gzipped as the server sends them; the figure
\`scripts/build.mjs\` prints), then the UI's JSON API over a registry seeded in the bench's own
process through the store's and the audit log's APIs (1,000 repositories of 10 tags and 20,000
pulls at the small scale; 10,000, 100,000 tags and 200,000 pulls at full): \`wharf serve\` starts
on that data directory, its catalog index rebuilds from the store (the rebuild's time is a row of
its own), and each endpoint is loaded by 20 connections for a fixed time per run (after an untimed
second of each), every endpoint in turn per run; p99 and req/s are medians over the runs. Latency
is closed-loop: 20 requests always wait, so p50 is about 20 / req/s, and p99 holds what the load
generator and other work on the 2 cores cost. Last, one large layer (128 MiB, 1 GiB at full) is
downloaded through \`/api/v1/download\` and through a /v2 blob GET of the same server, in turns,
over plain connections (median of at least 5).

Figures made of many small requests (range GETs, small blobs, small artifacts, manifest GET and
HEAD) follow one untimed round of the same work on every registry: a server runs for days, and a
JIT runtime's first few thousand requests are slower (a fresh \`wharf serve\`: 65 small artifacts/s
in its first 400, 190/s from its fourth 400). Large pushes and pulls have no such round.

Caveat: the machine has 2 cores shared with other work, and the load generator runs on the same
cores as the server it measures; compare ratios more than absolute figures, and see each block's
load average. The load generator, like \`wharf serve\`, has V8 mark its heap on the main thread
(\`--no-concurrent-marking\`): the marking threads cost up to a second of CPU per GiB moved, taken
from the cores the servers share. The large blob is pushed and pulled over plain HTTP/1.1
connections that send from and read into a few reused 1 MiB buffers: through undici the client
spent 1.1-1.4 s of CPU per GiB pushed and 0.8-1.3 s per GiB pulled, as much as Wharf's own main
thread, on the cores both share (plain: 0.44-0.63 s per GiB pushed in one request, 0.75-0.87 s in
8 MiB chunks, 0.17-0.39 s pulled). Distribution's figures did not move with the client (1 GiB
monolithic: 122-208 MB/s through undici, 126-201 plain). Small artifacts are pushed 300 per
run at the small scale (500 at full): a run of 150 lasted about half a second for Wharf, and its
figure moved with the last few requests.

Caveat on large blobs: this machine is a VM whose kernel reports freed memory back to the host,
so a page the kernel has not used for a while is faulted in by the hypervisor on first touch
(measured: a buffered 256 MiB write into fresh page cache 260-335 MiB/s, into just-freed pages
2.7-4.1 GB/s; \`dd oflag=direct\` 1.1-1.6 GB/s; a buffered read of an uncached file 377 MB/s,
\`iflag=direct\` 1.9-2.1 GB/s). Wharf writes and reads large blobs with O_DIRECT (docs/STORAGE.md),
so none of its pulls pays for fresh pages (a buffered first read of a 1 GiB blob took 3.2 s of
server CPU at 290 MB/s; read direct, 0.41-0.68 s per GiB; a 1 GiB blob pulled 4 times over the
plain socket in turns with Distribution: 1,595-2,479 MB/s, Distribution 1,316-2,253). Distribution writes
through the page cache (and fsyncs each file it writes, 30 times per small artifact under
\`strace -f -c\`, Wharf 11), so its first pull is a cache hit. The same holds for the figure of a
fresh variant of the large blob read as 4 parallel ranges (64 MiB each at the small scale,
256 MiB at full) right after its push: Distribution's first round reads the page cache, Wharf's
reads the disk direct (ranges of 1 MiB or more, as whole pulls; see docs/STORAGE.md), and a
second round follows at once. Measured with \`dd iflag=direct bs=1M\` while other work loaded
the machine (load average 5-9): one reader 1.2-1.3 GB/s, 4 readers of a quarter each 1.6-1.8 GB/s
together, so a first round of direct ranges cannot pass the disk's rate.

Server RSS: the peak rows are taken during the large transfers, which come first (at full scale a
2 GiB blob is pushed and pulled once right after the 1 GiB ones). The small-request rounds that
follow leave a Node server's heap larger for a while (garbage V8 collects when it needs to, and
malloc's arenas): "server RSS at the end" read 124-249 MiB in full runs. A server given 3,000
artifacts and two 10 s manifest GET loads sat at 149-157 MiB; after three more loads its heap's
used part was back at 28-43 MiB, so the growth is garbage, not a leak.

Caveat on small files: the root file system is ext4 without a journal, and there creating a file
scans past every inode of its block group freed in the last minutes (\`recently_deleted\` in the
kernel; 28% of the server's CPU in a perf profile of the small-artifact pushes). Creating empty
files took 81 us each in a fresh directory, and 1,860 us each 5 s after 55,000 files nearby were
deleted. Two measures keep one side from paying for what others delete:
- the registries keep their data under \`.bench/tmp\` in the checkout, not \`/tmp\`, which the test
  suite churns: right after 30,000 files were deleted under \`/tmp\`, small artifacts ran at 151/s
  (Wharf) and 78/s (Distribution) with data there, and at 234/s and 66/s under \`.bench/tmp\`;
- \`.bench/tmp\` carries ext4's \`T\` attribute (\`chattr +T\`), so each registry's directory lands
  in a block group of its own. Distribution deletes a directory and several files per upload;
  sharing a group, Wharf's next turn paid for them. Measured in turns, two runs each (small
  artifacts per second, Wharf / Distribution): 329 / 87 and 313 / 90 with the attribute, 267 / 77
  and 173 / 80 without.

What a bench run deletes at its end still slows the next run for a few minutes.
`;

/**
 * Sets ext4's "top of directory hierarchy" attribute (chattr +T) on `dir`: the allocator then
 * places each new subdirectory, one per registry, in a block group of its own, and the files made
 * below it stay near it. Elsewhere (another file system, no chattr) the figures carry the caveat.
 */
function spreadDirectories(dir: string): string {
  const r = spawnSync('chattr', ['+T', dir], { encoding: 'utf8' });
  return r.status === 0 ? 'registries keep their data in block groups of their own (chattr +T .bench/tmp)' : `registries share block groups: chattr +T failed (${(r.stderr || r.error?.message || '').trim()})`;
}

/** Blocks are keyed by section and scale: `server` (small) and `server-full` live side by side. */
async function writeDoc(blocks: Map<string, string>): Promise<void> {
  let doc = existsSync(DOC) ? await readFile(DOC, 'utf8') : INTRO;
  // The introduction is this file's; the blocks after it hold the figures.
  const first = doc.indexOf('<!-- bench:');
  doc = first >= 0 ? `${INTRO}\n${doc.slice(first)}` : INTRO;
  for (const [s, block] of blocks) {
    const wrapped = `${begin(s)}\n${block}\n${end(s)}`;
    const i = doc.indexOf(begin(s));
    const j = doc.indexOf(end(s));
    if (i >= 0 && j > i) doc = doc.slice(0, i) + wrapped + doc.slice(j + end(s).length);
    else doc = `${doc.trimEnd()}\n\n${wrapped}\n`;
  }
  await writeFile(DOC, doc);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // The load generator must not be what is measured: V8's concurrent marking threads took up to
  // a second of CPU per GiB it received, on the 2 cores the servers run on (see the intro).
  setFlagsFromString('--no-concurrent-marking');
  // Every registry keeps its data under .bench/tmp, not /tmp, each in a block group of its own
  // where the file system allows (see the intro's caveat on small files): what the test suite
  // deletes under /tmp, and what the other registry deletes, made small pushes pay for it.
  process.env.TMPDIR = join(ROOT, '.bench', 'tmp');
  await mkdir(process.env.TMPDIR, { recursive: true });
  console.log(spreadDirectories(process.env.TMPDIR));
  const scaleEnv = process.env.BENCH_SCALE ?? 'small';
  if (scaleEnv !== 'small' && scaleEnv !== 'full') throw new Error(`BENCH_SCALE must be small or full, not ${scaleEnv}`);
  const scale: BenchScale = scaleEnv;
  const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 3) || 3);
  const soakEnv = process.env.BENCH_SOAK_SECONDS && args.only?.includes('soak') ? `BENCH_SOAK_SECONDS=${process.env.BENCH_SOAK_SECONDS}` : '';
  const envPart = [scale !== 'small' ? `BENCH_SCALE=${scale}` : '', process.env.BENCH_RUNS ? `BENCH_RUNS=${runs}` : '', soakEnv].filter(Boolean).join(' ');
  const command = `${envPart ? `${envPart} ` : ''}npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`wharf bench: scale ${scale}, ${runs} runs per figure; ${machine()}`);
  const how = (await wharfEntry()).how;
  console.log(`wharf (serve and CLI) runs ${how}`);
  const baseline = args.baseline ? await baselineEntry(args.baseline) : undefined;
  if (baseline) console.log(`baseline: ${baseline.commit} (${args.baseline}), compiled (tsc) in .bench/baseline-${process.pid}; its wharf serve runs in turns with this checkout's`);

  const blocks = new Map<string, string>();
  const all: BenchRow[] = [];
  let failed = 0;
  for (const name of SECTIONS) {
    if (args.only && !args.only.includes(name)) continue;
    if (!args.only && ON_REQUEST.includes(name)) {
      console.log(`\n== ${name}: skipped, it runs only when asked (--only ${name})`);
      continue;
    }
    const file = join(ROOT, 'bench', `${name}.ts`);
    if (!existsSync(file)) {
      console.log(`\n== ${name}: skipped, bench/${name}.ts is not there yet`);
      continue;
    }
    console.log(`\n== ${name}`);
    const mod = (await import(pathToFileURL(file).href)) as Partial<BenchSection>;
    if (typeof mod.run !== 'function') {
      console.log(`  skipped: bench/${name}.ts exports no run(ctx)`);
      continue;
    }
    const tmp = await mkdtemp(join(tmpdir(), `wharf-bench-${name}-`));
    const t0 = Date.now();
    const load0 = loadavg()[0]!;
    try {
      const rows = await mod.run(makeContext(name, scale, runs, tmp, baseline));
      // A section that cannot run here (say, without its peer's store) returned no rows and said why.
      if (rows.length === 0) continue;
      all.push(...rows);
      const secs = ((Date.now() - t0) / 1000).toFixed(0);
      const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      // With a baseline, the comparison comes first, and its block is kept apart from the section's.
      const compared = baseline && rows.some((r) => r.baseline) ? `${baselineTable(rows, baseline.commit)}\n\n` : '';
      if (baseline && !compared) console.log(`  note: ${name} measures this checkout's build only, not ${baseline.commit}`);
      const footer = `Command: \`${command}\` (scale ${scale}, median of ${runs}), ${date}, ${machine()}; wharf ran ${how}; the section took ${secs} s, load average ${load0.toFixed(1)} before and ${loadavg()[0]!.toFixed(1)} after.`;
      console.log(`\n${compared}${table(rows)}\n  (${secs} s)\n${footer}`);
      const key = `${name}${scale === 'small' ? '' : `-${scale}`}${compared ? `-vs-${baseline!.commit}` : ''}`;
      const title = `${name}${scale === 'small' ? '' : ` (BENCH_SCALE=${scale})`}${compared ? `, current beside ${baseline!.commit}` : ''}`;
      blocks.set(key, `## ${title}\n\n${compared}${table(rows)}\n\n${footer}`);
    } catch (err) {
      failed++;
      console.error(`  ${name} failed: ${(err as Error).stack ?? String(err)}`);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  if (args.write && blocks.size > 0) {
    await writeDoc(blocks);
    console.log(`\nwrote ${DOC}`);
  }
  if (failed > 0) process.exitCode = 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main()
    .catch((err: unknown) => {
      console.error(`bench: ${(err as Error).message}`);
      process.exitCode = 1;
    })
    .finally(() => removeBuild());
}
