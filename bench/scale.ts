/**
 * Section "scale": several replicas behind nginx (docs/SCALE-OUT.md). Wharf with 1, 2 and 3
 * replicas over one RGW bucket and one PostgreSQL database, then Distribution's s3 driver with 2
 * replicas (one shared http.secret) on its own bucket, behind the same nginx configuration; each
 * through the balancer: manifest GETs at 50 connections and small-artifact pushes from 8 clients,
 * failed pushes counted rather than thrown. On a 2-core machine more replicas cannot be faster;
 * the aim is that 3 are not slower than 1 (no lock or database round trip on a hot read path that
 * one replica does not pay).
 */
import { V2, manifestRates } from './http.js';
import { distributionVersion, hasBin, median, REGISTRY_BIN, startDistributionProcess } from './lib.js';
import { makeBucket, s3Options, startRgw, type Rgw } from '../test/helpers/rgw.js';
import { createDatabase, startPg } from '../test/helpers/pg.js';
import { startNginx } from '../test/helpers/nginx.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SIZES = {
  small: { artifacts: 60, seconds: 3 },
  full: { artifacts: 300, seconds: 10 },
} as const;

function missing(): string | undefined {
  if (!hasBin('radosgw') || !hasBin('ceph-mon') || !hasBin('ceph-osd')) return 'Ceph RGW is not installed (apt-get install radosgw ceph-mon ceph-osd)';
  if (!existsSync('/usr/lib/postgresql/15/bin/postgres')) return 'PostgreSQL 15 is not installed (apt-get install postgresql)';
  if (!existsSync('/usr/sbin/nginx')) return 'nginx is not installed (apt-get install nginx-light)';
  if (!hasBin(REGISTRY_BIN)) return `Distribution (${REGISTRY_BIN}) is not installed (apt-get install docker-registry)`;
  return undefined;
}

interface Figures {
  get: number[];
  pushes: number[];
  failed: number;
}

/** Pushes `count` small artifacts from 8 clients through `url`; pushes/s and how many failed (an error, not a throw). */
async function pushes(v2: V2, tag: string, count: number): Promise<{ rate: number; failed: number }> {
  let next = 0;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < count; i = next++) {
        try {
          await v2.pushSmallArtifact(`bench/scale-${i % 4}`, `${tag}-${i}`, { tag, i });
        } catch {
          failed++;
        }
      }
    }),
  );
  return { rate: (count - failed) / (Number(process.hrtime.bigint() - t0) / 1e9), failed };
}

/** `replicas` behind nginx: figures over ctx.runs runs. */
async function measure(ctx: BenchContext, replicas: BenchRegistry[], label: string, sz: (typeof SIZES)[keyof typeof SIZES]): Promise<Figures> {
  const lb = await startNginx(replicas.map((r) => r.host));
  const v2 = new V2(lb.url, 64);
  const f: Figures = { get: [], pushes: [], failed: 0 };
  try {
    // The artifact the GETs read, and one untimed round of each.
    await v2.pushSmallArtifact('bench/scale-get', 'target', { label });
    await manifestRates(lb.url, v2, '/v2/bench/scale-get/manifests/target', 1);
    for (let i = 0; i < ctx.runs; i++) {
      const p = await pushes(v2, `${label.replace(/\W+/g, '')}-${i}`, sz.artifacts);
      f.pushes.push(p.rate);
      f.failed += p.failed;
      f.get.push((await manifestRates(lb.url, v2, '/v2/bench/scale-get/manifests/target', sz.seconds)).get);
    }
    ctx.log(`${label}: ${f.pushes.map((x) => x.toFixed(1)).join('/')} small artifacts/s, manifest GET ${f.get.map((x) => x.toFixed(0)).join('/')} req/s, ${f.failed} failed pushes`);
  } finally {
    await v2.close();
    await lb.stop();
  }
  return f;
}

/**
 * Waits until each new replica has read the audit journal that the runs before left in the
 * database into its own index (a query of the log waits for that): a fresh replica reads the
 * whole journal once, which is start-up work, not the load measured here. Logs how long it took.
 */
