/**
 * The pull-through cache beside Distribution's proxy mode (`proxy: remoteurl:`), both in front of
 * the same upstream (a plain Distribution), in one run:
 * - cached pulls of small images (a manifest and 5 small blobs), 10 clients, images/s, by tag
 *   (what clients do; Distribution asks its upstream about the tag on every pull, Wharf trusts it
 *   for its TTL) and by digest (nothing to revalidate on either side);
 * - a cold pull of one large blob through the cache, beside pulling it straight from the upstream,
 *   through Distribution's proxy, and through a bare Node relay (the runtime's limit for a cache
 *   that hashes and writes nothing);
 * - RSS growth while 20 clients pull 20 different uncached blobs.
 * With --baseline, the baseline build's cache is one more side, in front of the same upstream; the
 * two Wharf builds take each run in turns.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BigBlob, V2, opsByCount, sha256 } from './http.js';
import { distributionVersion, median, rssOf, sampleRss, startDistributionProcess, startNodeRelay } from './lib.js';
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
  const wharfs: BenchRegistry[] = [];
  let dist: BenchRegistry | undefined;
  let relay: BenchRegistry | undefined;
  const clients: V2[] = [];
  try {
    const images = await pushImages(up, count);
    // Every build of Wharf (with --baseline, 'base' is that revision's), then Distribution.
    for (const b of ctx.builds) wharfs.push(await b.start({ config: { log: { level: 'warn' }, proxy: { upstreams: [{ namespace: 'up', url: upstream.url, ttl: '1h' }] } } }));
    dist = await startDistributionProcess({ proxy: { remoteurl: upstream.url } });
    const sides = [...wharfs.map((reg, k) => ({ name: k === 0 ? 'wharf' : 'base', reg, prefix: 'up/' })), { name: 'dist', reg: dist, prefix: '' }];
    const v2s = new Map(sides.map((s) => [s.name, new V2(s.reg.url, 16)]));
    clients.push(...v2s.values());
    /** Run r's order of a group: the Wharf builds swap places every other run. */
    const turns = <T>(group: T[], r: number): T[] => (r % 2 ? [...group].reverse() : group);

    // Each side's two figures back to back: a server left idle for the other side's half minute
    // measures differently (wharf serve's blob GETs slow down after ~30 s idle, proxy or not).
    // The Wharf builds are one group, measured run by run in turns; Distribution the other.
    const rates = new Map<string, Record<string, number>>();
    for (const group of [sides.filter((s) => s.name !== 'dist'), sides.filter((s) => s.name === 'dist')]) {
      for (const s of group) {
        const v2 = v2s.get(s.name)!;
        // Warm the cache (every image once), then both code paths (by tag and by digest).
        for (const img of images) await pullImage(v2, s.prefix, img, false);
        await opsByCount(images.length * 4, 10, (i) => pullImage(v2, s.prefix, images[i % images.length]!, i % 2 === 1));
      }
      for (const byDigest of [false, true]) {
        const secs = new Map(group.map((s) => [s.name, [] as number[]]));
        for (let r = 0; r < ctx.runs; r++) {
          for (const s of turns(group, r)) {
            const v2 = v2s.get(s.name)!;
            const t0 = process.hrtime.bigint();
            await opsByCount(pulls, 10, (i) => pullImage(v2, s.prefix, images[i % images.length]!, byDigest));
            secs.get(s.name)!.push(Number(process.hrtime.bigint() - t0) / 1e9);
          }
        }
        const key = byDigest ? 'digest' : 'tag';
        for (const s of group) rates.set(key, { ...rates.get(key), [s.name]: pulls / median(secs.get(s.name)!) });
        if (wharfs.length > 1 && group.length > 1) ctx.log(`cached pulls by ${key}, images/s each run: ${group.map((s) => `${s.reg.name} ${secs.get(s.name)!.map((t) => (pulls / t).toFixed(0)).join('/')}`).join(', ')}`);
      }
    }
    for (const byDigest of [false, true]) {
      const rate = rates.get(byDigest ? 'digest' : 'tag')!;
      rows.push(
        ctx.row({
          metric: `cached small-image pulls (manifest + ${LAYERS} blobs of 4 KiB), 10 clients, ${byDigest ? 'by digest' : 'by tag'}`,
          wharf: rate.wharf!,
          peer: rate.dist!,
          ...(wharfs.length > 1 ? { baseline: rate.base ?? null } : {}),
          unit: 'images/s',
          note: `vs Distribution ${distributionVersion()} in proxy mode, same upstream; ${pulls} pulls of ${count} images`,
        }),
      );
    }

    // A cold pull of one large blob through each cache, beside pulling it straight from the upstream.
    const size = ctx.scale === 'full' ? 1 << 30 : 256 << 20;
    const big = await BigBlob.create(join(ctx.tmp, 'big.bin'), size);
    const variants: string[] = [];
    const cold: Record<string, number[]> = { wharf: [], base: [], direct: [], dist: [], relay: [] };
    relay = await startNodeRelay(upstream.url);
    const viaRelay = new V2(relay.url, 4);
    clients.push(viaRelay);
    for (let r = 0; r < ctx.runs; r++) {
      const variant = `cold-${r}`;
      const digest = await big.digest(variant);
      await up.pushMonolithic('bench/big', digest, size, () => big.range(variant));
      variants.push(variant);
      const builds = turns(
        sides.filter((s) => s.name !== 'dist').map((s) => [s.name, v2s.get(s.name)!, 'up/bench/big'] as const),
        r,
      );
      // Every side in turns, the order reversed every other run: the machine's load drifts.
      for (const [name, v2, repo] of turns([['direct', up, 'bench/big'] as const, ...builds, ['relay', viaRelay, 'bench/big'] as const, ['dist', v2s.get('dist')!, 'bench/big'] as const], r)) {
        const t0 = process.hrtime.bigint();
        const n = await v2.pull(repo, digest);
        if (n !== size) throw new Error(`${name}: pulled ${n} of ${size} bytes`);
        cold[name]!.push(size / 2 ** 20 / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    if (wharfs.length > 1) ctx.log(`cold pulls, MiB/s each run: ${Object.entries(cold).map(([k, xs]) => `${k} ${xs.map((x) => x.toFixed(0)).join('/')}`).join(', ')}`);
    rows.push(
      ctx.row({
        metric: `cold pull of a ${size >> 20} MiB blob through the cache`,
        wharf: med(cold.wharf!),
        peer: med(cold.direct!),
        unit: 'MiB/s',
        ...(wharfs.length > 1 ? { baseline: med(cold.base!) } : {}),
        note: 'vs the same blob straight from the upstream (goal: at least 0.8)',
      }),
      ctx.row({
        metric: `cold pull of a ${size >> 20} MiB blob, Wharf vs Distribution proxy`,
        wharf: med(cold.wharf!),
        peer: med(cold.dist!),
        unit: 'MiB/s',
        goalRatio: 0.8,
        note: `vs Distribution ${distributionVersion()} in proxy mode (which answers from the upstream unverified, and fetches the blob a second time to store it)`,
      }),
      ctx.row({
        metric: `cold pull of a ${size >> 20} MiB blob, Wharf vs a bare Node relay`,
        wharf: med(cold.wharf!),
        peer: med(cold.relay!),
        unit: 'MiB/s',
        goalRatio: 0.85,
        note: `vs node:http piped from the upstream into the response in one process on ${process.version}: no hash, no disk`,
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
        ...(wharfs.length > 1 ? { baseline: growth.base ?? null } : {}),
        note: `peak RSS minus RSS before; vs Distribution ${distributionVersion()} in proxy mode`,
      }),
    );
    await rm(big.file, { force: true });
    await rm(many.file, { force: true });
    return rows;
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    await up.close().catch(() => undefined);
    for (const w of wharfs) await w.stop();
    await dist?.stop();
    await relay?.stop();
    await upstream.stop();
  }
}
