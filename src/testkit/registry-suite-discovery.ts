/**
 * The content-discovery sections of the registry suite (distribution-spec v1.1.1): the referrers
 * API with its filtering and pagination, and tag and catalog listing. Registered by
 * registrySuite inside its describe(), against the registry it started.
 */
import { describe, before } from 'node:test';
import assert from 'node:assert/strict';
import type { SuiteContext } from './registry-suite.js';
import { randomBytes } from 'node:crypto';
import { call, assertSpecError, assertStatus, nextLink, json, type Reply } from './http.js';
import { pushBlob, pushManifest, allPages, header, smallImage, pushSmallImage, referrer } from './steps.js';
import { MediaTypes, EMPTY_JSON, built, digestOf, imageIndex, uniqueRepo, type Built, type Descriptor } from './fixtures.js';

type IndexBody = { schemaVersion: number; mediaType: string; manifests: Descriptor[] };

export function discoverySections(c: SuiteContext): void {
  describe('referrers', { skip: !c.f.referrers && 'referrers is off' }, () => {
    const repo = uniqueRepo(c.ns, 'referrers');
    let subject: Built;
    const refs: Built[] = [];
    before(async () => {
      subject = await pushSmallImage(c.url, repo, 'subject', ['subject']);
      await pushBlob(c.url, repo, EMPTY_JSON);
      const types = ['application/vnd.example.sig', 'application/vnd.example.sig', 'application/vnd.example.sbom'];
      for (const [i, t] of types.entries()) {
        const m = referrer(subject.descriptor, t, { 'org.example.n': String(i), 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' });
        await pushManifest(c.url, repo, m.digest, m);
        refs.push(m);
      }
    });
    const get = async (query = '', subjectDigest = subject.digest): Promise<Reply> =>
      call(c.url, 'GET', `/v2/${repo}/referrers/${subjectDigest}${query}`);

    c.it('lists every referrer as a descriptor with artifactType and annotations, in an image index', async () => {
      const r = await get();
      assertStatus(r, 200);
      assert.equal(header(r, 'content-type'), MediaTypes.index);
      const body = json<IndexBody>(r);
      assert.equal(body.schemaVersion, 2);
      assert.equal(body.mediaType, MediaTypes.index);
      const byDigest = new Map(body.manifests.map((d) => [d.digest, d]));
      assert.equal(byDigest.size, 3);
      for (const [i, m] of refs.entries()) {
        const d = byDigest.get(m.digest);
        assert.ok(d, `referrer ${m.digest} missing`);
        assert.equal(d.mediaType, MediaTypes.manifest);
        assert.equal(d.size, m.body.length);
        assert.equal(d.artifactType, m.descriptor.artifactType);
        assert.equal(d.annotations?.['org.example.n'], String(i));
      }
    });
    c.it('?artifactType= filters, and OCI-Filters-Applied says so', async () => {
      const r = await get('?artifactType=application/vnd.example.sig');
      assertStatus(r, 200);
      assert.equal(header(r, 'oci-filters-applied'), 'artifactType');
      const body = json<IndexBody>(r);
      assert.deepEqual(body.manifests.map((d) => d.digest).sort(), refs.slice(0, 2).map((m) => m.digest).sort());
    });
    c.it('artifactType: an image manifest without one is listed under its config media type; an index without one, with none', async () => {
      const s2 = await pushSmallImage(c.url, repo, 'subject2', []);
      const img = smallImage('signedimage');
      await pushBlob(c.url, repo, img.config);
      await pushBlob(c.url, repo, img.layer);
      const doc = JSON.parse(img.manifest.body.toString('utf8')) as Record<string, unknown>;
      const plain = built(MediaTypes.manifest, JSON.stringify({ ...doc, subject: s2.descriptor }));
      await pushManifest(c.url, repo, plain.digest, plain);
      const idx = imageIndex({ manifests: [], subject: s2.descriptor, annotations: { kind: 'index' } });
      await pushManifest(c.url, repo, idx.digest, idx);
      const list = json<IndexBody>(await get('', s2.digest)).manifests;
      const p = list.find((d) => d.digest === plain.digest);
      const i = list.find((d) => d.digest === idx.digest);
      assert.ok(p && i, `both referrers listed: ${JSON.stringify(list)}`);
      assert.equal(p.artifactType, MediaTypes.config);
      assert.equal(i.mediaType, MediaTypes.index);
      assert.equal(i.artifactType, undefined);
      assert.deepEqual(i.annotations, { kind: 'index' });
    });
    c.it('a subject with no referrers answers 200 and an empty index', async () => {
      const r = await get('', digestOf(randomBytes(8)));
      assertStatus(r, 200);
      assert.equal(header(r, 'content-type'), MediaTypes.index);
      assert.deepEqual(json<IndexBody>(r).manifests, []);
    });
    c.it('a malformed digest is 400 DIGEST_INVALID', async () => {
      assertSpecError(await get('', 'sha256:nothex'), 400, ['DIGEST_INVALID']);
    });
    c.it('?n= pages with Link: rel="next", and the pages add up to the list', { skip: !c.f.referrersPagination && 'referrersPagination is off' }, async () => {
      const pages = await allPages(c.url, `/v2/${repo}/referrers/${subject.digest}?n=1`);
      assert.equal(pages.length, 3);
      const seen = pages.flatMap((p) => json<IndexBody>(p).manifests.map((d) => d.digest));
      assert.deepEqual(seen.sort(), refs.map((m) => m.digest).sort());
      const filtered = await allPages(c.url, `/v2/${repo}/referrers/${subject.digest}?n=1&artifactType=application/vnd.example.sig`);
      assert.equal(filtered.length, 2);
      for (const p of filtered) assert.equal(header(p, 'oci-filters-applied'), 'artifactType');
    });
    c.it('deleting a referrer by digest removes it from the list', { skip: !c.f.delete && 'delete is off' }, async () => {
      const extra = referrer(subject.descriptor, 'application/vnd.example.tmp', {});
      await pushManifest(c.url, repo, extra.digest, extra);
      assert.ok(json<IndexBody>(await get()).manifests.some((d) => d.digest === extra.digest));
      assertStatus(await call(c.url, 'DELETE', `/v2/${repo}/manifests/${extra.digest}`), 202);
      assert.ok(!json<IndexBody>(await get()).manifests.some((d) => d.digest === extra.digest));
    });
    c.it('a referrer also recorded under the tag schema (<alg>-<hex> holding an index) is listed once', { skip: !c.f.referrersFromTagSchema && 'referrersFromTagSchema is off' }, async () => {
      const other = await pushSmallImage(c.url, repo, 'tagschema', []);
      // A client that did not trust the API also keeps the index under the tag schema.
      const sig = referrer(other.descriptor, 'application/vnd.example.legacy', { k: 'v' });
      await pushManifest(c.url, repo, sig.digest, sig);
      const idx = imageIndex({ manifests: [{ ...sig.descriptor, artifactType: 'application/vnd.example.legacy', annotations: { k: 'v' } }] });
      await pushManifest(c.url, repo, other.digest.replace(':', '-'), idx);
      const list = json<IndexBody>(await get('', other.digest)).manifests;
      assert.equal(list.length, 1, JSON.stringify(list));
      assert.equal(list[0]!.digest, sig.digest);
      assert.equal(list[0]!.artifactType, 'application/vnd.example.legacy');
      assert.equal(list[0]!.annotations?.k, 'v');
    });
  });

  describe('tags and catalog', () => {
    const repo = uniqueRepo(c.ns, 'tags');
    const tags = ['b', 'a', 'c', 'v10', 'v9', 'A-upper', '_under'];
    const sorted = [...tags].sort();
    before(async () => {
      await pushSmallImage(c.url, repo, 'tags', tags);
    });
    c.it('tags/list names every tag, in lexical order', async () => {
      const r = await call(c.url, 'GET', `/v2/${repo}/tags/list`);
      assertStatus(r, 200);
      const body = json<{ name: string; tags: string[] }>(r);
      assert.equal(body.name, repo);
      assert.deepEqual(body.tags, sorted);
    });
    c.it('?n= limits the page and Link points to the next; ?last= starts after a tag', async () => {
      const r = await call(c.url, 'GET', `/v2/${repo}/tags/list?n=2`);
      assertStatus(r, 200);
      assert.deepEqual(json<{ tags: string[] }>(r).tags, sorted.slice(0, 2));
      assert.ok(nextLink(r, c.url), 'no Link: rel="next"');
      const pages = await allPages(c.url, `/v2/${repo}/tags/list?n=2`);
      assert.deepEqual(pages.flatMap((p) => json<{ tags: string[] }>(p).tags), sorted);
      assert.equal(nextLink(pages[pages.length - 1]!, c.url), undefined);
      const after = await call(c.url, 'GET', `/v2/${repo}/tags/list?n=3&last=b`);
      assert.deepEqual(json<{ tags: string[] }>(after).tags, sorted.filter((t) => t > 'b').slice(0, 3));
    });
    c.it('n=0 answers an empty list and no Link', async () => {
      const r = await call(c.url, 'GET', `/v2/${repo}/tags/list?n=0`);
      assertStatus(r, 200);
      assert.deepEqual(json<{ tags: string[] | null }>(r).tags ?? [], []);
      assert.equal(r.headers.get('link'), null);
    });
    c.it('a repository that does not exist is 404 NAME_UNKNOWN', async () => {
      assertSpecError(await call(c.url, 'GET', `/v2/${uniqueRepo(c.ns, 'absent')}/tags/list`), 404, ['NAME_UNKNOWN']);
    });
    c.it('_catalog lists repositories in order, and pages with n, last and Link', { skip: !c.f.catalog && 'catalog is off' }, async () => {
      const mine = [uniqueRepo(c.ns, 'cat'), uniqueRepo(c.ns, 'cat'), uniqueRepo(c.ns, 'cat')];
      for (const r of mine) await pushSmallImage(c.url, r, 'cat', ['x']);
      const all = (await allPages(c.url, '/v2/_catalog?n=2')).flatMap((p) => json<{ repositories: string[] }>(p).repositories);
      assert.deepEqual(all, [...all].sort(), 'catalog is not in lexical order');
      for (const r of mine) assert.ok(all.includes(r), `${r} missing from the catalog`);
      const first = [...mine].sort()[0]!;
      const after = await call(c.url, 'GET', `/v2/_catalog?n=1&last=${encodeURIComponent(first)}`);
      assertStatus(after, 200);
      const page = json<{ repositories: string[] }>(after).repositories;
      assert.equal(page.length, 1);
      assert.ok(page[0]! > first);
    });
  });
}
