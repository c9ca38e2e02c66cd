/**
 * The web UI (issue 23's "Performance"): the first page's gzipped bundle; the UI's JSON API at 20
 * connections over a registry of many repositories and tags and an audit log of many pulls; and a
 * large layer downloaded from the browser endpoint beside a /v2 blob GET of the same bytes.
 *
 * The registry is seeded in this process through the store's own API (RegistryStore over an
 * FsDriver, fsync off) and the audit log's (AuditDb), then `wharf serve` starts on that data
 * directory and its catalog index rebuilds from the store: 100,000 pushes over HTTP would take
 * longer than the rest of the bench. There is no peer for the UI: the API rows have goals only, and
 * the download's peer is the /v2 GET of the same server.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { Pool } from 'undici';
import { firstPageSize } from '../scripts/build.mjs';
import { downloadParams, recordParams, AuditDb, type DownloadParams, type RecordParams } from '../src/server/audit/db.js';
import { FsDriver } from '../src/server/driver/index.js';
import type { Descriptor, Digest } from '../src/spec/index.js';
import { RegistryStore } from '../src/server/store/index.js';
import { BigBlob, plainRequest, sha256 } from './http.js';
import { median, ROOT } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const MiB = 1 << 20;
const KiB = 1024;
const SIZES = {
  small: { repos: 1_000, tagsPerRepo: 10, pulls: 20_000, big: 128 * MiB, seconds: 2 },
  full: { repos: 10_000, tagsPerRepo: 10, pulls: 200_000, big: 1024 * MiB, seconds: 5 },
};
const CONNECTIONS = 20;
const GOAL_P99_MS = 50;
const GOAL_BUNDLE_KIB = 150;
const DAY = 86_400_000;

const TEAMS = ['platform', 'payments', 'search', 'data', 'ml', 'web', 'mobile', 'infra', 'security', 'ops', 'billing', 'growth', 'identity', 'media', 'edge', 'core', 'labs', 'tools', 'qa', 'docs'];
const WORDS = ['api', 'worker', 'gateway', 'frontend', 'backend', 'scheduler', 'indexer', 'crawler', 'ingest', 'export', 'reports', 'auth', 'cache', 'proxy', 'queue', 'notifier', 'mailer', 'resizer', 'encoder', 'model', 'dataset', 'chart', 'operator', 'agent', 'collector', 'exporter', 'sidecar', 'migrator', 'cron', 'uploader', 'renderer', 'router', 'ledger', 'invoice', 'catalog', 'checkout', 'inventory', 'pricing', 'ranking', 'feeds'];
/** The word searched for: in one repository name of WORDS.length, and in their descriptions. */
const SEARCH_WORD = 'ledger';

/** A deterministic pseudo-random source: the same registry on every run. */
function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => (s = (s * 1103515245 + 12345) & 0x7fffffff) % n;
}

interface Seeded {
  repos: string[];
  /** Per repository, its tags' manifest digests in tag order (tag `v1.<k>`). */
  digests: string[][];
  big: { repo: string; digest: string; size: number };
}

/** A small gzipped tar holding one file: the layer every image shares, as a real one would be. */
async function smallLayer(): Promise<Buffer> {
  const pack = tarStream.pack();
  pack.entry({ name: 'app/README.md', mode: 0o644, mtime: new Date(0) }, '# app\n\nA service of the benchmark registry.\n');
  pack.entry({ name: 'app/run', mode: 0o755, mtime: new Date(0) }, randomBytes(2048).toString('base64'));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** Runs `worker` over 0..count-1 on `lanes` lanes. */
async function lanes(count: number, n: number, worker: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < count) await worker(next++);
  }));
}

/**
 * Writes the registry through RegistryStore: `repos` repositories of `tagsPerRepo` tags each, every
 * tag its own manifest (an image, or every fifth repository a generic artifact) over two blobs
 * shared by all, and one large layer for the download figures.
 */
