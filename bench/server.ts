/**
 * wharf serve beside Distribution (Debian's docker-registry), both in their own processes on
 * 127.0.0.1, driven by the same undici load loops: large blob push (monolithic and in 8 MiB
 * chunks) and pull, small blobs and small artifacts at concurrency, manifest GET/HEAD at 50
 * connections, the large blob read as 4 parallel ranges right after its push, 4 KiB range GETs,
 * and the servers' RSS around the large-blob transfers (at full scale also around one push and
 * one pull of a 2 GiB blob). With --baseline, the baseline build's
 * wharf serve is one more side, measured in the same turns.
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BigBlob, manifestRates, V2, opsByCount, opsByTime, sha256 } from './http.js';
import { distributionVersion, median, rssOf, sampleRss } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const MiB = 1 << 20;
/** Pulls of the large blob per run (see measure). */
const PULLS_PER_RUN = 3;
/** The large blob is read as this many ranges at once, each of an equal part (see measure). */
const RANGE_PARTS = 4;

interface Sizes {
  big: number;
  /** A blob pushed and pulled once per registry for the servers' RSS only (none at small scale). */
  huge?: number;
  chunk: number;
  smallBlobs: number;
  artifacts: number;
  seconds: number;
}

const SIZES: Record<'small' | 'full', Sizes> = {
  small: { big: 256 * MiB, chunk: 8 * MiB, smallBlobs: 400, artifacts: 300, seconds: 3 },
  full: { big: 1024 * MiB, huge: 2048 * MiB, chunk: 8 * MiB, smallBlobs: 2000, artifacts: 500, seconds: 10 },
};

interface Figures {
  pushMono: number;
  pushChunked: number;
  pull: number;
  smallBlobs: number;
  artifacts: number;
  manifestGet: number;
  manifestHead: number;
  rangeGet: number;
  rangesFresh: number;
  rangesLater: number;
  rssBefore: number | null;
  rssPush: number | null;
  rssPull: number | null;
  rssAfter: number | null;
  rssHugePush: number | null;
  rssHugePull: number | null;
}

interface Side {
  reg: BenchRegistry;
  /** A build of Wharf (the current one or a baseline), not the peer. */
  wharf: boolean;
  v2: V2;
  tag: string;
  /** The last large-blob variant pushed, which the pulls and range reads use. */
  big: string;
  xs: Record<'pushMono' | 'pushChunked' | 'pull' | 'rangesFresh' | 'rangesLater' | 'smallBlobs' | 'artifacts' | 'manifestGet' | 'manifestHead' | 'rangeGet', number[]>;
  rss: { before?: number; push?: number; pull?: number; after?: number; hugePush?: number; hugePull?: number };
}

const timed = async (fn: () => Promise<void>): Promise<number> => {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};

/** Pulls a whole blob and checks that it was all there. */
async function pullWhole(side: Side, repo: string, digest: string, size: number): Promise<void> {
  const n = await side.v2.pullWhole(repo, digest);
  if (n !== size) throw new Error(`${side.reg.name}: pulled ${n} bytes of ${size}`);
}

/** Reads a whole blob as RANGE_PARTS ranges at once, each over a plain connection, and checks that each was all there. */
async function pullParts(side: Side, repo: string, digest: string, size: number): Promise<void> {
  const part = Math.ceil(size / RANGE_PARTS);
  await Promise.all(
    Array.from({ length: RANGE_PARTS }, async (_, k) => {
      const start = k * part;
      const end = Math.min(size, start + part) - 1;
      const n = await side.v2.pullRange(repo, digest, start, end);
      if (n !== end - start + 1) throw new Error(`${side.reg.name}: range ${start}-${end} gave ${n} bytes`);
    }),
  );
}

/** Samples the RSS of every side's server while `fn` runs; returns each side's peak. */
async function peakRss(sides: Side[], fn: () => Promise<void>): Promise<(number | undefined)[]> {
  const samplers = sides.map((s) => (s.reg.pid ? sampleRss(s.reg.pid) : undefined));
  const stop = (): Promise<(number | undefined)[]> => Promise.all(samplers.map((x) => x?.stop()));
  try {
    await fn();
  } catch (err) {
    await stop();
    throw err;
  }
  return stop();
}

/**
 * The sides in run i's order: the Wharf builds (with --baseline, two) swap places every other run,
 * so that neither always follows the peer's turn.
 */
