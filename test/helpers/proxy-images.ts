import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

export type Digest = `sha256:${string}`;
export const sha256 = (b: Uint8Array): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const body = (b: Buffer): Uint8Array<ArrayBuffer> => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.length);

export interface TestImage {
  manifest: Buffer;
  digest: Digest;
  config: Buffer;
  layers: Buffer[];
  /** Every blob: the config, then the layers. */
  blobs: Array<{ digest: Digest; data: Buffer }>;
}

/** A gzipped tar holding one file of `size` random bytes. */
export async function layerTar(name: string, size: number): Promise<{ gz: Buffer; diffId: Digest }> {
  const p = pack();
  p.entry({ name, size, mode: 0o644, mtime: new Date(0) }, randomBytes(size));
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  const tar = Buffer.concat(chunks);
  return { gz: gzipSync(tar), diffId: sha256(tar) };
}

/** A real, runnable-looking OCI image (linux/amd64) that skopeo and podman accept. */
export async function makeImage(layerCount = 2, layerSize = 1024, label = randomBytes(4).toString('hex')): Promise<TestImage> {
  const ls = await Promise.all(Array.from({ length: layerCount }, (_, i) => layerTar(`file-${label}-${i}`, layerSize)));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { 'test.label': label } },
      rootfs: { type: 'layers', diff_ids: ls.map((l) => l.diffId) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: ls.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(l.gz), size: l.gz.length })),
    }),
  );
  const layers = ls.map((l) => l.gz);
  return {
    manifest,
    digest: sha256(manifest),
    config,
    layers,
    blobs: [{ digest: sha256(config), data: config }, ...layers.map((data) => ({ digest: sha256(data), data }))],
  };
}

/** Pushes an image (blobs, then the manifest under `tag`) to a plain-HTTP registry. */
export async function pushImage(url: string, repo: string, tag: string, img: TestImage, headers: Record<string, string> = {}): Promise<void> {
  for (const b of img.blobs) await pushBlob(url, repo, b.data, headers);
  const r = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: body(img.manifest),
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (r.status !== 201) throw new Error(`manifest PUT ${repo}:${tag}: ${r.status} ${await r.text()}`);
}

/** POST + PUT, as Distribution wants (it has no single-POST upload). */
export async function pushBlob(url: string, repo: string, data: Buffer, headers: Record<string, string> = {}): Promise<Digest> {
  const d = sha256(data);
  const s = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  await s.arrayBuffer();
  if (s.status !== 202) throw new Error(`upload start ${repo}: ${s.status}`);
  const loc = new URL(s.headers.get('location')!, url);
  loc.searchParams.set('digest', d);
  const r = await fetch(loc, { method: 'PUT', body: body(data), headers: { ...headers, 'content-type': 'application/octet-stream' } });
  await r.arrayBuffer();
  if (r.status !== 201) throw new Error(`blob PUT ${repo}: ${r.status}`);
  return d;
}

export const basicAuth = (user: string, pass: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });

/** A bearer token for `scope` from a token service (distribution's token protocol, basic credentials). */
export async function fetchToken(realm: string, service: string, scope: string, user: string, pass: string): Promise<Record<string, string>> {
  const u = new URL(realm);
  u.searchParams.set('service', service);
  u.searchParams.set('scope', scope);
  const r = await fetch(u, { headers: basicAuth(user, pass) });
  if (r.status !== 200) throw new Error(`token: ${r.status}`);
  const doc = (await r.json()) as { token: string };
  return { authorization: `Bearer ${doc.token}` };
}