async function seedStore(dataDir: string, sz: (typeof SIZES)['small'], bigBlob: BigBlob): Promise<Seeded> {
  const store = new RegistryStore(new FsDriver(dataDir, { fsync: false }));
  const layer = await smallLayer();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/app/run'], Env: ['PATH=/usr/bin', 'MODE=bench'] }, rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const empty = Buffer.from('{}');
  const blob = (b: Buffer, mediaType: string): Descriptor => ({ mediaType, digest: sha256(b) as Digest, size: b.length });
  const cfg = blob(config, 'application/vnd.oci.image.config.v1+json');
  const lyr = blob(layer, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const emp = blob(empty, 'application/vnd.oci.empty.v1+json');
  const repos = Array.from({ length: sz.repos }, (_, i) => `${TEAMS[i % TEAMS.length]}/${WORDS[Math.floor(i / TEAMS.length) % WORDS.length]}-${i}`);
  const digests: string[][] = repos.map(() => []);
  const t0 = Date.now() - 90 * DAY;
  await lanes(repos.length, 32, async (r) => {
    const repo = repos[r]!;
    const artifact = r % 5 === 4;
    await store.putBlob(repo, artifact ? emp : cfg, Readable.from([artifact ? empty : config]));
    await store.putBlob(repo, lyr, Readable.from([layer]));
    for (let k = 0; k < sz.tagsPerRepo; k++) {
      const annotations = {
        'org.opencontainers.image.created': new Date(t0 + (r * sz.tagsPerRepo + k) * 60_000).toISOString(),
        'org.opencontainers.image.version': `1.${k}.0`,
        'org.opencontainers.image.description': `The ${WORDS[(r + k) % WORDS.length]} of team ${TEAMS[r % TEAMS.length]}, build ${r}.${k}`,
      };
      const m = artifact
        ? { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.bundle.v1', config: emp, layers: [{ ...lyr, annotations: { 'org.opencontainers.image.title': 'bundle.tar.gz' } }], annotations }
        : { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [lyr], annotations };
      const body = Buffer.from(JSON.stringify(m));
      await store.putManifest(repo, `v1.${k}`, body, m.mediaType);
      digests[r]![k] = sha256(body);
    }
  });
  // The large layer, titled, in a repository of its own: as `wharf push` would store a model file.
  const bigRepo = 'bench/model';
  const bigDigest = (await bigBlob.digest('ui')) as Digest;
  await store.putBlob(bigRepo, { mediaType: 'application/octet-stream', digest: bigDigest, size: bigBlob.size }, Readable.from(bigBlob.range('ui')));
  await store.putBlob(bigRepo, emp, Readable.from([empty]));
  const bm = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.model.v1', config: emp, layers: [{ mediaType: 'application/octet-stream', digest: bigDigest, size: bigBlob.size, annotations: { 'org.opencontainers.image.title': 'model.bin' } }] }));
  await store.putManifest(bigRepo, 'v1', bm, 'application/vnd.oci.image.manifest.v1+json');
  return { repos, digests, big: { repo: bigRepo, digest: bigDigest, size: bigBlob.size } };
}

/**
 * Writes `pulls` artifact downloads of the last 30 days into the audit log's database, where
 * `wharf serve` opens it (<data>/audit/audit.db): a few popular repositories take most pulls, as
 * on a real registry. Ids stay far below the server's own (start time x 4096).
 */
function seedAudit(dataDir: string, s: Seeded, pulls: number): void {
  const db = new AuditDb(join(dataDir, 'audit', 'audit.db'));
  try {
    const rnd = rng(23);
    const now = Date.now();
    let recs: RecordParams[] = [];
    let dls: DownloadParams[] = [];
    for (let id = 1; id <= pulls; id++) {
      // Squared: the low indexes (the popular repositories) come up far more often.
      const u = rnd(1_000_000) / 1_000_000;
      const r = Math.floor(u * u * s.repos.length);
      const k = rnd(s.digests[r]!.length);
      const time = now - 30 * DAY + rnd(30 * DAY);
      const user = rnd(5) === 0 ? null : `user${rnd(200)}`;
      const ip = `10.${rnd(4)}.${rnd(256)}.${rnd(256)}`;
      const bytes = 5000 + rnd(100_000);
      const base = { id, time, user, ip, userAgent: 'containerd/1.7', method: 'GET', action: 'pull' as const, repo: s.repos[r]!, reference: `v1.${k}`, digest: s.digests[r]![k]!, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: null, status: 200, bytes, durationMs: 3, outcome: 'completed' as const };
      recs.push(recordParams({ ...base, downloadId: id }));
      dls.push(downloadParams({ id, time, lastTime: time, user, ip, repo: base.repo, reference: base.reference, digest: base.digest, artifactType: null, blobsTotal: 2, blobsDone: 2, bytes, completed: true }));
      if (recs.length === 10_000) {
        db.commit(recs, dls);
        recs = [];
        dls = [];
      }
    }
    if (recs.length > 0) db.commit(recs, dls);
  } finally {
    db.close();
  }
}

/** GETs `path` and throws unless it answers 200; returns the body and headers. */
async function get(pool: Pool, path: string): Promise<{ body: string; headers: Record<string, string | string[] | undefined> }> {
  const r = await pool.request({ method: 'GET', path });
  const body = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`GET ${path}: ${r.statusCode} ${body.slice(0, 300)}`);
  return { body, headers: r.headers };
}

/**
 * Waits until the catalog index has rebuilt from the store (its lists stop saying
 * `x-wharf-index: rebuilding`); the first /api/v1 request starts the rebuild. Returns seconds.
 */
async function waitIndexed(pool: Pool, repos: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const r = await get(pool, '/api/v1/repositories?limit=1');
    if (r.headers['x-wharf-index'] === undefined) {
      // Ready, and it lists what was seeded: a figure over an empty index would be meaningless.
      const n = await get(pool, `/api/v1/search?q=${SEARCH_WORD}`);
      if ((JSON.parse(n.body) as { items: unknown[] }).items.length === 0) throw new Error(`the catalog index is ready but finds no "${SEARCH_WORD}" among ${repos} repositories`);
      return (Date.now() - t0) / 1000;
    }
    if (Date.now() - t0 > 15 * 60_000) throw new Error('the catalog index did not finish its rebuild in 15 minutes');
    await new Promise((res) => setTimeout(res, 250));
  }
}