function turns(sides: Side[], i: number): Side[] {
  const wharfs = sides.filter((s) => s.wharf);
  return [...(i % 2 ? wharfs.reverse() : wharfs), ...sides.filter((s) => !s.wharf)];
}

/**
 * Every figure is taken run by run, each run on every registry in turn, so that load from
 * elsewhere on the machine falls on all sides alike.
 */
async function measure(ctx: BenchContext, sides: Side[], blob: BigBlob, sz: Sizes, huge: BigBlob | undefined): Promise<void> {
  const runs = ctx.runs;
  const each = async (fn: (side: Side, i: number) => Promise<void>): Promise<void> => {
    for (let i = 0; i < runs; i++) for (const side of turns(sides, i)) await fn(side, i);
  };
  // Figures made of many small requests follow one untimed round on every registry: a server runs
  // for days, and a JIT runtime's first few thousand requests are slower than the rest (a fresh
  // Wharf: 65 small artifacts/s in its first 400, 190/s from its fourth 400).
  const warmed = async (fn: (side: Side, i: number) => Promise<void>): Promise<void> => {
    for (const side of sides) {
      const kept = Object.values(side.xs).map((xs) => xs.length);
      await fn(side, runs);
      Object.values(side.xs).forEach((xs, k) => (xs.length = kept[k]!));
    }
    await each(fn);
  };
  for (const side of sides) side.rss.before = side.reg.pid ? (await rssOf(side.reg.pid))?.rss : undefined;

  // Large blob: a fresh variant for every timed push, so that nothing is already there.
  const pushPeaks = await peakRss(sides, async () => {
    await each(async (side, i) => {
      const v = `${side.tag}-mono-${i}`;
      const d = await blob.digest(v);
      side.xs.pushMono.push(blob.size / MiB / (await timed(() => side.v2.pushLarge('bench/big', d, blob.body(v)))));
      side.big = d;
    });
    await each(async (side, i) => {
      const v = `${side.tag}-chunked-${i}`;
      const d = await blob.digest(v);
      side.xs.pushChunked.push(blob.size / MiB / (await timed(() => side.v2.pushLargeChunked('bench/big', d, blob.size, sz.chunk, (a, b) => blob.body(v, a, b)))));
    });
  });
  // A pull takes a fraction of a second: each run pulls the blob PULLS_PER_RUN times in a row, so
  // that a moment of load elsewhere on the machine does not decide a run.
  const pullPeaks = await peakRss(sides, () =>
    each(async (side) => {
      const secs = await timed(async () => {
        for (let k = 0; k < PULLS_PER_RUN; k++) await pullWhole(side, 'bench/big', side.big, blob.size);
      });
      side.xs.pull.push((PULLS_PER_RUN * blob.size) / MiB / secs);
    }),
  );
  sides.forEach((side, k) => {
    side.rss.push = pushPeaks[k];
    side.rss.pull = pullPeaks[k];
    ctx.log(`${side.reg.name}: push ${median(side.xs.pushMono).toFixed(0)} MB/s monolithic, ${median(side.xs.pushChunked).toFixed(0)} MB/s chunked, pull ${median(side.xs.pull).toFixed(0)} MB/s`);
  });
  // A fresh variant pushed (untimed), then read at once as RANGE_PARTS parallel ranges (as
  // clients that split a large download do), then once more: the first round finds the blob
  // where its push left it (Distribution's in the page cache, Wharf's only on disk, written
  // direct), the second what the first left behind.
  await each(async (side, i) => {
    const v = `${side.tag}-ranges-${i}`;
    const d = await blob.digest(v);
    await side.v2.pushLarge('bench/ranges', d, blob.body(v));
    for (const xs of [side.xs.rangesFresh, side.xs.rangesLater]) xs.push(blob.size / MiB / (await timed(() => pullParts(side, 'bench/ranges', d, blob.size))));
  });
  for (const side of sides) ctx.log(`${side.reg.name}: ${RANGE_PARTS} ranges at once ${median(side.xs.rangesFresh).toFixed(0)} MB/s right after the push, ${median(side.xs.rangesLater).toFixed(0)} MB/s next`);
  // Before the small requests, whose garbage raises the heap for a while (see docs/BENCHMARKS.md).
  if (huge) await measureHuge(sides, huge);

  // Range GETs of 4 KiB at random offsets of the large blob.
  await warmed(async (side) => {
    side.xs.rangeGet.push(
      await opsByTime(sz.seconds, 16, async () => {
        const off = Math.floor(Math.random() * (blob.size - 4096));
        const n = await side.v2.pull('bench/big', side.big, `bytes=${off}-${off + 4095}`);
        if (n !== 4096) throw new Error(`${side.reg.name}: range GET gave ${n} bytes`);
      }),
    );
  });

  // Many small blobs: 1 KiB each, unique, POST + PUT, 16 at once.
  await warmed(async (side) => {
    const bufs = Array.from({ length: sz.smallBlobs }, () => randomBytes(1024));
    side.xs.smallBlobs.push(await opsByCount(bufs.length, 16, async (j) => side.v2.pushMonolithic('bench/small', sha256(bufs[j]!), 1024, () => bufs[j]!)));
  });

  // Small artifacts: a config, a 1 KiB layer and a manifest each, 8 clients.
  await warmed(async (side, i) => {
    side.xs.artifacts.push(
      await opsByCount(sz.artifacts, 8, (j) => side.v2.pushSmallArtifact('bench/artifacts', `r${i}-${j}`, { run: i, n: j, t: side.tag })),
    );
  });

  // Manifest GET and HEAD, 50 connections, on one artifact's tag.
  const ref = `/v2/bench/artifacts/manifests/r0-0`;
  await warmed(async (side) => {
    const rates = await manifestRates(side.reg.url, side.v2, ref, sz.seconds);
    side.xs.manifestGet.push(rates.get);
    side.xs.manifestHead.push(rates.head);
  });
  for (const side of sides) side.rss.after = side.reg.pid ? (await rssOf(side.reg.pid))?.rss : undefined;
  // Beside a baseline, each run's figure (in run order), so that noise can be told from a change.
  if (ctx.builds.length > 1) {
    for (const side of sides.filter((s) => s.wharf)) ctx.log(`${side.reg.name}, each run: ${Object.entries(side.xs).map(([k, xs]) => `${k} ${xs.map((x) => x.toFixed(0)).join('/')}`).join(', ')}`);
  }
}

