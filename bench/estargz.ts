/**
 * eStargz selective retrieval: what `ls` and `cat` cost on the wire and in time, next to reading
 * the whole layer, against wharf serve (the `wharf` column) and against Distribution (the `peer`
 * column): the client is Wharf's in both. One artifact: many files plus one 1 KiB file and one big
 * file, packed as one eStargz layer. BENCH_SCALE=small: 64 MiB in 1,000 files with a 16 MiB file;
 * full: 1 GiB in 10,000 files with a 200 MiB file (the goals). Every read is uncached.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Registry } from '../src/stores/remote/index.js';
import { pushEstargz, openArtifact, type EstargzPushResult } from '../src/client/index.js';
import { EstargzCache } from '../src/estargz/index.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const MiB = 1 << 20;

interface Sizes {
  total: number;
  files: number;
  big: number;
}
const SIZES: Record<'small' | 'full', Sizes> = {
  small: { total: 64 * MiB, files: 1000, big: 16 * MiB },
  full: { total: 1024 * MiB, files: 10_000, big: 200 * MiB },
};

/** Random bytes, half of each file, and text for the other half: gzip has work to do. */
function content(n: number, i: number): Buffer {
  const half = randomBytes(Math.floor(n / 2));
  const line = Buffer.from(`line ${i}: the quick brown fox jumps over the lazy dog\n`);
  const text = Buffer.alloc(n - half.length);
  for (let at = 0; at < text.length; at += line.length) line.copy(text, at);
  return Buffer.concat([half, text]);
}

async function makeTree(dir: string, sz: Sizes): Promise<void> {
  await mkdir(join(dir, 'small'), { recursive: true });
  await writeFile(join(dir, 'small', 'target.txt'), content(1024, 0));
  await writeFile(join(dir, 'big.bin'), content(sz.big, 1));
  const each = Math.floor((sz.total - sz.big) / sz.files);
  for (let i = 0; i < sz.files; i++) {
    const d = join(dir, `d${String(i % 100).padStart(2, '0')}`);
    if (i < 100) await mkdir(d, { recursive: true });
    await writeFile(join(d, `f${i}.bin`), content(each, i));
  }
}

interface Figures {
  warmBytes: number;
  warmSeconds: number;
  lsBytes: number;
  lsSeconds: number;
  catBytes: number;
  catSeconds: number;
  pullSeconds: number;
  bigMBps: number;
  pullMBps: number;
}

