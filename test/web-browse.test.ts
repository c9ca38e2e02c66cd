import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { call, type Reply } from '../src/testkit/http.js';
import { EMPTY_DESCRIPTOR, MediaTypes, descriptorOf, imageIndex, imageManifest } from '../src/testkit/fixtures.js';
import type { Page, RepositorySummary, SearchHit, TagSummary } from '../src/server/web/types.js';
import { CatalogIndex, type IndexedManifest } from '../src/server/web/catalog.js';
import { basic, errorCode, startAuthServer } from './helpers/auth.js';

const json = <T>(r: Reply): T => JSON.parse(r.body.toString()) as T;
const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';

/** Pushes the blobs, then a manifest with these annotations, artifactType and config; returns its digest. */
async function push(url: string, repo: string, tag: string | undefined, o: { annotations?: Record<string, string>; artifactType?: string; config?: string; layer?: string; headers?: Record<string, string>; subject?: { mediaType: string; digest: string; size: number } } = {}): Promise<{ digest: string; size: number; body: Buffer }> {
  const headers = o.headers ?? {};
  const layer = Buffer.from(o.layer ?? `layer of ${repo}:${tag}`);
  const ld = descriptorOf('application/vnd.example.layer', layer);
  const configBody = o.config === undefined ? Buffer.from('{}') : Buffer.from(`{"for":"${o.config}"}`);
  const cd = o.config === undefined ? EMPTY_DESCRIPTOR : descriptorOf(o.config, configBody);
  for (const [d, b] of [[ld, layer], [cd, configBody]] as const) {
    const r = await call(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${d.digest}`, { headers: { ...headers, 'content-type': 'application/octet-stream' }, body: b });
    assert.equal(r.status, 201, r.body.toString());
  }
  const m = imageManifest({ config: cd, layers: [ld], ...(o.artifactType ? { artifactType: o.artifactType } : {}), ...(o.annotations ? { annotations: o.annotations } : {}), ...(o.subject ? { subject: o.subject } : {}) });
  const r = await call(url, 'PUT', `/v2/${repo}/manifests/${tag ?? m.digest}`, { headers: { ...headers, 'content-type': MediaTypes.manifest }, body: m.body });
  assert.equal(r.status, 201, r.body.toString());
  return { digest: m.digest, size: m.body.length + layer.length + cd.size, body: Buffer.from(m.body) };
}

const get = async <T>(s: { url: string }, path: string, headers: Record<string, string> = {}): Promise<T> => {
  const r = await call(s.url, 'GET', path, { headers });
  assert.equal(r.status, 200, `${path}: ${r.body.toString()}`);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  return json<T>(r);
};

/** Every page of a list, following `next`. */
async function all<T>(s: { url: string }, path: string, headers: Record<string, string> = {}): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let next: string | null = null;
  let pages = 0;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const p: Page<T> = await get<Page<T>>(s, next === null ? path : `${path}${sep}cursor=${encodeURIComponent(next)}`, headers);
    items.push(...p.items);
    next = p.next;
    pages++;
  } while (next !== null && pages < 100);
  return { items, pages };
}

async function ready(s: { url: string }): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await call(s.url, 'GET', '/api/v1/repositories?limit=1');
    if (r.headers.get('x-wharf-index') === null) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error('the catalog index never finished its rebuild');
}

test('repositories and tags: paged by cursor, filtered by name and artifactType, with kinds and sizes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-browse-'));
  const s = await startServer({ dataDir: dir, logLevel: 'silent' });
  t.after(() => s.close());
  await ready(s);
  const names = ['apps/web', 'apps/api', 'charts/nginx', 'models/llama', 'models/Mistral-ish', 'data/sets', 'zeta'];
  for (const n of names.map((x) => x.toLowerCase())) await push(s.url, n, 'v1');
  const chart = await push(s.url, 'charts/nginx', '1.2.3', { config: HELM_CONFIG });
  for (let i = 0; i < 5; i++) await push(s.url, 'apps/web', `t${i}`, { layer: `web ${i}` });

  const pages = await all<RepositorySummary>(s, '/api/v1/repositories?limit=3');
  assert.equal(pages.pages, 3);
  assert.deepEqual(pages.items.map((r) => r.name), names.map((x) => x.toLowerCase()).sort());
  const web = pages.items.find((r) => r.name === 'apps/web')!;
  assert.equal(web.tags, 6);
  assert.deepEqual(web.kinds, ['generic']);
  assert.ok(web.updated !== null && web.updated > Date.now() - 60_000);
  const charts = pages.items.find((r) => r.name === 'charts/nginx')!;
  assert.deepEqual(new Set(charts.kinds), new Set(['helm-chart', 'generic']));

  // q: a substring of the name, any case.
  const models = await get<Page<RepositorySummary>>(s, '/api/v1/repositories?q=MODELS/');
  assert.deepEqual(models.items.map((r) => r.name), ['models/llama', 'models/mistral-ish']);
  assert.equal(models.next, null);
  // artifactType: repositories that hold one.
  const helm = await get<Page<RepositorySummary>>(s, `/api/v1/repositories?artifactType=${encodeURIComponent(HELM_CONFIG)}`);
  assert.deepEqual(helm.items.map((r) => r.name), ['charts/nginx']);

  const tags = await all<TagSummary>(s, '/api/v1/tags?repo=apps/web&limit=4');
  assert.equal(tags.pages, 2);
  assert.deepEqual(tags.items.map((x) => x.name), ['t0', 't1', 't2', 't3', 't4', 'v1']);
  const filtered = await get<Page<TagSummary>>(s, '/api/v1/tags?repo=apps/web&q=T3');
  assert.deepEqual(filtered.items.map((x) => x.name), ['t3']);
  const c = (await get<Page<TagSummary>>(s, '/api/v1/tags?repo=charts/nginx&q=1.2')).items[0]!;
  assert.equal(c.digest, chart.digest);
  assert.equal(c.size, chart.size);
  assert.equal(c.kind.kind, 'helm-chart');
  assert.equal(c.artifactType, HELM_CONFIG);
  assert.equal(c.mediaType, MediaTypes.manifest);

  // Bad input: the registry's error body, 4xx.
  for (const [path, code] of [
    ['/api/v1/tags', 'NAME_INVALID'],
    ['/api/v1/tags?repo=Bad/Name', 'NAME_INVALID'],
    ['/api/v1/tags?repo=no/such', 'NAME_UNKNOWN'],
    ['/api/v1/repositories?cursor=!!', 'UNSUPPORTED'],
    ['/api/v1/repositories?cursor=' + Buffer.from('t:x').toString('base64url'), 'UNSUPPORTED'],
    ['/api/v1/search?cursor=' + Buffer.from('s:abc').toString('base64url'), 'UNSUPPORTED'],
    ['/api/v1/repositories?limit=0', 'UNSUPPORTED'],
    ['/api/v1/repositories?limit=ten', 'UNSUPPORTED'],
    ['/api/v1/search?q=' + 'x'.repeat(300), 'UNSUPPORTED'],
  ] as const) {
    const r = await call(s.url, 'GET', path);
    assert.ok(r.status >= 400 && r.status < 500, `${path}: ${r.status}`);
    assert.equal(errorCode(r), code, path);
  }
});

test('search by repository, tag, annotation value and artifactType; index children hidden, referrers found', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-search-'));
  const s = await startServer({ dataDir: dir, logLevel: 'silent' });
  t.after(() => s.close());
  await ready(s);
  const a = await push(s.url, 'ml/resnet', 'v1', { annotations: { 'org.opencontainers.image.description': 'An image classifier trained on ImageNet', 'org.opencontainers.image.source': 'https://git.example/resnet' } });
  await push(s.url, 'ml/bert', 'base', { artifactType: 'application/vnd.example.model', annotations: { purpose: 'language' } });
  const sbom = await push(s.url, 'ml/resnet', undefined, { artifactType: 'application/spdx+json', layer: 'sbom', subject: { mediaType: MediaTypes.manifest, digest: a.digest, size: a.body.length } });
  // A two-platform index: its children are no hits of their own, the index is.
  const p1 = await push(s.url, 'apps/multi', undefined, { config: MediaTypes.config, layer: 'amd64' });
  const p2 = await push(s.url, 'apps/multi', undefined, { config: MediaTypes.config, layer: 'arm64' });
  const idx = imageIndex({ manifests: [{ mediaType: MediaTypes.manifest, digest: p1.digest, size: p1.body.length }, { mediaType: MediaTypes.manifest, digest: p2.digest, size: p2.body.length }] });
  assert.equal((await call(s.url, 'PUT', `/v2/apps/multi/manifests/latest`, { headers: { 'content-type': MediaTypes.index }, body: idx.body })).status, 201);

  const byAnnotation = await get<Page<SearchHit>>(s, '/api/v1/search?q=imagenet');
  assert.deepEqual(byAnnotation.items.map((h) => [h.repo, h.tag, h.digest]), [['ml/resnet', 'v1', a.digest]]);
  assert.deepEqual(byAnnotation.items[0]!.matched, { field: 'annotations.org.opencontainers.image.description', value: 'An image classifier trained on ImageNet' });
  // Short queries scan: still found.
  assert.equal((await get<Page<SearchHit>>(s, '/api/v1/search?q=la')).items.some((h) => h.repo === 'ml/bert'), true);

  const byType = await get<Page<SearchHit>>(s, `/api/v1/search?artifactType=${encodeURIComponent('application/spdx+json')}`);
  assert.deepEqual(byType.items.map((h) => [h.repo, h.tag, h.digest, h.artifactType]), [['ml/resnet', null, sbom.digest, 'application/spdx+json']]);
  const byTypeName = await get<Page<SearchHit>>(s, '/api/v1/search?q=spdx');
  assert.deepEqual(byTypeName.items.map((h) => h.matched?.field), ['artifactType']);

  const byTag = await get<Page<SearchHit>>(s, '/api/v1/search?q=base');
  assert.deepEqual(byTag.items.map((h) => [h.repo, h.tag, h.matched?.field]), [['ml/bert', 'base', 'tag']]);

  const multi = await get<Page<SearchHit>>(s, '/api/v1/search?q=apps/multi');
  assert.deepEqual(multi.items.map((h) => [h.digest, h.kind.kind]), [[idx.digest, 'image-index']]);
  const latest = (await get<Page<TagSummary>>(s, '/api/v1/tags?repo=apps/multi')).items[0]!;
  assert.equal(latest.size, idx.body.length + p1.size + p2.size);

  // Paged: newest first, each hit once.
  const every = await all<SearchHit>(s, '/api/v1/search?limit=2');
  assert.equal(every.items.length, 4);
  assert.equal(new Set(every.items.map((h) => h.digest)).size, 4);
  assert.equal(every.items[0]!.digest, idx.digest);
});

test('a private repository is invisible to anonymous visitors and to users without rights', async (t) => {
  const s = await startAuthServer();
  t.after(() => s.close());
  await ready(s);
  await push(s.url, 'ml/secret', 'v1', { headers: basic('alice'), annotations: { note: 'classified-weights' } });
  await push(s.url, 'public/tool', 'v1', { headers: basic('root'), annotations: { note: 'classified-but-public' } });
  // victim has no rule at all; bob may pull ml/**.
  for (const headers of [{}, basic('victim')]) {
    const repos = await get<Page<RepositorySummary>>(s, '/api/v1/repositories', headers);
    assert.deepEqual(repos.items.map((r) => r.name), ['public/tool']);
    const tags = await call(s.url, 'GET', '/api/v1/tags?repo=ml/secret', { headers });
    assert.equal(tags.status, 404);
    assert.equal(errorCode(tags), 'NAME_UNKNOWN');
    const hits = await get<Page<SearchHit>>(s, '/api/v1/search?q=classified', headers);
    assert.deepEqual(hits.items.map((h) => h.repo), ['public/tool']);
    assert.equal((await get<Page<SearchHit>>(s, '/api/v1/search?q=ml/secret', headers)).items.length, 0);
  }
  const bob = await get<Page<RepositorySummary>>(s, '/api/v1/repositories', basic('bob'));
  assert.deepEqual(bob.items.map((r) => r.name), ['ml/secret', 'public/tool']);
  // A wrong password is a 401, not a silent anonymous.
  assert.equal((await call(s.url, 'GET', '/api/v1/repositories', { headers: basic('bob', 'wrong') })).status, 401);
});

test('the index follows /v2 at once: push, tag move, tag delete, manifest delete', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-follow-'));
  const s = await startServer({ dataDir: dir, logLevel: 'silent' });
  t.after(() => s.close());
  await ready(s);
  const tagsOf = async (): Promise<Array<[string, string]>> => (await get<Page<TagSummary>>(s, '/api/v1/tags?repo=team/app')).items.map((x) => [x.name, x.digest]);
  const one = await push(s.url, 'team/app', 'latest', { layer: 'one' });
  assert.deepEqual(await tagsOf(), [['latest', one.digest]]);
  const two = await push(s.url, 'team/app', 'latest', { layer: 'two', annotations: { release: 'second-release' } });
  assert.deepEqual(await tagsOf(), [['latest', two.digest]]);
  assert.equal((await get<Page<SearchHit>>(s, '/api/v1/search?q=second-release')).items[0]?.tag, 'latest');
  // The old manifest is untagged now: still an artifact, with no tag.
  const old = (await get<Page<SearchHit>>(s, '/api/v1/search?q=team/app')).items.find((h) => h.digest === one.digest);
  assert.equal(old?.tag, null);
  assert.equal((await call(s.url, 'PUT', '/v2/team/app/manifests/stable', { headers: { 'content-type': MediaTypes.manifest }, body: one.body })).status, 201);
  assert.deepEqual(await tagsOf(), [['latest', two.digest], ['stable', one.digest]]);
  assert.equal((await call(s.url, 'DELETE', '/v2/team/app/manifests/stable')).status, 202);
  assert.deepEqual(await tagsOf(), [['latest', two.digest]]);
  assert.equal((await call(s.url, 'DELETE', `/v2/team/app/manifests/${two.digest}`)).status, 202);
  assert.deepEqual(await tagsOf(), []);
  assert.equal((await get<Page<SearchHit>>(s, '/api/v1/search?q=second-release')).items.length, 0);
  assert.equal((await get<Page<RepositorySummary>>(s, '/api/v1/repositories?q=team/app')).items[0]?.tags, 0);
});

test('deletes from the UI: tag and artifact, the delete right, delete.enabled, the audit log', async (t) => {
  const s = await startAuthServer();
  t.after(() => s.close());
  await ready(s);
  const a = await push(s.url, 'ml/model', 'v1', { headers: basic('alice'), layer: 'a' });
  await push(s.url, 'ml/model', 'v2', { headers: basic('alice'), layer: 'b' });
  assert.equal((await call(s.url, 'PUT', '/v2/ml/model/manifests/also-a', { headers: { ...basic('alice'), 'content-type': MediaTypes.manifest }, body: a.body })).status, 201);

  // bob may pull, not delete: DENIED; victim may not even pull: NAME_UNKNOWN; anonymous likewise.
  const bob = await call(s.url, 'DELETE', '/api/v1/tags?repo=ml/model&tag=v2', { headers: basic('bob') });
  assert.equal(bob.status, 403);
  assert.equal(errorCode(bob), 'DENIED');
  assert.equal(errorCode(await call(s.url, 'DELETE', '/api/v1/tags?repo=ml/model&tag=v2', { headers: basic('victim') })), 'NAME_UNKNOWN');
  assert.equal(errorCode(await call(s.url, 'DELETE', '/api/v1/tags?repo=ml/model&tag=v2')), 'NAME_UNKNOWN');
  // Bad input.
  assert.equal(errorCode(await call(s.url, 'DELETE', '/api/v1/tags?repo=ml/model&tag=-bad', { headers: basic('root') })), 'TAG_INVALID');
  assert.equal(errorCode(await call(s.url, 'DELETE', '/api/v1/artifact?repo=ml/model&digest=sha256:nope', { headers: basic('root') })), 'DIGEST_INVALID');
  assert.equal(errorCode(await call(s.url, 'DELETE', '/api/v1/tags?repo=ml/model&tag=nope', { headers: basic('root') })), 'MANIFEST_UNKNOWN');

  assert.equal((await call(s.url, 'DELETE', '/api/v1/tags?repo=ml/model&tag=v2', { headers: basic('root') })).status, 204);
  assert.deepEqual((await get<Page<TagSummary>>(s, '/api/v1/tags?repo=ml/model', basic('root'))).items.map((x) => x.name), ['also-a', 'v1']);
  // An artifact goes with every tag that names it.
  assert.equal((await call(s.url, 'DELETE', `/api/v1/artifact?repo=ml/model&digest=${a.digest}`, { headers: basic('root') })).status, 204);
  assert.deepEqual((await get<Page<TagSummary>>(s, '/api/v1/tags?repo=ml/model', basic('root'))).items, []);
  assert.equal((await call(s.url, 'GET', `/v2/ml/model/manifests/${a.digest}`, { headers: basic('root') })).status, 404);

  // In the audit log as deletes, by root, like a /v2 DELETE; bob's refused attempt too.
  const log = await get<{ records: Array<{ user: string; action: string; method: string; reference: string; digest: string | null; status: number }> }>(s, '/api/v1/audit?action=delete', basic('root'));
  const mine = log.records.map((r) => [r.user, r.method, r.reference, r.status]);
  assert.deepEqual(mine.filter((r) => r[0] === 'root' && r[3] === 204), [['root', 'DELETE', a.digest, 204], ['root', 'DELETE', 'v2', 204]]);
  assert.ok(mine.some((r) => r[0] === 'bob' && r[3] === 403));
  assert.ok(log.records.find((r) => r.reference === 'v2')?.digest?.startsWith('sha256:'));

  const off = await startAuthServer({ delete: { enabled: false } });
  t.after(() => off.close());
  await push(off.url, 'ml/model', 'v1', { headers: basic('alice') });
  const refused = await call(off.url, 'DELETE', '/api/v1/tags?repo=ml/model&tag=v1', { headers: basic('root') });
  assert.equal(refused.status, 405);
  assert.equal(errorCode(refused), 'UNSUPPORTED');
  assert.equal(JSON.parse((await call(off.url, 'GET', '/api/v1/session', { headers: basic('root') })).body.toString()).deleteEnabled, false);
});

test('the index is rebuilt from the store after index.db is deleted, in the background', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-rebuild-'));
  let s: RunningServer = await startServer({ dataDir: dir, logLevel: 'silent' });
  const a = await push(s.url, 'r/one', 'v1', { annotations: { title: 'first of many' } });
  await push(s.url, 'r/one', 'v2', { layer: 'v2' });
  const sbom = await push(s.url, 'r/one', undefined, { artifactType: 'application/spdx+json', layer: 'sbom', subject: { mediaType: MediaTypes.manifest, digest: a.digest, size: a.body.length } });
  await push(s.url, 'r/two', 'latest', { config: HELM_CONFIG });
  const before = await get<Page<TagSummary>>(s, '/api/v1/tags?repo=r/one');
  await s.close();
  await rm(join(dir, 'ui', 'index.db'));
  await rm(join(dir, 'ui', 'index.db-wal'), { force: true });
  await rm(join(dir, 'ui', 'index.db-shm'), { force: true });

  s = await startServer({ dataDir: dir, logLevel: 'silent' });
  t.after(() => s.close());
  await ready(s);
  await stat(join(dir, 'ui', 'index.db'));
  assert.deepEqual((await get<Page<RepositorySummary>>(s, '/api/v1/repositories')).items.map((r) => [r.name, r.tags, r.kinds]), [['r/one', 2, ['generic']], ['r/two', 1, ['helm-chart']]]);
  const after = await get<Page<TagSummary>>(s, '/api/v1/tags?repo=r/one');
  assert.deepEqual(after.items.map((x) => [x.name, x.digest, x.size, x.kind.kind]), before.items.map((x) => [x.name, x.digest, x.size, x.kind.kind]));
  assert.ok(after.items.every((x) => typeof x.updated === 'number'));
  assert.equal((await get<Page<SearchHit>>(s, '/api/v1/search?q=first of')).items[0]?.digest, a.digest);
  // The referrer is found through its subject.
  assert.equal((await get<Page<SearchHit>>(s, `/api/v1/search?artifactType=${encodeURIComponent('application/spdx+json')}`)).items[0]?.digest, sbom.digest);

  // A tag deleted while the UI was off (a server without it) is gone after the next rebuild: here
  // the index is damaged too, so it is replaced and rebuilt.
  await s.close();
  const plain = await startServer({ dataDir: dir, logLevel: 'silent', config: { ui: { enabled: false } } });
  assert.equal((await call(plain.url, 'DELETE', '/v2/r/one/manifests/v2')).status, 202);
  await plain.close();
  await rm(join(dir, 'ui', 'index.db-wal'), { force: true });
  await writeFile(join(dir, 'ui', 'index.db'), 'not a database at all, but long enough to be read as one '.repeat(100));
  s = await startServer({ dataDir: dir, logLevel: 'silent' });
  await ready(s);
  assert.deepEqual((await get<Page<TagSummary>>(s, '/api/v1/tags?repo=r/one')).items.map((x) => x.name), ['v1']);
});

test('a pull-through fill enters the index as it is cached', async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), 'wharf-web-proxy-'));
  const upstream = await startServer({ dataDir: join(tmp, 'up'), logLevel: 'silent' });
  const cache = await startServer({ dataDir: join(tmp, 'cache'), logLevel: 'silent', config: { proxy: { upstreams: [{ namespace: 'up', url: upstream.url }] } } });
  t.after(async () => {
    await cache.close();
    await upstream.close();
  });
  await ready(cache);
  const a = await push(upstream.url, 'team/app', 'v1', { annotations: { description: 'from upstream' } });
  assert.deepEqual((await get<Page<RepositorySummary>>(cache, '/api/v1/repositories')).items, []);
  assert.equal((await call(cache.url, 'GET', '/v2/up/team/app/manifests/v1', { headers: { accept: MediaTypes.manifest } })).status, 200);
  assert.deepEqual((await get<Page<TagSummary>>(cache, '/api/v1/tags?repo=up/team/app')).items.map((x) => [x.name, x.digest]), [['v1', a.digest]]);
  assert.equal((await get<Page<SearchHit>>(cache, '/api/v1/search?q=from upstream')).items[0]?.repo, 'up/team/app');
});

test('an index that cannot be opened costs the lists (503), not the registry', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-noindex-'));
  await mkdir(join(dir, 'ui', 'index.db'), { recursive: true });
  const s = await startServer({ dataDir: dir, logLevel: 'silent' });
  t.after(() => s.close());
  const r = await call(s.url, 'GET', '/api/v1/repositories');
  assert.equal(r.status, 503);
  assert.equal(errorCode(r), 'UNAVAILABLE');
  await push(s.url, 'still/works', 'v1');
  assert.equal((await call(s.url, 'DELETE', '/api/v1/tags?repo=still/works&tag=v1')).status, 204);
});

test('the index pages past its scan budget: short queries over many artifacts, a type over many repositories', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-web-index-'));
  const index = CatalogIndex.open(join(dir, 'index.db'));
  const N = 6000;
  index.batch(() => {
    for (let i = 0; i < N; i++) {
      const repo = `r${String(i % 600).padStart(3, '0')}/x`;
      const m: IndexedManifest = {
        repo, digest: `sha256:${i.toString(16).padStart(64, '0')}`, mediaType: MediaTypes.manifest, artifactType: i % 2 === 0 ? 'application/vnd.even' : null,
        configMediaType: MediaTypes.config, kind: 'image', kindInfo: { kind: 'image', label: 'Container image', icon: 'image', group: null }, size: 1, subject: null, children: [], annotations: i % 1000 === 7 ? { note: 'qz' } : {}, updated: i,
      };
      index.putManifest(m, { name: `t${i}`, updated: i });
    }
  });
  try {
    // 'qz' is two characters: a scan, a window of ids at a time, pages possibly short; every hit once.
    const seen: number[] = [];
    let after: number | undefined;
    let pages = 0;
    do {
      const p = index.search({ q: 'qz', after, limit: 2, visible: () => true });
      seen.push(...p.items.map((h) => Number.parseInt(h.digest.slice(7), 16)));
      after = p.next ?? undefined;
      pages++;
    } while (after !== undefined && pages < 100);
    assert.deepEqual(seen, [5007, 4007, 3007, 2007, 1007, 7]);
    // Repositories by type, paged, through a viewer who sees one in three.
    const names: string[] = [];
    let last: string | undefined;
    pages = 0;
    do {
      const p = index.repositories({ artifactType: 'application/vnd.even', after: last, limit: 7, visible: (r) => Number(r.slice(1, 4)) % 3 === 0 });
      names.push(...p.items.map((r) => r.name));
      last = p.next ?? undefined;
      pages++;
    } while (last !== undefined && pages < 100);
    const want = Array.from({ length: 600 }, (_, i) => i).filter((i) => i % 2 === 0 && i % 3 === 0).map((i) => `r${String(i).padStart(3, '0')}/x`);
    assert.deepEqual(names, want);
  } finally {
    index.close();
  }
});