/** Pushes `blob` once to each registry, then pulls it once, each alone, for the peak RSS of each. */
async function measureHuge(sides: Side[], blob: BigBlob): Promise<void> {
  for (const side of sides) {
    const d = await blob.digest(`${side.tag}-huge`);
    side.rss.hugePush = (await peakRss([side], () => side.v2.pushLarge('bench/huge', d, blob.body(`${side.tag}-huge`))))[0];
    side.rss.hugePull = (await peakRss([side], () => pullWhole(side, 'bench/huge', d, blob.size)))[0];
  }
}

function figuresOf(side: Side): Figures {
  const m = (xs: number[]): number => median(xs);
  return {
    pushMono: m(side.xs.pushMono),
    pushChunked: m(side.xs.pushChunked),
    pull: m(side.xs.pull),
    smallBlobs: m(side.xs.smallBlobs),
    artifacts: m(side.xs.artifacts),
    manifestGet: m(side.xs.manifestGet),
    manifestHead: m(side.xs.manifestHead),
    rangeGet: m(side.xs.rangeGet),
    rangesFresh: m(side.xs.rangesFresh),
    rangesLater: m(side.xs.rangesLater),
    rssBefore: side.rss.before ?? null,
    rssPush: side.rss.push ?? null,
    rssPull: side.rss.pull ?? null,
    rssAfter: side.rss.after ?? null,
    rssHugePush: side.rss.hugePush ?? null,
    rssHugePull: side.rss.hugePull ?? null,
  };
}

