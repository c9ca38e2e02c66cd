/**
 * Protocol steps that the suites compose: push a blob or a manifest and check that it
 * worked, list all pages, probe state. Each one asserts the spec's success answer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { call, assertStatus, assertNo5xx, nextLink, json, type Reply } from './http.js';
import { EMPTY_DESCRIPTOR, descriptorOf, digestOf, imageManifest, randomBlob, MediaTypes, type Built, type Descriptor, type DigestAlgorithm } from './fixtures.js';

/** POST then PUT: the push method every registry must support. */
export async function pushBlob(baseUrl: string, repo: string, data: Buffer, alg: DigestAlgorithm = 'sha256'): Promise<string> {
  const digest = digestOf(data, alg);
  const loc = await startUpload(baseUrl, repo);
  const put = await call(baseUrl, 'PUT', withQuery(loc, { digest }), {
    headers: { 'content-type': 'application/octet-stream' },
    body: data,
  });
  assertStatus(put, 201);
  return digest;
}

/** POST /v2/<name>/blobs/uploads/ → the session's Location. */
export async function startUpload(baseUrl: string, repo: string): Promise<string> {
  // fetch sends Content-Length: 0 itself for a POST without a body (and refuses to be told).
  const r = await call(baseUrl, 'POST', `/v2/${repo}/blobs/uploads/`);
  assertStatus(r, 202);
  const loc = r.headers.get('location');
  assert.ok(loc, `${r.what}: 202 without Location`);
  return loc;
}

/** Adds query parameters to a Location, keeping the ones the registry put there. */
export function withQuery(location: string, params: Record<string, string>): string {
  const u = new URL(location, 'http://placeholder.invalid');
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return /^[a-z]+:\/\//i.test(location) ? u.href : `${u.pathname}${u.search}`;
}

export async function pushManifest(baseUrl: string, repo: string, ref: string, m: Built): Promise<Reply> {
  const r = await call(baseUrl, 'PUT', `/v2/${repo}/manifests/${ref}`, {
    headers: { 'content-type': m.mediaType },
    body: m.body,
  });
  assertStatus(r, 201);
  return r;
}

/** Pushes the blobs, then the manifest under each tag (or by digest when no tag). */
export async function pushImage(baseUrl: string, repo: string, blobs: Buffer[], m: Built, tags: string[] = []): Promise<void> {
  for (const b of blobs) await pushBlob(baseUrl, repo, b);
  if (tags.length === 0) await pushManifest(baseUrl, repo, m.digest, m);
  for (const t of tags) await pushManifest(baseUrl, repo, t, m);
}

export async function blobExists(baseUrl: string, repo: string, digest: string): Promise<boolean> {
  const r = await call(baseUrl, 'HEAD', `/v2/${repo}/blobs/${digest}`);
  assertNo5xx(r);
  assertStatus(r, [200, 404]);
  return r.status === 200;
}

/** Every manifest media type, as clients send in Accept (the spec says they SHOULD). */
export const ACCEPT_MANIFESTS = [MediaTypes.manifest, MediaTypes.index, MediaTypes.dockerManifest, MediaTypes.dockerList].join(', ');

export async function manifestExists(baseUrl: string, repo: string, ref: string): Promise<boolean> {
  const r = await call(baseUrl, 'HEAD', `/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT_MANIFESTS } });
  assertNo5xx(r);
  assertStatus(r, [200, 404]);
  return r.status === 200;
}

/** All tags of a repository (following `Link`), or undefined when the repository is unknown. */
export async function listTags(baseUrl: string, repo: string): Promise<string[] | undefined> {
  let url: string | undefined = `/v2/${repo}/tags/list`;
  const tags: string[] = [];
  for (let page = 0; url; page++) {
    assert.ok(page < 1000, 'tags/list pagination does not end');
    const r = await call(baseUrl, 'GET', url);
    assertNo5xx(r);
    if (r.status === 404 && page === 0) return undefined;
    assertStatus(r, 200);
    tags.push(...(json<{ tags?: string[] | null }>(r).tags ?? []));
    url = nextLink(r, baseUrl);
  }
  return tags;
}

/** Follows `Link: rel="next"` from `first`, returning every page's reply. */
export async function allPages(baseUrl: string, first: string, limit = 1000): Promise<Reply[]> {
  const pages: Reply[] = [];
  let url: string | undefined = first;
  const seen = new Set<string>();
  while (url) {
    assert.ok(!seen.has(url), `pagination loops back to ${url}`);
    seen.add(url);
    assert.ok(pages.length < limit, `more than ${limit} pages from ${first}`);
    const r = await call(baseUrl, 'GET', url);
    assertStatus(r, 200);
    pages.push(r);
    url = nextLink(r, baseUrl);
  }
  return pages;
}

/** GET /v2/ answers 200: the registry is up and well. */
export async function assertHealthy(baseUrl: string): Promise<void> {
  const r = await call(baseUrl, 'GET', '/v2/');
  assertStatus(r, 200);
}

/** Content type of blob bodies. */
export const OCTET = { 'content-type': 'application/octet-stream' };

export function header(r: Reply, name: string): string {
  const v = r.headers.get(name);
  assert.ok(v !== null, `${r.what} → ${r.status} has no ${name} header`);
  return v;
}

/** A small image: a config, one layer, and the manifest that names them. */
export function smallImage(label: string): { config: Buffer; layer: Buffer; manifest: Built } {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, label, nonce: randomBytes(8).toString('hex') }));
  const layer = randomBlob(300, label);
  const manifest = imageManifest({ config: descriptorOf(MediaTypes.config, config), layers: [descriptorOf(MediaTypes.layer, layer)] });
  return { config, layer, manifest };
}

export async function pushSmallImage(url: string, repo: string, label: string, tags: string[]): Promise<Built> {
  const img = smallImage(label);
  await pushBlob(url, repo, img.config);
  await pushBlob(url, repo, img.layer);
  if (tags.length === 0) await pushManifest(url, repo, img.manifest.digest, img.manifest);
  for (const t of tags) await pushManifest(url, repo, t, img.manifest);
  return img.manifest;
}

/** An artifact manifest (empty config) that refers to `subject`. */
export function referrer(subject: Descriptor, artifactType: string, annotations: Record<string, string>): Built {
  return imageManifest({ artifactType, config: EMPTY_DESCRIPTOR, layers: [EMPTY_DESCRIPTOR], subject, annotations });
}
