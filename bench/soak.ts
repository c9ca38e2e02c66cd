/**
 * Memory under sustained load (issue 25): `wharf serve` beside Distribution, one at a time, each
 * fresh. 32 clients run the mix of a busy registry for the first half of BENCH_SOAK_SECONDS
 * (default 600): 70% pulls (blobs and manifests of seeded artifacts), 20% small pushes (a 1 KiB
 * layer and a manifest), 10% tag lists and referrers; then push-only for the second half. The
 * server's RSS is read from /proc every second: its idle value (fresh, before anything is
 * pushed), its peak, its value at half-time against its highest in the second half (a server that
 * keeps growing under a steady load leaks), and its value 60 s after the load stopped.
 * It runs only when asked (`--only soak`): ten minutes per registry.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { V2, sha256 } from './http.js';
import { distributionVersion, rssOf } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const CLIENTS = 32;
/** What the second half runs against the first: the mix, then its pushes alone. */
const MIX = { pull: 0.7, push: 0.2 } as const;
const AFTER = 60;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar';

interface Seeded {
  repo: string;
  tag: string;
  digest: string;
  blobs: string[];
}

interface Figures {
  ops: number;
  errors: number;
  idle: number | null;
  peak: number | null;
  half: number | null;
  secondHalfMax: number | null;
  after: number | null;
}

const manifestOf = (config: Buffer, layers: Array<{ digest: string; size: number }>, subject?: { digest: string; size: number }): Buffer =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: CONFIG, digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: LAYER, ...l })),
      ...(subject ? { subject: { mediaType: MANIFEST, ...subject } } : {}),
    }),
  );

/** Artifacts to pull: each a config and three layers (1 KiB, 64 KiB, 1 MiB), and a referrer of each. */
async function seed(v2: V2, count: number): Promise<Seeded[]> {
  const out: Seeded[] = [];
  for (let i = 0; i < count; i++) {
    const repo = `soak/pull${i % 4}`;
    const config = Buffer.from(JSON.stringify({ soak: i }));
    await v2.pushMonolithic(repo, sha256(config), config.length, () => config);
    const layers = [];
    for (const size of [1024, 64 << 10, 1 << 20]) {
      const b = randomBytes(size);
      await v2.pushMonolithic(repo, sha256(b), size, () => b);
      layers.push({ digest: sha256(b), size });
    }
    const m = manifestOf(config, layers);
    await v2.putManifest(repo, `v${i}`, MANIFEST, m);
    const sig = manifestOf(config, [], { digest: sha256(m), size: m.length });
    await v2.putManifest(repo, sha256(sig), MANIFEST, sig);
    out.push({ repo, tag: `v${i}`, digest: sha256(m), blobs: layers.map((l) => l.digest) });
  }
  return out;
}

async function smallPush(v2: V2, lane: number, n: number): Promise<void> {
  const repo = `soak/push${lane % 4}`;
  const config = Buffer.from(JSON.stringify({ lane, n }));
  const layer = randomBytes(1024);
  await v2.pushMonolithic(repo, sha256(config), config.length, () => config);
  await v2.pushMonolithic(repo, sha256(layer), layer.length, () => layer);
  await v2.putManifest(repo, `l${lane}-${n}`, MANIFEST, manifestOf(config, [{ digest: sha256(layer), size: layer.length }]));
}

async function drain(r: Awaited<ReturnType<V2['req']>>): Promise<void> {
  await r.body.dump();
}

async function oneOp(v2: V2, seeded: Seeded[], lane: number, n: number, pushOnly: boolean): Promise<void> {
  const x = pushOnly ? MIX.pull : Math.random();
  const a = seeded[Math.floor(Math.random() * seeded.length)]!;
  if (x < MIX.pull / 2) {
    await v2.pull(a.repo, a.blobs[Math.floor(Math.random() * a.blobs.length)]!);
  } else if (x < MIX.pull) {
    if (pushOnly) return smallPush(v2, lane, n);
    const ref = Math.random() < 0.5 ? a.tag : a.digest;
    await drain(await v2.req({ method: 'GET', path: `/v2/${a.repo}/manifests/${ref}`, headers: { accept: MANIFEST } }, [200]));
  } else if (x < MIX.pull + MIX.push) {
    await smallPush(v2, lane, n);
  } else if (Math.random() < 0.5) {
    await drain(await v2.req({ method: 'GET', path: `/v2/${a.repo}/tags/list?n=100` }, [200]));
  } else {
    // Distribution 2.8 has no referrers API: its 404 is its answer, counted like any other.
    await drain(await v2.req({ method: 'GET', path: `/v2/${a.repo}/referrers/${a.digest}` }, [200, 404]));
  }
}