interface Load {
  p50: number;
  p99: number;
  rps: number;
}

/** `CONNECTIONS` lanes GET `pathOf(i)` for `seconds`; latencies in ms, from send to the body's end. */
async function load(pool: Pool, seconds: number, pathOf: (i: number) => string): Promise<Load> {
  const lat: number[] = [];
  let i = 0;
  const t0 = process.hrtime.bigint();
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < until) {
        const path = pathOf(i++);
        const s = process.hrtime.bigint();
        const r = await pool.request({ method: 'GET', path });
        await r.body.dump();
        if (r.statusCode !== 200) throw new Error(`GET ${path}: ${r.statusCode}`);
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  const at = (q: number): number => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!;
  return { p50: at(0.5), p99: at(0.99), rps: lat.length / secs };
}

/** The gzipped size of every text asset of the UI (what all its pages load, lazily or not). */
function wholeUiGzip(dir: string): number {
  let n = 0;
  for (const e of readdirSync(join(dir, 'assets'))) if (e.endsWith('.gz')) n += statSync(join(dir, 'assets', e)).size;
  return n;
}

async function bundleRows(ctx: BenchContext): Promise<BenchRow[]> {
  // Builds dist/web/ only when it is missing or older than web/.
  await ctx.exec(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--web']);
  const dir = join(ROOT, 'dist', 'web');
  const first = firstPageSize(dir);
  return [
    ctx.row({
      metric: 'front-end bundle, first page (gzipped)',
      wharf: first.gzip / KiB,
      peer: null,
      unit: 'KiB',
      lowerIsBetter: true,
      goalMax: GOAL_BUNDLE_KIB,
      note: `no peer; ${first.files.length} files (${first.files.join(', ')}), ${(first.raw / KiB).toFixed(1)} KiB raw; every asset of the UI: ${(wholeUiGzip(dir) / KiB).toFixed(1)} KiB gzipped`,
    }),
  ];
}

/** MiB/s of one whole GET of `path` over a plain connection (see plainRequest). */
async function pull(reg: BenchRegistry, path: string, size: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await plainRequest(reg.url, 'GET', path, {});
  if (r.status !== 200 || r.bytes !== size) throw new Error(`GET ${path}: ${r.status}, ${r.bytes} of ${size} bytes`);
  return size / MiB / (Number(process.hrtime.bigint() - t0) / 1e9);
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const sz = SIZES[ctx.scale];
  const rows = await bundleRows(ctx);

  const dataDir = join(ctx.tmp, 'data');
  const bigBlob = await BigBlob.create(join(ctx.tmp, 'big'), sz.big);
  let t = Date.now();
  const seeded = await seedStore(dataDir, sz, bigBlob);
  const seedSecs = (Date.now() - t) / 1000;
  t = Date.now();
  seedAudit(dataDir, seeded, sz.pulls);
  ctx.log(`seeded ${sz.repos} repositories, ${sz.repos * sz.tagsPerRepo} tags and a ${sz.big / MiB} MiB layer in ${seedSecs.toFixed(0)} s, ${sz.pulls} pulls in the audit log in ${((Date.now() - t) / 1000).toFixed(0)} s`);

  const w = await ctx.startWharf({ data: dataDir });
  const pool = new Pool(w.url, { connections: CONNECTIONS, pipelining: 1, keepAliveTimeout: 30_000 });
  try {
    const rebuild = await waitIndexed(pool, sz.repos);
    ctx.log(`catalog index rebuilt in ${rebuild.toFixed(1)} s`);
    rows.push(ctx.row({ metric: `catalog index rebuild, ${sz.repos.toLocaleString('en-US')} repositories`, wharf: rebuild, peer: null, unit: 's', lowerIsBetter: true, note: `no peer; from the first /api/v1 request of a fresh start until the lists stop saying "rebuilding"; one run` }));

    // A later page of the repository list: the cursor found half-way through, page by page.
    let cursor: string | null = null;
    for (let seen = 0; seen < sz.repos / 2; ) {
      const page = JSON.parse((await get(pool, `/api/v1/repositories?limit=100${cursor ? `&cursor=${cursor}` : ''}`)).body) as { items: unknown[]; next: string | null };
      if (page.next === null) break;
      cursor = page.next;
      seen += page.items.length;
    }
    if (cursor === null) throw new Error('the repository list has a single page');
    const n = seeded.repos.length;
    const tagsOf = seeded.digests[0]!.length;
    const artifactOf = (i: number): string => {
      const r = (i * 7919) % n;
      return `/api/v1/artifact?repo=${encodeURIComponent(seeded.repos[r]!)}&ref=v1.${i % tagsOf}`;
    };
    const endpoints: Array<{ metric: string; path: (i: number) => string }> = [
      { metric: 'repository list, first page', path: () => '/api/v1/repositories' },
      { metric: 'repository list, a page half-way (cursor)', path: () => `/api/v1/repositories?cursor=${cursor}` },
      { metric: `search "${SEARCH_WORD}"`, path: () => `/api/v1/search?q=${SEARCH_WORD}` },
      { metric: 'tag list of a repository', path: (i) => `/api/v1/tags?repo=${encodeURIComponent(seeded.repos[(i * 7919) % n]!)}` },
      { metric: 'artifact page', path: artifactOf },
      { metric: 'analytics: downloads over 30 days', path: () => '/api/v1/analytics/downloads' },
      { metric: 'analytics: top artifacts', path: () => '/api/v1/analytics/top' },
      { metric: 'analytics: who downloaded (first page)', path: () => '/api/v1/analytics/who' },
    ];
    // One untimed second of each first (the JIT, SQLite's page cache, the rollups of past days),
    // then the timed rounds, every endpoint in turn per round: the machine's noise spreads evenly.
    for (const e of endpoints) await load(pool, 1, e.path);
    const got = endpoints.map(() => [] as Load[]);
    for (let round = 0; round < ctx.runs; round++) {
      for (const [k, e] of endpoints.entries()) got[k]!.push(await load(pool, sz.seconds, e.path));
    }
    for (const [k, e] of endpoints.entries()) {
      const xs = got[k]!;
      const p50 = median(xs.map((x) => x.p50));
      const p99 = median(xs.map((x) => x.p99));
      const rps = median(xs.map((x) => x.rps));
      const range = (f: (x: Load) => number): string => `${Math.min(...xs.map(f)).toFixed(1)}-${Math.max(...xs.map(f)).toFixed(1)}`;
      ctx.log(`${e.metric}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms (${range((x) => x.p99)}), ${rps.toFixed(0)} req/s`);
      rows.push(ctx.row({ metric: `API p99: ${e.metric}`, wharf: p99, peer: null, unit: 'ms', lowerIsBetter: true, goalMax: GOAL_P99_MS, note: `no peer; p50 ${p50.toFixed(1)} ms; ${CONNECTIONS} connections, ${sz.seconds} s per run, median of ${ctx.runs} (p99 ${range((x) => x.p99)})` }));
      rows.push(ctx.row({ metric: `API req/s: ${e.metric}`, wharf: rps, peer: null, unit: 'req/s', note: `no peer; ${CONNECTIONS} connections (range ${range((x) => x.rps)})` }));
    }

    // The browser's download beside a /v2 blob GET of the same bytes, in turns, order swapped every run.
    const { repo, digest, size } = seeded.big;
    const paths = { ui: `/api/v1/download?repo=${encodeURIComponent(repo)}&layer=${digest}`, v2: `/v2/${repo}/blobs/${digest}` };
    const runs = Math.max(ctx.runs, 5);
    const rates = { ui: [] as number[], v2: [] as number[] };
    for (let i = 0; i < runs; i++) {
      const order: Array<'ui' | 'v2'> = i % 2 ? ['ui', 'v2'] : ['v2', 'ui'];
      for (const k of order) rates[k].push(await pull(w, paths[k], size));
    }
    const ui = median(rates.ui);
    const v2 = median(rates.v2);
    const span = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`;
    ctx.log(`download ${size / MiB} MiB: /api/v1/download ${ui.toFixed(0)} MiB/s (${span(rates.ui)}), /v2 blob GET ${v2.toFixed(0)} MiB/s (${span(rates.v2)})`);
    rows.push(ctx.row({ metric: `download ${size / MiB} MiB layer from the browser endpoint`, wharf: ui, peer: v2, unit: 'MiB/s', goalRatio: 0.9, note: `peer: /v2 blob GET of the same bytes on the same server; median of ${runs}, taken in turns (ranges ${span(rates.ui)} / ${span(rates.v2)})` }));
    return rows;
  } finally {
    await pool.close();
    await w.stop();
  }
}
