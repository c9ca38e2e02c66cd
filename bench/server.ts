/**
 * wharf serve beside Distribution (Debian's docker-registry), both in their own processes on
 * 127.0.0.1, driven by the same undici load loops: large blob push (monolithic and in 8 MiB
 * chunks) and pull, small blobs and small artifacts at concurrency, manifest GET/HEAD at 50
 * connections, 4 KiB range GETs, and the servers' RSS around the large-blob transfers.
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BigBlob, V2, opsByCount, opsByTime, sha256 } from './http.js';
import { distributionVersion, median, rssOf, sampleRss } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const MiB = 1 << 20;

interface Sizes {
  big: number;
  chunk: number;
  smallBlobs: number;
  artifacts: number;
  seconds: number;
}

const SIZES: Record<'small' | 'full', Sizes> = {
  small: { big: 256 * MiB, chunk: 8 * MiB, smallBlobs: 400, artifacts: 150, seconds: 3 },
  full: { big: 1024 * MiB, chunk: 8 * MiB, smallBlobs: 2000, artifacts: 500, seconds: 10 },
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
  rssBefore: number | null;
  rssPush: number | null;
  rssPull: number | null;
  rssAfter: number | null;
}

async function measureRegistry(ctx: BenchContext, reg: BenchRegistry, blob: BigBlob, sz: Sizes): Promise<Figures> {
  const v2 = new V2(reg.url, 64);
  const tag = reg.name.replace(/\W+/g, '');
  const runs = ctx.runs;
  try {
    const before = reg.pid ? await rssOf(reg.pid) : undefined;
    let sampler = reg.pid ? sampleRss(reg.pid) : undefined;

    // Large blob: a fresh variant for every timed push, so that nothing is already there.
    const timed = async (fn: () => Promise<void>): Promise<number> => {
      const t0 = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - t0) / 1e9;
    };
    const mono: number[] = [];
    const chunked: number[] = [];
    let last = '';
    for (let i = 0; i < runs; i++) {
      const v = `${tag}-mono-${i}`;
      const d = await blob.digest(v);
      mono.push(blob.size / MiB / (await timed(() => v2.pushMonolithic('bench/big', d, blob.size, () => blob.range(v)))));
      last = d;
    }
    for (let i = 0; i < runs; i++) {
      const v = `${tag}-chunked-${i}`;
      const d = await blob.digest(v);
      chunked.push(blob.size / MiB / (await timed(() => v2.pushChunked('bench/big', d, blob.size, sz.chunk, (s, e) => blob.range(v, s, e)))));
    }
    ctx.log(`${reg.name}: push ${median(mono).toFixed(0)} MB/s monolithic, ${median(chunked).toFixed(0)} MB/s chunked`);
    const pushPeak = sampler ? await sampler.stop() : undefined;
    sampler = reg.pid ? sampleRss(reg.pid) : undefined;
    const pulls: number[] = [];
    for (let i = 0; i < runs; i++) {
      let n = 0;
      const s = await timed(async () => void (n = await v2.pull('bench/big', last)));
      if (n !== blob.size) throw new Error(`${reg.name}: pulled ${n} bytes of ${blob.size}`);
      pulls.push(n / MiB / s);
    }
    const pullPeak = sampler ? await sampler.stop() : undefined;
    ctx.log(`${reg.name}: pull ${median(pulls).toFixed(0)} MB/s`);

    // Range GETs of 4 KiB at random offsets of the large blob.
    const ranges: number[] = [];
    for (let i = 0; i < runs; i++) {
      ranges.push(
        await opsByTime(sz.seconds, 16, async () => {
          const off = Math.floor(Math.random() * (blob.size - 4096));
          const n = await v2.pull('bench/big', last, `bytes=${off}-${off + 4095}`);
          if (n !== 4096) throw new Error(`${reg.name}: range GET gave ${n} bytes`);
        }),
      );
    }

    // Many small blobs: 1 KiB each, unique, POST + PUT, 16 at once.
    const small: number[] = [];
    for (let i = 0; i < runs; i++) {
      const bufs = Array.from({ length: sz.smallBlobs }, () => randomBytes(1024));
      small.push(await opsByCount(bufs.length, 16, async (j) => v2.pushMonolithic('bench/small', sha256(bufs[j]!), 1024, () => bufs[j]!)));
    }

    // Small artifacts: a config, a 1 KiB layer and a manifest each, 8 clients.
    const arts: number[] = [];
    for (let i = 0; i < runs; i++) {
      arts.push(
        await opsByCount(sz.artifacts, 8, async (j) => {
          const config = Buffer.from(JSON.stringify({ run: i, n: j, t: tag }));
          const layer = randomBytes(1024);
          await v2.pushMonolithic('bench/artifacts', sha256(config), config.length, () => config);
          await v2.pushMonolithic('bench/artifacts', sha256(layer), layer.length, () => layer);
          const m = Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
              layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
            }),
          );
          await v2.putManifest('bench/artifacts', `r${i}-${j}`, 'application/vnd.oci.image.manifest.v1+json', m);
        }),
      );
    }

    // Manifest GET and HEAD, 50 connections, on the last artifact's tag.
    const ref = `/v2/bench/artifacts/manifests/r0-0`;
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    const gets: number[] = [];
    const heads: number[] = [];
    for (let i = 0; i < runs; i++) {
      gets.push(await opsByTime(sz.seconds, 50, async () => void (await (await v2.req({ method: 'GET', path: ref, headers: accept }, [200])).body.text())));
      heads.push(await opsByTime(sz.seconds, 50, async () => void (await (await v2.req({ method: 'HEAD', path: ref, headers: accept }, [200])).body.dump())));
    }
    const after = reg.pid ? await rssOf(reg.pid) : undefined;
    return {
      pushMono: median(mono),
      pushChunked: median(chunked),
      pull: median(pulls),
      smallBlobs: median(small),
      artifacts: median(arts),
      manifestGet: median(gets),
      manifestHead: median(heads),
      rangeGet: median(ranges),
      rssBefore: before?.rss ?? null,
      rssPush: pushPeak ?? null,
      rssPull: pullPeak ?? null,
      rssAfter: after?.rss ?? null,
    };
  } finally {
    await v2.close();
  }
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const sz = SIZES[ctx.scale];
  const big = `${sz.big / MiB} MiB`;
  ctx.log(`writing a ${big} blob`);
  const blob = await BigBlob.create(join(ctx.tmp, 'big.bin'), sz.big);

  const w = await ctx.startWharf();
  let wf: Figures;
  try {
    wf = await measureRegistry(ctx, w, blob, sz);
  } finally {
    await w.stop();
  }
  const d = await ctx.startDistribution();
  let df: Figures | undefined;
  try {
    if (d) df = await measureRegistry(ctx, d, blob, sz);
  } finally {
    await d?.stop();
  }
  const vs = d ? `vs Distribution ${distributionVersion()}` : 'Distribution missing';
  const r = (metric: string, key: keyof Figures, unit: string, note: string, goal: { goalRatio?: number; goalMax?: number; lowerIsBetter?: boolean } = {}): BenchRow =>
    ctx.row({ metric, wharf: wf[key], peer: df?.[key] ?? null, unit, note: `${vs}; ${note}`, ...goal });
  const rss = { lowerIsBetter: true, goalMax: 150 };
  return [
    r(`push ${big} blob, monolithic (POST+PUT)`, 'pushMono', 'MB/s', 'a fresh variant each run', { goalRatio: 2 }),
    r(`push ${big} blob, chunked (8 MiB PATCH)`, 'pushChunked', 'MB/s', 'a fresh variant each run', { goalRatio: 2 }),
    r(`pull ${big} blob`, 'pull', 'MB/s', 'GET, body counted', { goalRatio: 1 }),
    r('push 1 KiB blobs, 16 at once', 'smallBlobs', 'blobs/s', 'POST+PUT each'),
    r('push small artifacts (config, 1 KiB layer, manifest), 8 clients', 'artifacts', 'artifacts/s', '5 requests each', { goalRatio: 3 }),
    r('manifest GET, 50 connections', 'manifestGet', 'req/s', `${sz.seconds} s per run`, { goalRatio: 2 }),
    r('manifest HEAD, 50 connections', 'manifestHead', 'req/s', `${sz.seconds} s per run`, { goalRatio: 2 }),
    r('blob range GET (4 KiB), 16 at once', 'rangeGet', 'req/s', `${sz.seconds} s per run, random offsets`),
    r('server RSS at start', 'rssBefore', 'MiB', 'idle', { lowerIsBetter: true }),
    r(`server peak RSS, pushing the ${big} blob ${ctx.runs * 2} times`, 'rssPush', 'MiB', 'sampled every 50 ms', rss),
    r(`server peak RSS, pulling the ${big} blob ${ctx.runs} times`, 'rssPull', 'MiB', 'sampled every 50 ms', rss),
    r('server RSS at the end', 'rssAfter', 'MiB', 'after all of the above', { lowerIsBetter: true }),
  ];
}