function sideOf(reg: BenchRegistry, wharf: boolean): Side {
  return {
    reg,
    wharf,
    v2: new V2(reg.url, 64),
    tag: reg.name.replace(/\W+/g, ''),
    big: '',
    xs: { pushMono: [], pushChunked: [], pull: [], rangesFresh: [], rangesLater: [], smallBlobs: [], artifacts: [], manifestGet: [], manifestHead: [], rangeGet: [] },
    rss: {},
  };
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const sz = SIZES[ctx.scale];
  const big = `${sz.big / MiB} MiB`;
  ctx.log(`writing a ${big} blob`);
  const blob = await BigBlob.create(join(ctx.tmp, 'big.bin'), sz.big);
  if (sz.huge) ctx.log(`writing a ${sz.huge / MiB} MiB blob`);
  const huge = sz.huge ? await BigBlob.create(join(ctx.tmp, 'huge.bin'), sz.huge) : undefined;

  // Every build of Wharf (this checkout's, and with --baseline that revision's), then the peer.
  const sides: Side[] = [];
  let d: BenchRegistry | undefined;
  try {
    for (const b of ctx.builds) sides.push(sideOf(await b.start(), true));
    d = await ctx.startDistribution();
    if (d) sides.push(sideOf(d, false));
    await measure(ctx, sides, blob, sz, huge);
  } finally {
    for (const side of sides) {
      await side.v2.close();
      await side.reg.stop();
    }
  }
  const wf = figuresOf(sides[0]!);
  const bf = ctx.builds.length > 1 ? figuresOf(sides[1]!) : undefined;
  const df = d ? figuresOf(sides.at(-1)!) : undefined;
  const vs = d ? `vs Distribution ${distributionVersion()}` : 'Distribution missing';
  const r = (metric: string, key: keyof Figures, unit: string, note: string, goal: { goalRatio?: number; goalMax?: number; lowerIsBetter?: boolean } = {}): BenchRow =>
    ctx.row({ metric, wharf: wf[key], peer: df?.[key] ?? null, unit, note: `${vs}; ${note}`, ...goal, ...(bf ? { baseline: bf[key] } : {}) });
  const rss = { lowerIsBetter: true, goalMax: 150 };
  return [
    r(`push ${big} blob, monolithic (POST+PUT)`, 'pushMono', 'MB/s', 'a fresh variant each run, sent over a plain connection', { goalRatio: 2 }),
    r(`push ${big} blob, chunked (8 MiB PATCH)`, 'pushChunked', 'MB/s', 'a fresh variant each run, each chunk over a plain connection', { goalRatio: 2 }),
    r(`pull ${big} blob`, 'pull', 'MB/s', `${PULLS_PER_RUN} GETs in a row per run, over plain connections, bodies counted`, { goalRatio: 1 }),
    r(`pull ${big} blob as ${RANGE_PARTS} ranges at once, right after its push`, 'rangesFresh', 'MB/s', `${RANGE_PARTS} GETs of ${sz.big / RANGE_PARTS / MiB} MiB each over plain connections, on a fresh variant pushed just before`, { goalRatio: 1 }),
    r(`pull ${big} blob as ${RANGE_PARTS} ranges at once, again`, 'rangesLater', 'MB/s', 'the same ranges, right after the first round'),
    r('push 1 KiB blobs, 16 at once', 'smallBlobs', 'blobs/s', 'POST+PUT each'),
    r('push small artifacts (config, 1 KiB layer, manifest), 8 clients', 'artifacts', 'artifacts/s', '5 requests each', { goalRatio: 3 }),
    r('manifest GET, 50 connections', 'manifestGet', 'req/s', `${sz.seconds} s per run`, { goalRatio: 2 }),
    r('manifest HEAD, 50 connections', 'manifestHead', 'req/s', `${sz.seconds} s per run, node:http keep-alive (undici closes after HEAD)`, { goalRatio: 2 }),
    r('blob range GET (4 KiB), 16 at once', 'rangeGet', 'req/s', `${sz.seconds} s per run, random offsets`),
    r('server RSS at start', 'rssBefore', 'MiB', 'idle', { lowerIsBetter: true }),
    r(`server peak RSS, pushing the ${big} blob ${ctx.runs * 2} times`, 'rssPush', 'MiB', 'sampled every 50 ms', rss),
    r(`server peak RSS, pulling the ${big} blob ${ctx.runs * PULLS_PER_RUN} times`, 'rssPull', 'MiB', 'sampled every 50 ms', rss),
    ...(sz.huge
      ? [
          r(`server peak RSS, pushing a ${sz.huge / MiB} MiB blob once`, 'rssHugePush', 'MiB', `sampled every 50 ms, one registry at a time, after the ${big} transfers`, rss),
          r(`server peak RSS, pulling the ${sz.huge / MiB} MiB blob once`, 'rssHugePull', 'MiB', `sampled every 50 ms, one registry at a time, after the ${big} transfers`, rss),
        ]
      : []),
    r('server RSS at the end', 'rssAfter', 'MiB', 'after all of the above', { lowerIsBetter: true }),
  ];
}