async function indexed(ctx: BenchContext, replicas: BenchRegistry[], dbUrl: string): Promise<void> {
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  const records = await db.query<{ n: string | null }>('SELECT sum(records)::text AS n FROM wharf_audit_journal').finally(() => db.end());
  const t0 = Date.now();
  await Promise.all(
    replicas.map(async (r) => {
      const res = await fetch(`${r.url}/api/v1/audit?limit=1`);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${r.url}: GET /api/v1/audit: ${res.status}`);
    }),
  );
  ctx.log(`${replicas.length} new replica(s) read the audit journal (${Number(records.rows[0]?.n ?? 0)} records) into their index in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/**
 * This machine's own limit for "3 replicas not slower than 1": manifest GETs through the same
 * nginx to replicas that share no database, only one directory (read-only here, so that is safe),
 * each with its own audit log. Three processes and the balancer, the load generator and the rest
 * share the 2 cores; whatever this ratio falls short of 1 is not the database's doing.
 */
async function sharedNothing(ctx: BenchContext, sz: (typeof SIZES)[keyof typeof SIZES]): Promise<{ one: number[]; three: number[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-scale-fs-'));
  const out = { one: [] as number[], three: [] as number[] };
  try {
    for (const n of [1, 3]) {
      const replicas: BenchRegistry[] = [];
      try {
        for (let i = 0; i < n; i++) replicas.push(await ctx.startWharf({ data: dir, config: { storage: { fsync: false }, audit: { path: join(dir, `audit-${i}`, 'audit.db') } } }));
        const lb = await startNginx(replicas.map((r) => r.host));
        const v2 = new V2(lb.url, 64);
        try {
          if (n === 1) await v2.pushSmallArtifact('bench/scale-get', 'target', { label: 'fs' });
          await manifestRates(lb.url, v2, '/v2/bench/scale-get/manifests/target', 1);
          for (let i = 0; i < ctx.runs; i++) (n === 1 ? out.one : out.three).push((await manifestRates(lb.url, v2, '/v2/bench/scale-get/manifests/target', sz.seconds)).get);
        } finally {
          await v2.close();
          await lb.stop();
        }
      } finally {
        for (const r of replicas) await r.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  ctx.log(`replicas sharing one directory, no database: manifest GET ×1 ${out.one.map((x) => x.toFixed(0)).join('/')}, ×3 ${out.three.map((x) => x.toFixed(0)).join('/')} req/s`);
  return out;
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const why = missing();
  if (why) {
    ctx.log(`skipped: ${why}`);
    return [];
  }
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sz = SIZES[ctx.scale];
  const rgw: Rgw = await startRgw();
  const cluster = await startPg();
  const wharf: Figures[] = [];
  const quiet: Figures[] = [];
  let dist: Figures | undefined;
  let bound: { one: number[]; three: number[] } | undefined;
  try {
    const wb = await makeBucket(rgw, 'bench-scale-wharf');
    const url = await createDatabase(cluster, 'bench_scale');
    const config = { storage: { driver: 's3' as const, s3: s3Options(rgw, wb) }, database: { url } };
    // As docs/SCALE-OUT.md deploys them: one replica keeps the audit index (audit/UI queries go
    // there), the others only write the journal (audit.index: false); then 3 that all keep one.
    for (const [n, indexes] of [[1, 1], [2, 1], [3, 1], [3, 3]] as const) {
      const replicas: BenchRegistry[] = [];
      try {
        for (let i = 0; i < n; i++) replicas.push(await ctx.startWharf({ config: i < indexes ? config : { ...config, audit: { index: false } } }));
        await indexed(ctx, replicas.slice(0, indexes), url);
        wharf.push(await measure(ctx, replicas, `wharf serve ×${n}, ${indexes} keeping the audit index`, sz));
      } finally {
        for (const r of replicas) await r.stop();
      }
    }
    // The same with the audit log off: what the read and push paths cost apart from the audit
    // index, which every replica keeps of every replica's records (docs/SCALE-OUT.md).
    for (const n of [1, 3]) {
      const replicas: BenchRegistry[] = [];
      try {
        for (let i = 0; i < n; i++) replicas.push(await ctx.startWharf({ config: { ...config, audit: { enabled: false } } }));
        quiet.push(await measure(ctx, replicas, `wharf serve ×${n}, audit log off`, sz));
      } finally {
        for (const r of replicas) await r.stop();
      }
    }
    bound = await sharedNothing(ctx, sz);
    const db = await makeBucket(rgw, 'bench-scale-distribution');
    const replicas: BenchRegistry[] = [];
    try {
      for (let i = 0; i < 2; i++) replicas.push(await startDistributionProcess({ s3: { endpoint: rgw.endpoint, region: rgw.region, bucket: db, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } }));
      dist = await measure(ctx, replicas, 'Distribution ×2', sz);
    } finally {
      for (const r of replicas) await r.stop();
    }
  } finally {
    await cluster.stop();
    await rgw.stop();
  }
  const [one, two, three, threeIndexing] = wharf as [Figures, Figures, Figures, Figures];
  const [quietOne, quietThree] = quiet as [Figures, Figures];
  const d = dist!;
  const vs = `vs Distribution ${distributionVersion()} (s3 driver) ×2 behind the same nginx, its own bucket on the same RGW`;
  const each = `${sz.artifacts} pushes per run, 8 clients; GETs ${sz.seconds} s per run, 50 connections; one replica keeps the audit index, the others have audit.index: false`;
  return [
    ctx.row({ metric: 'small artifacts through nginx, 2 replicas', wharf: median(two.pushes), peer: median(d.pushes), unit: 'artifacts/s', note: `${vs}; ${each}`, goalRatio: 2 }),
    ctx.row({ metric: 'manifest GET through nginx, 2 replicas', wharf: median(two.get), peer: median(d.get), unit: 'req/s', note: `${vs}; ${each}`, goalRatio: 2 }),
    ctx.row({ metric: 'failed pushes, 2 replicas', wharf: two.failed, peer: d.failed, unit: 'pushes', lowerIsBetter: true, goalMax: 1, note: `${vs}; over ${ctx.runs} runs of ${sz.artifacts}` }),
    ctx.row({ metric: 'small artifacts through nginx, 3 replicas vs 1', wharf: median(three.pushes), peer: median(one.pushes), unit: 'artifacts/s', note: `peer: Wharf with 1 replica behind the same nginx (2 replicas: ${median(two.pushes).toFixed(1)}/s); ${each}`, goalRatio: 1 }),
    ctx.row({ metric: 'manifest GET through nginx, 3 replicas vs 1', wharf: median(three.get), peer: median(one.get), unit: 'req/s', note: `peer: Wharf with 1 replica behind the same nginx (2 replicas: ${median(two.get).toFixed(0)} req/s); ${each}`, goalRatio: 1 }),
    ctx.row({
      metric: 'small artifacts through nginx, 3 replicas all keeping the audit index vs 1',
      wharf: median(threeIndexing.pushes),
      peer: median(one.pushes),
      unit: 'artifacts/s',
      note: `the default (audit.index: true everywhere): each replica reads every replica's records into its own index; ${sz.artifacts} pushes per run, 8 clients`,
    }),
    ctx.row({
      metric: 'manifest GET through nginx, 3 replicas all keeping the audit index vs 1',
      wharf: median(threeIndexing.get),
      peer: median(one.get),
      unit: 'req/s',
      note: `the default (audit.index: true everywhere): each replica reads every replica's records into its own index; GETs ${sz.seconds} s per run, 50 connections`,
    }),
    ctx.row({
      metric: 'small artifacts through nginx, 3 replicas vs 1, audit log off',
      wharf: median(quietThree.pushes),
      peer: median(quietOne.pushes),
      unit: 'artifacts/s',
      note: `the rows above without the audit log (audit.enabled: false), same bucket and database; ${sz.artifacts} pushes per run, 8 clients; GETs ${sz.seconds} s per run, 50 connections`,
      goalRatio: 1,
    }),
    ctx.row({
      metric: 'manifest GET through nginx, 3 replicas vs 1, audit log off',
      wharf: median(quietThree.get),
      peer: median(quietOne.get),
      unit: 'req/s',
      note: `the rows above without the audit log (audit.enabled: false), same bucket and database; ${sz.artifacts} pushes per run, 8 clients; GETs ${sz.seconds} s per run, 50 connections`,
      goalRatio: 1,
    }),
    ctx.row({
      metric: 'manifest GET, 3 replicas vs 1, sharing no database',
      wharf: median(bound!.three),
      peer: median(bound!.one),
      unit: 'req/s',
      note: `this machine's limit for the row above: replicas over one directory, read-only, each with its own audit log; peer: 1 such replica; ${sz.seconds} s per run, 50 connections`,
    }),
    ctx.row({ metric: 'failed pushes, 1 and 3 replicas', wharf: one.failed + three.failed, peer: null, unit: 'pushes', lowerIsBetter: true, goalMax: 1, note: `over ${ctx.runs} runs of ${sz.artifacts} each` }),
  ];
}
