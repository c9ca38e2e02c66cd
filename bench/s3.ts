/**
 * wharf serve on S3 beside Distribution's s3 driver, both on one Ceph RGW (scripts/rgw.sh), each
 * in a bucket of its own: the large blob pushed (monolithic and in 8 MiB chunks) and pulled through
 * the registry, pulled by following Wharf's redirect to a presigned URL beside curl's GET of a
 * presigned URL straight from RGW, small artifacts pushed by 8 clients, manifest GET and HEAD at
 * 50 connections, and each server's peak RSS over the section. The cluster is started for the
 * section and purged after it: RGW slows down as one cluster is reused (docs/BENCHMARKS.md, s3).
 * The section is skipped, with the reason printed, where RGW or docker-registry is missing.
 */
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { makeBucket, s3Options, startRgw, type Rgw } from '../test/helpers/rgw.js';
import { BigBlob, manifestRates, V2, opsByCount, plainRequest } from './http.js';
import { distributionVersion, hasBin, median, REGISTRY_BIN, sampleRss, startDistributionProcess } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const MiB = 1 << 20;
/** What scripts/rgw.sh runs, and the peer. */
const NEEDED = ['radosgw', 'ceph-mon', 'ceph-osd', 'radosgw-admin', 'ceph', 'monmaptool', REGISTRY_BIN, 'curl'];

interface Sizes {
  big: number;
  chunk: number;
  artifacts: number;
  seconds: number;
}

const SIZES: Record<'small' | 'full', Sizes> = {
  small: { big: 256 * MiB, chunk: 8 * MiB, artifacts: 100, seconds: 3 },
  full: { big: 1024 * MiB, chunk: 8 * MiB, artifacts: 200, seconds: 10 },
};

type Figure = 'pushMono' | 'pushChunked' | 'pull' | 'artifacts' | 'manifestGet' | 'manifestHead';

interface Side {
  reg: BenchRegistry;
  bucket: string;
  v2: V2;
  tag: string;
  /** The last large-blob variant pushed, which the pulls use. */
  big: string;
  xs: Record<Figure, number[]>;
}

const timed = async (fn: () => Promise<void>): Promise<number> => {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};

/** Why the section cannot run here, or undefined. */
function missing(): string | undefined {
  const absent = NEEDED.filter((b) => !hasBin(b));
  if (absent.length > 0) return `${absent.join(', ')} not installed (apt-get install radosgw ceph-mon ceph-osd docker-registry curl)`;
  if (process.getuid?.() !== 0) return 'Ceph RGW needs root (scripts/rgw.sh runs the monitor and the OSD as root)';
  return undefined;
}

/** The sides in run i's order: who goes first swaps every run, so that neither always follows the other's writes on the shared RGW. */
const turns = (sides: Side[], i: number): Side[] => (i % 2 ? [...sides].reverse() : sides);

async function measure(ctx: BenchContext, sides: Side[], blob: BigBlob, sz: Sizes): Promise<void> {
  const each = async (fn: (side: Side, i: number) => Promise<void>): Promise<void> => {
    for (let i = 0; i < ctx.runs; i++) for (const side of turns(sides, i)) await fn(side, i);
  };
  // As in the server section: figures of many small requests follow one untimed round.
  const warmed = async (fn: (side: Side, i: number) => Promise<void>): Promise<void> => {
    for (const side of sides) {
      const kept = Object.values(side.xs).map((xs) => xs.length);
      await fn(side, ctx.runs);
      Object.values(side.xs).forEach((xs, k) => (xs.length = kept[k]!));
    }
    await each(fn);
  };

  // Each phase's own peak RSS, logged beside the section's (the row), which says which phase sets it.
  const phase = async (label: string, fn: () => Promise<void>): Promise<void> => {
    const samplers = sides.map((side) => (side.reg.pid ? sampleRss(side.reg.pid) : undefined));
    try {
      await fn();
    } finally {
      const peaks = await Promise.all(samplers.map((x) => x?.stop()));
      ctx.log(`peak RSS, ${label}: ${sides.map((side, k) => `${side.reg.name} ${peaks[k]?.toFixed(0) ?? '?'} MiB`).join(', ')}`);
    }
  };
  await phase('monolithic pushes', () =>
    each(async (side, i) => {
      const v = `${side.tag}-mono-${i}`;
      const d = await blob.digest(v);
      side.xs.pushMono.push(blob.size / MiB / (await timed(() => side.v2.pushLarge('bench/big', d, blob.body(v)))));
      side.big = d;
    }),
  );
  await phase('chunked pushes', () =>
    each(async (side, i) => {
      const v = `${side.tag}-chunked-${i}`;
      const d = await blob.digest(v);
      side.xs.pushChunked.push(blob.size / MiB / (await timed(() => side.v2.pushLargeChunked('bench/big', d, blob.size, sz.chunk, (a, b) => blob.body(v, a, b)))));
    }),
  );
  await phase('pulls', () =>
    each(async (side) => {
      const secs = await timed(async () => {
        const n = await side.v2.pullWhole('bench/big', side.big);
        if (n !== blob.size) throw new Error(`${side.reg.name}: pulled ${n} bytes of ${blob.size}`);
      });
      side.xs.pull.push(blob.size / MiB / secs);
    }),
  );
  const runs = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join('/');
  for (const side of sides) ctx.log(`${side.reg.name}, run by run: push ${runs(side.xs.pushMono)} MB/s monolithic, ${runs(side.xs.pushChunked)} MB/s chunked, pull ${runs(side.xs.pull)} MB/s`);

  // Small artifacts: a config, a 1 KiB layer and a manifest each, 8 clients.
  await phase('small artifacts', () =>
    warmed(async (side, i) => {
      side.xs.artifacts.push(
        await opsByCount(sz.artifacts, 8, (j) => side.v2.pushSmallArtifact('bench/artifacts', `r${i}-${j}`, { run: i, n: j, t: side.tag })),
      );
    }),
  );
  for (const side of sides) ctx.log(`${side.reg.name}: ${median(side.xs.artifacts).toFixed(0)} small artifacts/s`);

  // Manifest GET and HEAD, 50 connections, on one artifact's tag.
  const ref = '/v2/bench/artifacts/manifests/r0-0';
  await phase('manifest loads', () =>
    warmed(async (side) => {
      const rates = await manifestRates(side.reg.url, side.v2, ref, sz.seconds);
      side.xs.manifestGet.push(rates.get);
      side.xs.manifestHead.push(rates.head);
    }),
  );
  for (const side of sides) ctx.log(`${side.reg.name}: manifest GET ${median(side.xs.manifestGet).toFixed(0)} req/s, HEAD ${median(side.xs.manifestHead).toFixed(0)} req/s`);
}