async function measureOn(ctx: BenchContext, r: BenchRegistry, dir: string, chunkSize: number | undefined): Promise<{ fig: Figures; pushed: EstargzPushResult }> {
  const reg = new Registry(r.host, { plainHttp: true });
  const repo = reg.repository('bench/estargz');
  try {
    const pushed = await pushEstargz(repo, { dir, chunkSize, tags: ['v1'], noCreated: true });
    let lsBytes = 0;
    const lsSeconds = await ctx.measure(async () => {
      const art = await openArtifact(repo, 'v1');
      if (art.fs.list().length < 2) throw new Error('ls found nothing');
      lsBytes = art.stats().bytes;
      await art.close();
    });
    let catBytes = 0;
    const catSeconds = await ctx.measure(async () => {
      const art = await openArtifact(repo, 'v1');
      const b = await art.fs.readFile('small/target.txt');
      if (b.length !== 1024) throw new Error('cat read the wrong file');
      catBytes = art.stats().bytes;
      await art.close();
    });
    // The same cat again with the local cache warm: the tag is resolved, nothing else fetched.
    const cache = new EstargzCache(join(dir, '..', `cache-${r.name.replace(/\W/g, '')}`));
    const warmup = await openArtifact(repo, 'v1', { cache });
    await warmup.fs.readFile('small/target.txt');
    await warmup.close();
    let warmBytes = 0;
    const warmSeconds = await ctx.measure(async () => {
      const art = await openArtifact(repo, 'v1', { cache });
      await art.fs.readFile('small/target.txt');
      warmBytes = art.stats().bytes;
      await art.close();
    });
    // A full pull of the layer: download, verify, decompress.
    const pullSeconds = await ctx.measure(async () => {
      await pipeline(await repo.fetch(pushed.layer), createGunzip(), new Writable({ write: (_c, _e, cb) => cb() }));
    });
    const bigSize = (await stat(join(dir, 'big.bin'))).size;
    const bigSeconds = await ctx.measure(async () => {
      const art = await openArtifact(repo, 'v1');
      await pipeline(art.fs.createReadStream('big.bin'), new Writable({ write: (_c, _e, cb) => cb() }));
      await art.close();
    });
    return {
      pushed,
      fig: {
        warmBytes,
        warmSeconds,
        lsBytes,
        lsSeconds,
        catBytes,
        catSeconds,
        pullSeconds,
        bigMBps: bigSize / MiB / bigSeconds,
        pullMBps: pushed.build.uncompressedSize / MiB / pullSeconds,
      },
    };
  } finally {
    await reg.close();
  }
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const sz = SIZES[ctx.scale];
  const dir = join(ctx.tmp, 'tree');
  ctx.log(`writing ${sz.total / MiB} MiB in ${sz.files + 2} files`);
  await makeTree(dir, sz);
  const plain = join(ctx.tmp, 'plain.tar.gz');
  await ctx.exec('tar', ['-czf', plain, '-C', dir, '.']);
  const plainSize = (await stat(plain)).size;

  const w = await ctx.startWharf();
  const d = await ctx.startDistribution();
  try {
    ctx.log('wharf serve');
    const a = await measureOn(ctx, w, dir, undefined);
    ctx.log('Distribution');
    const b = d ? await measureOn(ctx, d, dir, undefined) : undefined;
    const layer = a.pushed.build.size;
    const pct = (n: number): number => (100 * n) / layer;
    const note = d ? 'wharf: against wharf serve; peer: against Distribution; Wharf client both' : 'Distribution missing';
    const KiB = 1024;
    return [
      ctx.row({ metric: `layer: eStargz vs plain tar.gz (${(100 * (layer / plainSize - 1)).toFixed(2)}% larger)`, wharf: layer / MiB, peer: plainSize / MiB, unit: 'MiB', lowerIsBetter: true, note: 'peer: GNU tar -czf of the same tree' }),
      ctx.row({ metric: `ls ${sz.total / MiB} MiB, ${sz.files + 2} files: bytes fetched`, wharf: a.fig.lsBytes / KiB, peer: b ? b.fig.lsBytes / KiB : null, unit: 'KiB', lowerIsBetter: true, note }),
      ctx.row({ metric: 'ls: share of the layer fetched (goal < 1%)', wharf: pct(a.fig.lsBytes), peer: b ? pct(b.fig.lsBytes) : null, unit: '%', lowerIsBetter: true, note }),
      ctx.row({ metric: 'ls: time', wharf: a.fig.lsSeconds, peer: b?.fig.lsSeconds ?? null, unit: 's', lowerIsBetter: true, note }),
      ctx.row({ metric: 'cat 1 KiB file: bytes fetched (goal < 5 MiB)', wharf: a.fig.catBytes / KiB, peer: b ? b.fig.catBytes / KiB : null, unit: 'KiB', lowerIsBetter: true, note: `${note}; footer, TOC and one chunk` }),
      ctx.row({ metric: 'cat 1 KiB file: time', wharf: a.fig.catSeconds, peer: b?.fig.catSeconds ?? null, unit: 's', lowerIsBetter: true, note }),
      ctx.row({ metric: 'cat 1 KiB file, cache warm: blob bytes fetched', wharf: a.fig.warmBytes / KiB, peer: b ? b.fig.warmBytes / KiB : null, unit: 'KiB', lowerIsBetter: true, note: `${note}; only the tag and manifest are asked` }),
      ctx.row({ metric: 'cat 1 KiB file, cache warm: time', wharf: a.fig.warmSeconds, peer: b?.fig.warmSeconds ?? null, unit: 's', lowerIsBetter: true, note }),
      ctx.row({ metric: 'full pull of the layer (fetch, verify, gunzip): time', wharf: a.fig.pullSeconds, peer: b?.fig.pullSeconds ?? null, unit: 's', lowerIsBetter: true, note }),
      ctx.row({ metric: `cat ${sz.big / MiB} MiB file: throughput`, wharf: a.fig.bigMBps, peer: b?.fig.bigMBps ?? null, unit: 'MiB/s', note: `${note}; goal ≥ 80% of full pull` }),
      ctx.row({ metric: 'full pull: throughput (uncompressed)', wharf: a.fig.pullMBps, peer: b?.fig.pullMBps ?? null, unit: 'MiB/s', note }),
    ];
  } finally {
    await w.stop();
    await d?.stop();
  }
}
