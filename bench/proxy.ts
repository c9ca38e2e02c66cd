/**
 * The pull-through cache beside Distribution's proxy mode (`proxy: remoteurl:`), both in front of
 * the same upstream (a plain Distribution), in one run:
 * - cached pulls of small images (a manifest and 5 small blobs), 10 clients, images/s, by tag
 *   (what clients do; Distribution asks its upstream about the tag on every pull, Wharf trusts it
 *   for its TTL) and by digest (nothing to revalidate on either side);
 * - a cold pull of one large blob through the cache, beside pulling it straight from the upstream;
 * - RSS growth while 20 clients pull 20 different uncached blobs.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BigBlob, V2, opsByCount, sha256 } from './http.js';
import { distributionVersion, rssOf, sampleRss, startDistributionProcess } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const LAYERS = 5;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

interface Img {
  repo: string;
  digest: string;
  blobs: string[];
}

async function pushImages(v2: V2, count: number): Promise<Img[]> {
  const out: Img[] = [];
  for (let i = 0; i < count; i++) {
    const repo = `bench/img${i}`;
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: i }));
    const layers = Array.from({ length: LAYERS }, () => randomBytes(4096));
    for (const b of [config, ...layers]) await v2.pushMonolithic(repo, sha256(b), b.length, () => b);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
      }),
    );
    await v2.putManifest(repo, 'v1', 'application/vnd.oci.image.manifest.v1+json', manifest);
    out.push({ repo, digest: sha256(manifest), blobs: [sha256(config), ...layers.map(sha256)] });
  }
  return out;
}

/** One image pull as a client does it: the manifest, then its blobs in parallel. */
async function pullImage(v2: V2, prefix: string, img: Img, byDigest: boolean): Promise<void> {
  const r = await v2.req({ method: 'GET', path: `/v2/${prefix}${img.repo}/manifests/${byDigest ? img.digest : 'v1'}`, headers: { accept: ACCEPT } }, [200]);
  await r.body.dump();
  await Promise.all(img.blobs.map((d) => v2.pull(`${prefix}${img.repo}`, d)));
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const upstream = await ctx.startDistribution();
  if (!upstream) {
    return [ctx.row({ metric: 'cached small-image pulls, 10 clients (by tag)', wharf: null, peer: null, unit: 'images/s', note: 'needs Distribution as the upstream; not installed' })];
  }
  const count = ctx.scale === 'full' ? 50 : 20;
  const pulls = ctx.scale === 'full' ? 2000 : 400;
  const up = new V2(upstream.url, 16);
  let wharf: BenchRegistry | undefined;
  let dist: BenchRegistry | undefined;
  const clients: V2[] = [];
  try {
    const images = await pushImages(up, count);
    wharf = await ctx.startWharf({ config: { log: { level: 'warn' }, proxy: { upstreams: [{ namespace: 'up', url: upstream.url, ttl: '1h' }] } } });
    dist = await startDistributionProcess({ proxy: { remoteurl: upstream.url } });
    const sides = [
      { name: 'wharf', reg: wharf, prefix: 'up/' },
      { name: 'dist', reg: dist, prefix: '' },
    ];
    const v2s = new Map(sides.map((s) => [s.name, new V2(s.reg.url, 16)]));
    clients.push(...v2s.values());

    // Each side's two figures back to back: a server left idle for the other side's half minute
    // measures differently (wharf serve's blob GETs slow down after ~30 s idle, proxy or not).
    const rates = new Map<string, Record<string, number>>();
    for (const s of sides) {
      const v2 = v2s.get(s.name)!;
      // Warm the cache (every image once), then both code paths (by tag and by digest).
      for (const img of images) await pullImage(v2, s.prefix, img, false);
      await opsByCount(images.length * 4, 10, (i) => pullImage(v2, s.prefix, images[i % images.length]!, i % 2 === 1));
      for (const byDigest of [false, true]) {
        const t = await ctx.measure(async () => {
          await opsByCount(pulls, 10, (i) => pullImage(v2, s.prefix, images[i % images.length]!, byDigest));
        });
        const key = byDigest ? 'digest' : 'tag';
        rates.set(key, { ...rates.get(key), [s.name]: pulls / t });
      }
    }
    for (const byDigest of [false, true]) {
      const rate = rates.get(byDigest ? 'digest' : 'tag')!;
      rows.push(
        ctx.row({
          metric: `cached small-image pulls (manifest + ${LAYERS} blobs of 4 KiB), 10 clients, ${byDigest ? 'by digest' : 'by tag'}`,
          wharf: rate.wharf!,
          peer: rate.dist!,
          unit: 'images/s',
          note: `vs Distribution ${distributionVersion()} in proxy mode, same upstream; ${pulls} pulls of ${count} images`,
        }),
      );
    }

    // A cold pull of one large blob through each cache, beside pulling it straight from the upstream.
    const size = ctx.scale === 'full' ? 1 << 30 : 256 << 20;
    const big = await BigBlob.create(join(ctx.tmp, 'big.bin'), size);
    const variants: string[] = [];
    const cold: Record<string, number[]> = { wharf: [], direct: [], dist: [] };
    for (let r = 0; r < ctx.runs; r++) {
      const variant = `cold-${r}`;
      const digest = await big.digest(variant);
      await up.pushMonolithic('bench/big', digest, size, () => big.range(variant));
      variants.push(variant);
      for (const [name, v2, repo] of [
        ['direct', up, 'bench/big'],
        ['wharf', v2s.get('wharf')!, 'up/bench/big'],
        ['dist', v2s.get('dist')!, 'bench/big'],
      ] as const) {
        const t0 = process.hrtime.bigint();
        const n = await v2.pull(repo, digest);
        if (n !== size) throw new Error(`${name}: pulled ${n} of ${size} bytes`);
        cold[name]!.push(size / 2 ** 20 / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    rows.push(
      ctx.row({
        metric: `cold pull of a ${size >> 20} MiB blob through the cache`,
        wharf: med(cold.wharf!),
        peer: med(cold.direct!),
        unit: 'MiB/s',
        note: 'vs the same blob straight from the upstream (goal: at least 0.8)',
      }),
      ctx.row({
        metric: `cold pull of a ${size >> 20} MiB blob, Wharf vs Distribution proxy`,
        wharf: med(cold.wharf!),
        peer: med(cold.dist!),
        unit: 'MiB/s',
        note: `vs Distribution ${distributionVersion()} in proxy mode`,
      }),
    );
    // RSS while 20 clients pull 20 different uncached blobs at once, through each cache.
    const each = ctx.scale === 'full' ? 500 << 20 : 32 << 20;
    const many = await BigBlob.create(join(ctx.tmp, 'many.bin'), each);
    const digests: string[] = [];
    for (let i = 0; i < 20; i++) {
      const d = await many.digest(`many-${i}`);
      await up.pushMonolithic('bench/many', d, each, () => many.range(`many-${i}`));
      digests.push(d);
    }
    const growth: Record<string, number | null> = {};
    for (const s of sides) {
      const pid = s.reg.pid;
      const base = pid ? (await rssOf(pid))?.rss : undefined;
      const sampler = pid ? sampleRss(pid, 25) : undefined;
      const lanes = Array.from({ length: 20 }, () => new V2(s.reg.url, 1));
      await Promise.all(digests.map((d, i) => lanes[i]!.pull(`${s.prefix}bench/many`, d)));
      await Promise.all(lanes.map((l) => l.close()));
      const peak = await sampler?.stop();
      growth[s.name] = base !== undefined && peak !== undefined ? peak - base : null;
    }
    rows.push(
      ctx.row({
        metric: `RSS growth, 20 clients pulling 20 different uncached ${each >> 20} MiB blobs`,
        wharf: growth.wharf ?? null,
        peer: growth.dist ?? null,
        unit: 'MiB',
        lowerIsBetter: true,
        note: `peak RSS minus RSS before; vs Distribution ${distributionVersion()} in proxy mode`,
      }),
    );
    await rm(big.file, { force: true });
    await rm(many.file, { force: true });
    return rows;
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    await up.close().catch(() => undefined);
    await wharf?.stop();
    await dist?.stop();
    await upstream.stop();
  }
}
