/**
 * The cost of access control and the audit log: wharf serve with a user, rules, bearer tokens and
 * the audit log on, beside the same wharf serve with both off (the "peer" column). Manifest GETs
 * at 50 connections, and one large blob pulled in one stream.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashPassword } from '../src/server/auth/index.js';
import { BigBlob, V2, opsByTime, sha256 } from './http.js';
import { median } from './lib.js';
import type { BenchContext, BenchRegistry, BenchRow } from './types.js';

const MiB = 1 << 20;
const SIZES = { small: { big: 128 * MiB, seconds: 3 }, full: { big: 1024 * MiB, seconds: 10 } };

async function prepare(reg: BenchRegistry, blob: BigBlob, headers: Record<string, string>): Promise<{ v2: V2; digest: string }> {
  const v2 = new V2(reg.url, 64);
  const digest = await blob.digest('auth');
  // Push with the auth header: V2's helpers send none, so go through the pool.
  const start = await v2.pool.request({ method: 'POST', path: `/v2/bench/app/blobs/uploads/?digest=${digest}`, headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(blob.size) }, body: (await import('node:stream')).Readable.from(blob.range('auth')) });
  if (start.statusCode !== 201) throw new Error(`blob push: ${start.statusCode} ${await start.body.text()}`);
  await start.body.dump();
  const config = Buffer.from('{}');
  const cfg = await v2.pool.request({ method: 'POST', path: `/v2/bench/app/blobs/uploads/?digest=${sha256(config)}`, headers: { ...headers, 'content-length': '2' }, body: config });
  await cfg.body.dump();
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.bench', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(config), size: 2 }, layers: [{ mediaType: 'application/octet-stream', digest, size: blob.size }] }));
  const put = await v2.pool.request({ method: 'PUT', path: '/v2/bench/app/manifests/v1', headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: m });
  if (put.statusCode !== 201) throw new Error(`manifest push: ${put.statusCode}`);
  await put.body.dump();
  return { v2, digest };
}

interface Side {
  v2: V2;
  digest: string;
  headers: Record<string, string>;
}

async function manifestGets(side: Side, seconds: number): Promise<number> {
  return opsByTime(seconds, 50, async () => {
    const r = await side.v2.pool.request({ method: 'GET', path: '/v2/bench/app/manifests/v1', headers: { ...side.headers, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    if (r.statusCode !== 200) throw new Error(`manifest GET: ${r.statusCode}`);
    await r.body.dump();
  });
}

/** MB/s of `times` pulls of the blob back to back: one pull of a fraction of a second is all noise here. */
async function blobPull(side: Side, size: number, times = 4): Promise<number> {
  const t0 = process.hrtime.bigint();
  let total = 0;
  for (let i = 0; i < times; i++) {
    const r = await side.v2.pool.request({ method: 'GET', path: `/v2/bench/app/blobs/${side.digest}`, headers: side.headers });
    let n = 0;
    for await (const c of r.body) n += (c as Buffer).length;
    if (n !== size) throw new Error(`pulled ${n} of ${size} bytes`);
    total += n;
  }
  return total / MiB / (Number(process.hrtime.bigint() - t0) / 1e9);
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const sz = SIZES[ctx.scale];
  const htpasswd = join(ctx.tmp, 'htpasswd');
  await writeFile(htpasswd, `bench:${await hashPassword('bench-pw', 10)}\n`);
  const blob = await BigBlob.create(join(ctx.tmp, 'big'), sz.big);
  const basic = `Basic ${Buffer.from('bench:bench-pw').toString('base64')}`;
  const on = await ctx.startWharf({ config: { storage: { fsync: false }, auth: { htpasswd, rules: [{ repos: ['**'], users: ['bench'], actions: ['pull', 'push'] }] }, audit: { enabled: true } } });
  const off = await ctx.startWharf({ config: { storage: { fsync: false }, audit: { enabled: false } } });
  try {
    const tok = await fetch(`${on.url}/token?service=wharf&scope=repository:bench/app:pull,push`, { headers: { authorization: basic } });
    const { token } = (await tok.json()) as { token: string };
    const on_: Side = { ...(await prepare(on, blob, { authorization: `Bearer ${token}` })), headers: { authorization: `Bearer ${token}` } };
    const off_: Side = { ...(await prepare(off, blob, {})), headers: {} };
    // Turn about, run by run: on a shared machine neither side gets the quieter moments.
    const gets = { on: [] as number[], off: [] as number[] };
    const pulls = { on: [] as number[], off: [] as number[] };
    for (let i = 0; i < ctx.runs; i++) {
      const order: Array<['on' | 'off', Side]> = i % 2 ? [['on', on_], ['off', off_]] : [['off', off_], ['on', on_]];
      for (const [k, side] of order) gets[k].push(await manifestGets(side, sz.seconds));
      for (const [k, side] of order) pulls[k].push(await blobPull(side, blob.size));
    }
    await on_.v2.close();
    await off_.v2.close();
    const withAuth = { get: median(gets.on), pull: median(pulls.on) };
    const without = { get: median(gets.off), pull: median(pulls.off) };
    ctx.log(`auth+audit on: ${withAuth.get.toFixed(0)} GET/s, ${withAuth.pull.toFixed(0)} MiB/s; off: ${without.get.toFixed(0)} GET/s, ${without.pull.toFixed(0)} MiB/s`);
    return [
      ctx.row({ metric: 'manifest GET, bearer token + audit log', wharf: withAuth.get, peer: without.get, unit: 'req/s', note: `peer: wharf serve with auth and audit off; goal ≥ 0.80x; median of ${ctx.runs}, taken in turns` }),
      ctx.row({ metric: `blob pull ${sz.big / MiB} MiB x 4, bearer token + audit log`, wharf: withAuth.pull, peer: without.pull, unit: 'MiB/s', note: `peer: wharf serve with auth and audit off; goal ≥ 0.95x; median of ${ctx.runs}, taken in turns` }),
    ];
  } finally {
    await on.stop();
    await off.stop();
  }
}
