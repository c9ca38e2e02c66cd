/**
 * The `wharf` CLI beside `skopeo copy`, moving the same bytes to and from the same kind of
 * registry (Distribution; wharf serve if Distribution is missing): eight layers pushed, pulled,
 * pushed again when already present, and copied registry to registry. Every timed transfer goes
 * to a fresh registry, so that neither tool finds its blobs already there.
 *
 * The layers are gzip streams (stored blocks) of random bytes: skopeo copies gzip layers as they
 * are, where it would compress plain ones, and wharf pushes the same files as the same layers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { BigBlob } from './http.js';
import { median } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const MiB = 1 << 20;
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

interface Sizes {
  files: number;
  fileSize: number;
  /** One large file, pushed and pulled once, for the client's RSS. */
  huge: number;
}
const SIZES: Record<'small' | 'full', Sizes> = {
  small: { files: 8, fileSize: 32 * MiB, huge: 512 * MiB },
  full: { files: 8, fileSize: 128 * MiB, huge: 4096 * MiB },
};

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Writes the layer files, and an OCI image layout holding the same bytes as an image's layers. */
async function prepare(dir: string, sz: Sizes): Promise<{ files: string[]; layout: string }> {
  const files: string[] = [];
  const layout = join(dir, 'layout');
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  for (let i = 0; i < sz.files; i++) {
    const gz = gzipSync(randomBytes(sz.fileSize), { level: 0 });
    const f = join(dir, `layer${i}.gz`);
    await writeFile(f, gz);
    files.push(f);
    const hex = sha(gz);
    await copyFile(f, join(layout, 'blobs', 'sha256', hex));
    layers.push({ mediaType: LAYER, digest: `sha256:${hex}`, size: gz.length });
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  await writeFile(join(layout, 'blobs', 'sha256', sha(config)), config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length },
      layers,
    }),
  );
  await writeFile(join(layout, 'blobs', 'sha256', sha(manifest)), manifest);
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
    }),
  );
  return { files, layout };
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const sz = SIZES[ctx.scale];
  const total = `${sz.files} x ${sz.fileSize / MiB} MiB`;
  const noSkopeo = ctx.missing('skopeo');
  let viaDistribution = true;
  const fresh = async (): Promise<BenchRegistry> => {
    if (viaDistribution) {
      const d = await ctx.startDistribution();
      if (d) return d;
      viaDistribution = false;
    }
    return ctx.startWharf();
  };
  ctx.log(`writing ${total} layers`);
  const { files, layout } = await prepare(ctx.tmp, sz);
  const env = { HOME: join(ctx.tmp, 'home'), DOCKER_CONFIG: join(ctx.tmp, 'home', '.docker'), REGISTRY_AUTH_FILE: join(ctx.tmp, 'home', 'auth.json') };
  await mkdir(env.DOCKER_CONFIG, { recursive: true });
  const wharf = (args: string[]) => ctx.wharf(args, { env, cwd: ctx.tmp });
  const skopeo = (args: string[]) => ctx.exec('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests', ...args], { env, cwd: ctx.tmp });
  const pushArgs = (host: string, tag: string): string[] => ['push', '--plain-http', '--no-tty', `${host}/bench/files:${tag}`, ...files.map((f) => `${f}:${LAYER}`)];

  interface Side {
    push: number[];
    pull: number[];
    repush: number[];
    cp: number[];
    pushRss: number[];
    pullRss: number[];
  }
  const side = (): Side => ({ push: [], pull: [], repush: [], cp: [], pushRss: [], pullRss: [] });
  const W = side();
  const S = side();

  // A source registry for cp, holding the image as skopeo (or wharf) pushed it.
  const source = await fresh();
  try {
    if (noSkopeo) await wharf(pushArgs(source.host, 'v1'));
    else await skopeo([`oci:${layout}:v1`, `docker://${source.host}/bench/image:v1`]);
    const srcRef = noSkopeo ? `${source.host}/bench/files:v1` : `${source.host}/bench/image:v1`;

    for (let i = 0; i < ctx.runs; i++) {
      // wharf: push, pull, push again (present), then cp into another fresh registry.
      let reg = await fresh();
      try {
        const p = await wharf(pushArgs(reg.host, 'v1'));
        W.push.push(p.seconds);
        W.pushRss.push(p.peakRss);
        const out = join(ctx.tmp, `wharf-out-${i}`);
        const l = await wharf(['pull', '--plain-http', '--no-tty', `${reg.host}/bench/files:v1`, '-o', out]);
        W.pull.push(l.seconds);
        W.pullRss.push(l.peakRss);
        await rm(out, { recursive: true, force: true });
        W.repush.push((await wharf(pushArgs(reg.host, 'v2'))).seconds);
      } finally {
        await reg.stop();
      }
      reg = await fresh();
      try {
        W.cp.push((await wharf(['cp', '--plain-http', '--no-tty', srcRef, `${reg.host}/bench/copy:v1`])).seconds);
      } finally {
        await reg.stop();
      }
      if (noSkopeo) continue;

      reg = await fresh();
      try {
        const p = await skopeo([`oci:${layout}:v1`, `docker://${reg.host}/bench/image:v1`]);
        S.push.push(p.seconds);
        S.pushRss.push(p.peakRss);
        const out = join(ctx.tmp, `skopeo-out-${i}`);
        const l = await skopeo([`docker://${reg.host}/bench/image:v1`, `oci:${out}:v1`]);
        S.pull.push(l.seconds);
        S.pullRss.push(l.peakRss);
        await rm(out, { recursive: true, force: true });
        S.repush.push((await skopeo([`oci:${layout}:v1`, `docker://${reg.host}/bench/image:v2`])).seconds);
      } finally {
        await reg.stop();
      }
      reg = await fresh();
      try {
        S.cp.push((await skopeo([`docker://${srcRef}`, `docker://${reg.host}/bench/copy:v1`])).seconds);
      } finally {
        await reg.stop();
      }
      ctx.log(`run ${i + 1}: push ${W.push[i]!.toFixed(2)} s vs ${S.push[i]!.toFixed(2)} s, pull ${W.pull[i]!.toFixed(2)} s vs ${S.pull[i]!.toFixed(2)} s`);
    }
  } finally {
    await source.stop();
  }

  // One large file: the client's memory must not grow with it.
  const hugeName = sz.huge >= 1024 * MiB ? `${sz.huge / 1024 / MiB} GiB` : `${sz.huge / MiB} MiB`;
  ctx.log(`writing a ${hugeName} file`);
  const huge = await BigBlob.create(join(ctx.tmp, 'huge.bin'), sz.huge);
  let hugePush = { seconds: 0, peakRss: 0 };
  let hugePull = { seconds: 0, peakRss: 0 };
  {
    const reg = await fresh();
    try {
      hugePush = await wharf(['push', '--plain-http', '--no-tty', `${reg.host}/bench/huge:v1`, huge.file]);
      const out = join(ctx.tmp, 'huge-out');
      hugePull = await wharf(['pull', '--plain-http', '--no-tty', `${reg.host}/bench/huge:v1`, '-o', out]);
      await rm(out, { recursive: true, force: true });
    } finally {
      await reg.stop();
      await rm(huge.file, { force: true });
    }
  }

  // What starting each process costs, included in every figure above.
  const starts: number[] = [];
  const skStarts: number[] = [];
  for (let i = 0; i < ctx.runs; i++) {
    starts.push((await wharf(['version'])).seconds);
    if (!noSkopeo) skStarts.push((await ctx.exec('skopeo', ['--version'])).seconds);
  }

  const m = (xs: number[]): number | null => (xs.length ? median(xs) : null);
  const where = viaDistribution ? 'Distribution' : 'wharf serve (Distribution missing)';
  const vs = noSkopeo ? `skopeo missing` : `vs skopeo ${(await ctx.exec('skopeo', ['--version'])).stdout.trim().replace(/^skopeo version /, '')}`;
  const row = (metric: string, w: number | null, s: number | null, unit: string, note: string, goal: { goalRatio?: number; goalMax?: number } = {}): BenchRow =>
    ctx.row({ metric, wharf: w, peer: s, unit, lowerIsBetter: true, note: `${vs}; ${note}`, ...goal });
  const bytes = (sz.files * sz.fileSize) / MiB;
  const mbps = (xs: number[]): string => (xs.length ? `${(bytes / median(xs)).toFixed(0)} MB/s` : '–');
  return [
    row(`push ${total} layers`, m(W.push), m(S.push), 's', `to a fresh ${where}; wharf ${mbps(W.push)}; skopeo from an OCI layout, ${mbps(S.push)}`, { goalRatio: 1 }),
    row(`pull ${total} layers`, m(W.pull), m(S.pull), 's', `wharf pull -o dir; skopeo to an OCI layout`, { goalRatio: 1 }),
    row('push again, content present', m(W.repush), m(S.repush), 's', 'new tag, same layers: no blob bytes should move; wharf takes digests from its memo of files pushed before (hashing again those written within 2 s of their first hashing), skopeo from the layout'),
    row(`cp registry to registry, ${total}`, m(W.cp), m(S.cp), 's', `wharf cp vs skopeo copy docker:// docker://, two ${where} instances`),
    row('client peak RSS, push', m(W.pushRss), m(S.pushRss), 'MiB', 'sampled every 25 ms', { goalMax: 200 }),
    row('client peak RSS, pull', m(W.pullRss), m(S.pullRss), 'MiB', 'sampled every 25 ms', { goalMax: 200 }),
    ctx.row({ metric: `client peak RSS, push of one ${hugeName} file`, wharf: hugePush.peakRss, peer: null, unit: 'MiB', lowerIsBetter: true, goalMax: 200, note: `wharf only, once, ${where}; ${(sz.huge / MiB / hugePush.seconds).toFixed(0)} MB/s` }),
    ctx.row({ metric: `client peak RSS, pull of one ${hugeName} file`, wharf: hugePull.peakRss, peer: null, unit: 'MiB', lowerIsBetter: true, goalMax: 200, note: `wharf only, once, ${where}; ${(sz.huge / MiB / hugePull.seconds).toFixed(0)} MB/s` }),
    row('process start (version)', m(starts), m(skStarts), 's', 'included in every figure above'),
  ];
}