/** The key of a blob in Wharf's bucket (docs/STORAGE.md: blobs/<alg>/<first two hex>/<hex>). */
function blobKey(digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  return `blobs/${alg}/${hex.slice(0, 2)}/${hex}`;
}

/** Pulls a blob from a registry that answers 307: the redirect, then a plain GET of its Location. */
async function pullRedirected(v2: V2, repo: string, digest: string, size: number): Promise<void> {
  const r = await v2.req({ method: 'GET', path: `/v2/${repo}/blobs/${digest}` }, [307]);
  await r.body.dump();
  const loc = new URL(String(r.headers.location), v2.url);
  const g = await plainRequest(loc.origin, 'GET', loc.pathname + loc.search, {});
  if (g.status !== 200 || g.bytes !== size) throw new Error(`GET ${loc.origin}${loc.pathname}: ${g.status}, ${g.bytes} bytes of ${size}`);
}

/** curl's GET of a URL into /dev/null; MB/s by curl's own clock, after checking the size. */
async function curlRate(ctx: BenchContext, url: string, size: number): Promise<number> {
  const r = await ctx.exec('curl', ['-sS', '--fail', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', url]);
  const [bytes, secs] = r.stdout.trim().split(' ').map(Number) as [number, number];
  if (bytes !== size) throw new Error(`curl got ${bytes} bytes of ${size}`);
  return size / MiB / secs;
}

interface RedirectFigures {
  wharf: number | null;
  curl: number | null;
  /** Why Wharf's figure is missing. */
  reason?: string;
}

/**
 * A second wharf serve on Wharf's bucket with storage.s3.redirect on: its blob GET answers 307 to
 * a presigned URL, which the client follows; beside it, curl GETs a URL presigned here for the
 * same object, straight from RGW. A build whose GET answers 200 has no redirects (yet): its figure
 * stays empty and the note says so.
 */
async function measureRedirect(ctx: BenchContext, rgw: Rgw, wharf: Side, size: number): Promise<RedirectFigures> {
  const s3 = new S3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
  const reg = await ctx.startWharf({ config: { storage: { driver: 's3', s3: { ...s3Options(rgw, wharf.bucket), redirect: { enabled: true } } } } });
  const v2 = new V2(reg.url, 4);
  try {
    const probe = await v2.req({ method: 'GET', path: `/v2/bench/big/blobs/${wharf.big}` }, [200, 307]);
    await probe.body.dump();
    const redirects = probe.statusCode === 307;
    const xs: number[] = [];
    const cs: number[] = [];
    for (let i = 0; i < ctx.runs; i++) {
      const presigned = await getSignedUrl(s3, new GetObjectCommand({ Bucket: wharf.bucket, Key: blobKey(wharf.big) }), { expiresIn: 600 });
      const order: (() => Promise<void>)[] = [async () => void cs.push(await curlRate(ctx, presigned, size))];
      if (redirects) order.push(async () => void xs.push(size / MiB / (await timed(() => pullRedirected(v2, 'bench/big', wharf.big, size)))));
      for (const f of i % 2 ? order.reverse() : order) await f();
    }
    // Each run's figure: one GET from RGW varies by a third from the next here, redirected or not.
    const runs = (v: number[]): string => v.map((x) => x.toFixed(0)).join('/');
    ctx.log(`redirected pull ${redirects ? `${runs(xs)} MB/s` : 'not measured'}, curl of a presigned URL ${runs(cs)} MB/s, run by run`);
    return redirects ? { wharf: median(xs), curl: median(cs) } : { wharf: null, curl: median(cs), reason: `this build's wharf serve answers a blob GET with ${probe.statusCode}, not 307, with storage.s3.redirect.enabled` };
  } finally {
    await v2.close();
    await reg.stop();
    s3.destroy();
  }
}

function sideOf(reg: BenchRegistry, bucket: string): Side {
  return { reg, bucket, v2: new V2(reg.url, 64), tag: reg.name.replace(/\W+/g, ''), big: '', xs: { pushMono: [], pushChunked: [], pull: [], artifacts: [], manifestGet: [], manifestHead: [] } };
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const why = missing();
  if (why) {
    ctx.log(`skipped: ${why}`);
    return [];
  }
  // The SDK (buckets, presigned URLs) warns on Node 20 of its releases after January 2027, as
  // wharf serve keeps it from doing (src/server/driver/s3/client.ts).
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sz = SIZES[ctx.scale];
  const big = `${sz.big / MiB} MiB`;
  ctx.log(`writing a ${big} blob`);
  const blob = await BigBlob.create(join(ctx.tmp, 'big.bin'), sz.big);

  const t0 = Date.now();
  const rgw = await startRgw();
  const sides: Side[] = [];
  const samplers: { stop(): Promise<number> }[] = [];
  let peaks: number[] = [];
  let redirect: RedirectFigures;
  try {
    ctx.log(`a fresh Ceph RGW at ${rgw.endpoint} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const wb = await makeBucket(rgw, 'bench-wharf');
    const db = await makeBucket(rgw, 'bench-distribution');
    sides.push(sideOf(await ctx.startWharf({ config: { storage: { driver: 's3', s3: s3Options(rgw, wb) } } }), wb));
    const dist = await startDistributionProcess({ s3: { endpoint: rgw.endpoint, region: rgw.region, bucket: db, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
    sides.push(sideOf(dist, db));
    for (const side of sides) if (side.reg.pid) samplers.push(sampleRss(side.reg.pid));
    await measure(ctx, sides, blob, sz);
    peaks = await Promise.all(samplers.splice(0).map((s) => s.stop()));
    redirect = await measureRedirect(ctx, rgw, sides[0]!, sz.big);
  } finally {
    await Promise.all(samplers.map((s) => s.stop()));
    for (const side of sides) {
      await side.v2.close();
      await side.reg.stop();
    }
    await rgw.stop();
  }

  const [w, d] = sides as [Side, Side];
  const vs = `vs Distribution ${distributionVersion()} (s3 driver, redirect off), same RGW`;
  const r = (metric: string, key: Figure, unit: string, note: string, goalRatio: number): BenchRow =>
    ctx.row({ metric, wharf: median(w.xs[key]), peer: median(d.xs[key]), unit, note: `${vs}; ${note}`, goalRatio });
  return [
    r(`push ${big} blob, monolithic (POST+PUT)`, 'pushMono', 'MB/s', 'a fresh variant each run, sent over a plain connection', 1.5),
    r(`push ${big} blob, chunked (8 MiB PATCH)`, 'pushChunked', 'MB/s', 'a fresh variant each run, each chunk over a plain connection', 1.5),
    r(`pull ${big} blob through the registry`, 'pull', 'MB/s', 'one GET per run over a plain connection, bytes counted', 1),
    ctx.row({
      metric: `pull ${big} blob, following a redirect to RGW`,
      wharf: redirect.wharf,
      peer: redirect.curl,
      unit: 'MB/s',
      note: `peer: curl GET of a presigned URL of the same object, straight from RGW; wharf: GET (307, storage.s3.redirect.enabled), then the Location over a plain connection${redirect.reason ? `; wharf not measured: ${redirect.reason}` : ''}`,
      goalRatio: 0.9,
    }),
    r('push small artifacts (config, 1 KiB layer, manifest), 8 clients', 'artifacts', 'artifacts/s', `${sz.artifacts} per run, 5 requests each`, 2),
    r('manifest GET, 50 connections', 'manifestGet', 'req/s', `${sz.seconds} s per run`, 3),
    r('manifest HEAD, 50 connections', 'manifestHead', 'req/s', `${sz.seconds} s per run, node:http keep-alive`, 3),
    ctx.row({ metric: 'server peak RSS over the section', wharf: peaks[0] ?? null, peer: peaks[1] ?? null, unit: 'MiB', lowerIsBetter: true, goalMax: 150, note: `${vs}; sampled every 50 ms from start to the manifest loads` }),
  ];
}