async function soak(ctx: BenchContext, reg: BenchRegistry, seconds: number): Promise<Figures> {
  const pid = reg.pid!;
  const rss = async (): Promise<number | null> => (await rssOf(pid))?.rss ?? null;
  const v2 = new V2(reg.url, CLIENTS);
  const f: Figures = { ops: 0, errors: 0, idle: await rss(), peak: null, half: null, secondHalfMax: null, after: null };
  try {
    const seeded = await seed(v2, 40);
    const t0 = Date.now();
    const half = t0 + (seconds * 1000) / 2;
    const until = t0 + seconds * 1000;
    let running = true;
    const samples: Array<{ t: number; rss: number }> = [];
    const sampler = (async () => {
      while (running) {
        const r = await rss();
        if (r !== null) samples.push({ t: Date.now(), rss: r });
        await sleep(1000);
      }
    })();
    let lastErr = '';
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_x, lane) => {
        for (let n = 0; Date.now() < until; n++) {
          try {
            await oneOp(v2, seeded, lane, n, Date.now() >= half);
            f.ops++;
          } catch (err) {
            f.errors++;
            lastErr = (err as Error).message;
          }
        }
      }),
    );
    running = false;
    await sampler;
    if (f.errors > 0) ctx.log(`${reg.name}: ${f.errors} errors, the last: ${lastErr.slice(0, 200)}`);
    f.peak = Math.max(...samples.map((s) => s.rss));
    f.half = samples.find((s) => s.t >= half)?.rss ?? null;
    f.secondHalfMax = Math.max(...samples.filter((s) => s.t >= half).map((s) => s.rss));
    await v2.close();
    await sleep(AFTER * 1000);
    f.after = await rss();
    f.peak = Math.max(f.peak, (await rssOf(pid))?.peak ?? 0);
    ctx.log(`${reg.name}: ${f.ops} ops (${(f.ops / seconds).toFixed(0)}/s), RSS idle ${f.idle?.toFixed(0)} → peak ${f.peak.toFixed(0)}, at half-time ${f.half?.toFixed(0)}, second half up to ${f.secondHalfMax.toFixed(0)}, ${AFTER} s after ${f.after?.toFixed(0)} MiB`);
    return f;
  } finally {
    await v2.close().catch(() => undefined);
  }
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const seconds = Math.max(10, Number(process.env.BENCH_SOAK_SECONDS ?? 600) || 600);
  const short = seconds < 600 ? ` (short mode: BENCH_SOAK_SECONDS=${seconds})` : '';
  ctx.log(`${seconds} s of load per registry, ${CLIENTS} clients, then ${AFTER} s quiet${short}`);
  // One registry at a time: each has the machine's cores to itself.
  const w = await ctx.startWharf();
  let wf: Figures;
  try {
    wf = await soak(ctx, w, seconds);
  } finally {
    await w.stop();
  }
  const d = await ctx.startDistribution();
  let df: Figures | undefined;
  try {
    if (d) df = await soak(ctx, d, seconds);
  } finally {
    await d?.stop();
  }
  const vs = d ? `vs Distribution ${distributionVersion()}` : 'Distribution missing';
  const m = Math.round(seconds / 2);
  const drift = (x: Figures | undefined): number | null => (x?.half && x.secondHalfMax !== null ? (x.secondHalfMax / x.half - 1) * 100 : null);
  const back = (x: Figures | undefined): number | null => (x?.after && x.idle ? x.after / x.idle : null);
  const row = (metric: string, wharf: number | null, peer: number | null, unit: string, note: string, goal: { goalMax?: number; lowerIsBetter?: boolean } = {}): BenchRow =>
    ctx.row({ metric, wharf, peer, unit, note: `${vs}; ${note}${short}`, ...goal });
  return [
    row('soak: operations/s', wf.ops / seconds, df ? df.ops / seconds : null, 'ops/s', `${CLIENTS} clients; an operation is one pull, tag list or referrers GET, or one small push (5 requests); mix for ${m} s, then push-only for ${seconds - m} s`),
    row('soak: errors', wf.errors, df?.errors ?? null, 'requests', 'failed operations', { lowerIsBetter: true }),
    row('soak: server RSS idle', wf.idle, df?.idle ?? null, 'MiB', 'fresh, before the seed', { lowerIsBetter: true }),
    row('soak: server peak RSS', wf.peak, df?.peak ?? null, 'MiB', 'sampled every second, and VmHWM', { lowerIsBetter: true, goalMax: 192 }),
    row(`soak: server RSS at half-time (${m} s)`, wf.half, df?.half ?? null, 'MiB', 'end of the mix', { lowerIsBetter: true }),
    row('soak: highest RSS in the second half', wf.secondHalfMax, df?.secondHalfMax ?? null, 'MiB', 'push-only', { lowerIsBetter: true }),
    row('soak: growth in the second half over half-time', drift(wf), drift(df), '%', 'highest RSS in the second half / RSS at half-time - 1', { lowerIsBetter: true, goalMax: 5 }),
    row(`soak: server RSS ${AFTER} s after the load`, wf.after, df?.after ?? null, 'MiB', 'quiet', { lowerIsBetter: true }),
    row(`soak: RSS ${AFTER} s after the load over idle`, back(wf), back(df), 'x', 'fresh idle RSS as the base', { lowerIsBetter: true, goalMax: 1.5 }),
  ];
}
