/**
 * A conformance suite for any OCI registry, written from distribution-spec v1.1.1 (spec.md): the
 * /v2/ check, blob pulls and range reads, every upload method, cross-repository mounts, manifests,
 * the referrers API, tag and catalog pagination, and the error bodies. It speaks plain HTTP only
 * and knows nothing of Wharf, so it can be pointed at any registry; `features` switches off what
 * the spec leaves optional (or what an older registry lacks).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { call, assertSpecError, assertStatus } from './http.js';
import { pushBlob, pushManifest, blobExists, manifestExists, listTags, header, smallImage, pushSmallImage, referrer } from './steps.js';
import {
  MediaTypes,
  EMPTY_JSON,
  EMPTY_DESCRIPTOR,
  built,
  descriptorOf,
  digestOf,
  imageIndex,
  imageManifest,
  randomBlob,
  uniqueRepo,
  type Descriptor,
} from './fixtures.js';
import { blobSections } from './registry-suite-blobs.js';
import { discoverySections } from './registry-suite-discovery.js';

/** node:test's test(), with a registry's known failures reported as skipped (see knownFailureTest). */
export type SuiteTest = (title: string, a: { skip?: string | false } | (() => Promise<void>), b?: () => Promise<void>) => void;

/** What the sections share with the suite: its features, its test(), its namespace and the registry's URL (known once the suite's before() ran). */
export interface SuiteContext {
  readonly f: SuiteFeatures;
  readonly it: SuiteTest;
  readonly ns: string;
  readonly url: string;
}

/** A running registry the suite talks to over plain HTTP. */
export interface RegistryUnderTest {
  /** `http://127.0.0.1:<port>` */
  url: string;
  stop(): Promise<void>;
}

/** What the spec leaves optional. Every switch defaults to on. */
export interface SuiteFeatures {
  /** `GET /v2/<name>/referrers/<digest>` (spec v1.1). */
  referrers: boolean;
  /** Referrers listed in an index under the tag schema `<alg>-<hex>` also appear in the API. */
  referrersFromTagSchema: boolean;
  /** `?n=` on the referrers API pages with `Link`. */
  referrersPagination: boolean;
  /** sha512 digests for blobs and manifests. */
  sha512: boolean;
  /** Several ranges in one `Range` header answer `multipart/byteranges`. */
  multiRange: boolean;
  /** A manifest over 4 MiB gets 413. */
  manifestLimit413: boolean;
  /** DELETE of manifests and tags; off: the suite checks that DELETE answers 405. */
  delete: boolean;
  /** DELETE of a manifest by tag (spec v1.1) rather than only by digest. */
  deleteByTag: boolean;
  /** A manifest PUT with a `subject` answers `OCI-Subject`. */
  ociSubjectHeader: boolean;
  /** A chunk that does not start where the upload ends gets 416. */
  chunkOrder416: boolean;
  /** `GET /v2/_catalog`. */
  catalog: boolean;
}

const DEFAULTS: SuiteFeatures = {
  referrers: true,
  referrersFromTagSchema: true,
  referrersPagination: true,
  sha512: true,
  multiRange: true,
  manifestLimit413: true,
  delete: true,
  deleteByTag: true,
  ociSubjectHeader: true,
  chunkOrder416: true,
  catalog: true,
};

export interface SuiteOptions {
  /** Why the whole suite cannot run here (e.g. a peer binary is missing). */
  skip?: string | undefined;
  /**
   * Titles of tests this registry is known to fail. They still run; a failure is reported as
   * skipped with its reason, a pass with a note to take the title off this list.
   */
  knownFailures?: readonly string[];
}

/**
 * node:test's test(), for a suite run against a registry with known departures from the spec.
 * A known failure still runs, but is reported as skipped, with the registry's name and the
 * assertion it failed, rather than as node:test `todo`, which the spec reporter lists with a ✖
 * and a stack trace under "failing tests" and makes a green run read as red. One that passes is
 * reported as passed with a note, so that the list does not outlive the departures it names.
 */
export function knownFailureTest(registry: string, known: ReadonlySet<string>, title: string, fn: () => Promise<void>, skip: string | false = false): void {
  if (!known.has(title)) {
    test(title, { skip }, fn);
    return;
  }
  test(title, { skip }, async (t) => {
    try {
      await fn();
    } catch (err) {
      // One line, cut short: the reason is there to be read in the run's report, not debugged from.
      const why = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 200);
      t.skip(`known departure of ${registry} from the spec: ${why}`);
      return;
    }
    t.diagnostic(`listed as a known failure of ${registry} but passed: take it off knownFailures`);
  });
}

/**
 * Registers the suite with node:test under `name`. `start` is called once, before the first test;
 * the registry must start empty or hold only repositories of other names.
 */
export function registrySuite(name: string, start: () => Promise<RegistryUnderTest>, features: Partial<SuiteFeatures> = {}, opts: SuiteOptions = {}): void {
  const f: SuiteFeatures = { ...DEFAULTS, ...features };
  const known = new Set(opts.knownFailures ?? []);
  const used = new Set<string>();
  const it: SuiteTest = (title, a, b) => {
    const fn = typeof a === 'function' ? a : b!;
    const skip = typeof a === 'function' ? false : (a.skip ?? false);
    if (known.has(title)) used.add(title);
    knownFailureTest(name, known, title, fn, skip);
  };
  describe(`registry conformance: ${name}`, { skip: opts.skip ?? false }, () => {
    let reg: RegistryUnderTest;
    let url = '';
    const ns = `conf${randomBytes(3).toString('hex')}`;
    before(async () => {
      reg = await start();
      url = reg.url;
    });
    after(async () => {
      await reg?.stop();
      const stale = [...known].filter((k) => !used.has(k));
      assert.deepEqual(stale, [], 'knownFailures names tests that do not exist');
    });

    describe('base', () => {
      it('GET /v2/ answers 200', async () => {
        assertStatus(await call(url, 'GET', '/v2/'), 200);
      });
      it('a path that is no endpoint answers 404', async () => {
        const r = await call(url, 'GET', `/v2/${ns}/nothing/here`);
        assertStatus(r, 404);
      });
    });

    const sections: SuiteContext = {
      f,
      it,
      ns,
      // Read when a test runs: the registry's URL is known only once before() has started it.
      get url() {
        return url;
      },
    };

    blobSections(sections);

    describe('manifests', () => {
      const repo = uniqueRepo(ns, 'manifests');
      it('PUT by tag answers 201 with Location and Docker-Content-Digest; GET by tag and by digest give the same bytes', async () => {
        const m = await pushSmallImage(url, repo, 'bytag', []);
        const put = await call(url, 'PUT', `/v2/${repo}/manifests/v1`, { headers: { 'content-type': m.mediaType }, body: m.body });
        assertStatus(put, 201);
        assert.ok(header(put, 'location').length > 0);
        assert.equal(header(put, 'docker-content-digest'), m.digest);
        for (const ref of ['v1', m.digest]) {
          const r = await call(url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept: MediaTypes.manifest } });
          assertStatus(r, 200);
          assert.ok(r.body.equals(m.body), `GET ${ref}: bytes differ`);
          assert.equal(header(r, 'content-type'), MediaTypes.manifest);
          assert.equal(header(r, 'docker-content-digest'), m.digest);
          const h = await call(url, 'HEAD', `/v2/${repo}/manifests/${ref}`, { headers: { accept: MediaTypes.manifest } });
          assertStatus(h, 200);
          assert.equal(header(h, 'content-length'), String(m.body.length));
          assert.equal(header(h, 'docker-content-digest'), m.digest);
          assert.equal(header(h, 'content-type'), MediaTypes.manifest);
        }
      });
      it('manifests are stored byte for byte: whitespace and key order are kept', async () => {
        const img = smallImage('bytes');
        await pushBlob(url, repo, img.config);
        await pushBlob(url, repo, img.layer);
        const doc = JSON.parse(img.manifest.body.toString('utf8')) as Record<string, unknown>;
        const odd = built(MediaTypes.manifest, `{\n   "layers": ${JSON.stringify(doc.layers, null, 3)},\n "config" : ${JSON.stringify(doc.config)},\t"schemaVersion":2,"mediaType":"${MediaTypes.manifest}"}\n\n`);
        await pushManifest(url, repo, odd.digest, odd);
        const r = await call(url, 'GET', `/v2/${repo}/manifests/${odd.digest}`, { headers: { accept: MediaTypes.manifest } });
        assert.ok(r.body.equals(odd.body), 'bytes differ');
      });
      it('an image index, and a Docker schema 2 manifest and list, each come back with their media type', async () => {
        const dockerConfig = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
        const layer = randomBlob(64, 'docker');
        await pushBlob(url, repo, dockerConfig);
        await pushBlob(url, repo, layer);
        const docker = imageManifest({ mediaType: MediaTypes.dockerManifest, config: descriptorOf(MediaTypes.dockerConfig, dockerConfig), layers: [descriptorOf(MediaTypes.dockerLayer, layer)] });
        await pushManifest(url, repo, 'docker', docker);
        const oci = await pushSmallImage(url, repo, 'idx', []);
        const platform = (architecture: string): { architecture: string; os: string } => ({ architecture, os: 'linux' });
        const index = imageIndex({ manifests: [{ ...oci.descriptor, platform: platform('amd64') }] });
        const list = imageIndex({ mediaType: MediaTypes.dockerList, manifests: [{ ...docker.descriptor, platform: platform('arm64') }] });
        await pushManifest(url, repo, 'index', index);
        await pushManifest(url, repo, 'list', list);
        for (const [tag, m] of [['docker', docker], ['index', index], ['list', list]] as const) {
          const r = await call(url, 'GET', `/v2/${repo}/manifests/${tag}`, { headers: { accept: m.mediaType } });
          assertStatus(r, 200);
          assert.equal(header(r, 'content-type'), m.mediaType);
          assert.ok(r.body.equals(m.body));
        }
      });
      it('a manifest and an index without a mediaType field come back with the Content-Type they were pushed with', async () => {
        const oci = await pushSmallImage(url, repo, 'typed', []);
        const doc = JSON.parse(oci.body.toString('utf8')) as Record<string, unknown>;
        delete doc.mediaType;
        const bare = built(MediaTypes.manifest, JSON.stringify(doc));
        const bareIndex = built(MediaTypes.index, JSON.stringify({ schemaVersion: 2, manifests: [oci.descriptor] }));
        for (const [tag, m] of [['bare', bare], ['bare-index', bareIndex]] as const) {
          await pushManifest(url, repo, tag, m);
          for (const ref of [tag, m.digest]) {
            const r = await call(url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept: m.mediaType } });
            assertStatus(r, 200);
            assert.equal(header(r, 'content-type'), m.mediaType, `${ref}`);
            assert.ok(r.body.equals(m.body));
          }
        }
      });
      it('HEAD answers the same status and headers as GET, for blobs and manifests, without a body', async () => {
        const m = await pushSmallImage(url, repo, 'parity', ['parity']);
        const layer = (JSON.parse(m.body.toString('utf8')) as { layers: Descriptor[] }).layers[0]!;
        const same = ['content-type', 'content-length', 'docker-content-digest', 'etag', 'content-range', 'accept-ranges'];
        const cases: Array<[string, Record<string, string>]> = [
          [`/v2/${repo}/manifests/parity`, { accept: MediaTypes.manifest }],
          [`/v2/${repo}/manifests/${m.digest}`, { accept: MediaTypes.manifest }],
          [`/v2/${repo}/blobs/${layer.digest}`, {}],
          [`/v2/${repo}/blobs/${layer.digest}`, { range: 'bytes=5-9' }],
        ];
        for (const [path, headers] of cases) {
          const g = await call(url, 'GET', path, { headers });
          const h = await call(url, 'HEAD', path, { headers });
          assert.equal(h.status, g.status, `HEAD ${path}`);
          for (const k of same) assert.equal(h.headers.get(k), g.headers.get(k), `HEAD ${path}: ${k}`);
          assert.equal(header(g, 'content-length'), String(g.body.length), `GET ${path}: Content-Length`);
        }
      });
      it('a PUT under an existing tag moves it; the same PUT again is accepted and changes nothing', async () => {
        const first = await pushSmallImage(url, repo, 'move1', ['moving']);
        const second = await pushSmallImage(url, repo, 'move2', ['moving']);
        const get = await call(url, 'GET', `/v2/${repo}/manifests/moving`, { headers: { accept: MediaTypes.manifest } });
        assert.equal(header(get, 'docker-content-digest'), second.digest);
        assert.ok(await manifestExists(url, repo, first.digest), 'the old manifest stays by digest');
        await pushManifest(url, repo, 'moving', second);
        assert.ok((await call(url, 'GET', `/v2/${repo}/manifests/moving`, { headers: { accept: MediaTypes.manifest } })).body.equals(second.body));
      });
      it('an unknown manifest is 404 MANIFEST_UNKNOWN, by tag and by digest', async () => {
        await pushSmallImage(url, repo, 'known', ['known']);
        assertSpecError(await call(url, 'GET', `/v2/${repo}/manifests/nosuchtag`), 404, ['MANIFEST_UNKNOWN']);
        assertSpecError(await call(url, 'GET', `/v2/${repo}/manifests/${digestOf(randomBytes(8))}`), 404, ['MANIFEST_UNKNOWN']);
        assertStatus(await call(url, 'HEAD', `/v2/${repo}/manifests/nosuchtag`), 404);
      });
      it('a reference that is no valid tag cannot exist: GET and HEAD answer 404', async () => {
        // The OCI conformance suite asks for ".INVALID_MANIFEST_NAME" and expects 404.
        assertStatus(await call(url, 'HEAD', `/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`), 404);
        assertSpecError(await call(url, 'GET', `/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`), 404, ['MANIFEST_UNKNOWN']);
      });
      it('a layer that was not pushed is 400 MANIFEST_BLOB_UNKNOWN', async () => {
        const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [descriptorOf(MediaTypes.layer, randomBytes(32))] });
        await pushBlob(url, repo, EMPTY_JSON);
        assertSpecError(await call(url, 'PUT', `/v2/${repo}/manifests/missing`, { headers: { 'content-type': m.mediaType }, body: m.body }), 400, ['MANIFEST_BLOB_UNKNOWN']);
        assert.equal(await manifestExists(url, repo, 'missing'), false);
      });
      it('an index whose child was not pushed is 400 MANIFEST_BLOB_UNKNOWN', async () => {
        const child = smallImage('absent').manifest;
        const idx = imageIndex({ manifests: [child.descriptor] });
        assertSpecError(await call(url, 'PUT', `/v2/${repo}/manifests/absentchild`, { headers: { 'content-type': idx.mediaType }, body: idx.body }), 400, ['MANIFEST_BLOB_UNKNOWN', 'MANIFEST_UNKNOWN']);
      });
      it('PUT by a digest that is not the body\'s is 400 DIGEST_INVALID', async () => {
        const img = smallImage('wrongdigest');
        await pushBlob(url, repo, img.config);
        await pushBlob(url, repo, img.layer);
        const r = await call(url, 'PUT', `/v2/${repo}/manifests/${digestOf(randomBytes(8))}`, { headers: { 'content-type': img.manifest.mediaType }, body: img.manifest.body });
        assertSpecError(r, 400, ['DIGEST_INVALID']);
      });
      it('a manifest over 4 MiB is 413', { skip: !f.manifestLimit413 && 'manifestLimit413 is off' }, async () => {
        const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [], annotations: { filler: 'x'.repeat(4 * 1024 * 1024 + 16) } });
        const r = await call(url, 'PUT', `/v2/${repo}/manifests/huge`, { headers: { 'content-type': m.mediaType }, body: m.body });
        assertStatus(r, 413);
        assert.equal(await manifestExists(url, repo, 'huge'), false);
      });
      it('a subject that does not exist is accepted, and the PUT answers OCI-Subject', async () => {
        await pushBlob(url, repo, EMPTY_JSON);
        const ghost = smallImage('ghost').manifest.descriptor;
        const m = referrer(ghost, 'application/vnd.example.sig', { a: 'b' });
        const r = await pushManifest(url, repo, m.digest, m);
        if (f.ociSubjectHeader) assert.equal(header(r, 'oci-subject'), ghost.digest);
      });
      it('sha512: a manifest PUT by its sha512 digest is served by it', { skip: !f.sha512 && 'sha512 is off' }, async () => {
        const img = smallImage('m512');
        await pushBlob(url, repo, img.config);
        await pushBlob(url, repo, img.layer);
        const d = digestOf(img.manifest.body, 'sha512');
        const put = await call(url, 'PUT', `/v2/${repo}/manifests/${d}`, { headers: { 'content-type': img.manifest.mediaType }, body: img.manifest.body });
        assertStatus(put, 201);
        const get = await call(url, 'GET', `/v2/${repo}/manifests/${d}`, { headers: { accept: MediaTypes.manifest } });
        assertStatus(get, 200);
        assert.equal(header(get, 'docker-content-digest'), d);
        assert.ok(get.body.equals(img.manifest.body));
      });
    });

    describe('manifests: delete', () => {
      const repo = uniqueRepo(ns, 'delete');
      it('DELETE by tag removes the tag only', { skip: !(f.delete && f.deleteByTag) && 'delete by tag is off' }, async () => {
        const m = await pushSmallImage(url, repo, 'deltag', ['one', 'two']);
        assertStatus(await call(url, 'DELETE', `/v2/${repo}/manifests/one`), 202);
        assert.equal(await manifestExists(url, repo, 'one'), false);
        assert.equal(await manifestExists(url, repo, 'two'), true);
        assert.equal(await manifestExists(url, repo, m.digest), true);
        assert.deepEqual((await listTags(url, repo))?.includes('one'), false);
      });
      it('DELETE by digest removes the manifest and the tags that name it', { skip: !f.delete && 'delete is off' }, async () => {
        const m = await pushSmallImage(url, repo, 'deldigest', ['three']);
        assertStatus(await call(url, 'DELETE', `/v2/${repo}/manifests/${m.digest}`), 202);
        assertSpecError(await call(url, 'GET', `/v2/${repo}/manifests/${m.digest}`), 404, ['MANIFEST_UNKNOWN']);
        assert.equal(await manifestExists(url, repo, 'three'), false);
        assertSpecError(await call(url, 'DELETE', `/v2/${repo}/manifests/${m.digest}`), 404, ['MANIFEST_UNKNOWN']);
      });
      it('DELETE of a blob: 202, then 404', { skip: !f.delete && 'delete is off' }, async () => {
        const d = await pushBlob(url, repo, randomBlob(50, 'delblob'));
        assertStatus(await call(url, 'DELETE', `/v2/${repo}/blobs/${d}`), 202);
        assertStatus(await call(url, 'HEAD', `/v2/${repo}/blobs/${d}`), 404);
        assertSpecError(await call(url, 'DELETE', `/v2/${repo}/blobs/${d}`), 404, ['BLOB_UNKNOWN']);
      });
      it('with deletion disabled, DELETE answers 405 and removes nothing', { skip: f.delete && 'delete is on' }, async () => {
        const m = await pushSmallImage(url, repo, 'nodelete', ['keep']);
        const d = await pushBlob(url, repo, randomBlob(50, 'keepblob'));
        assertSpecError(await call(url, 'DELETE', `/v2/${repo}/manifests/keep`), 405, ['UNSUPPORTED']);
        assertSpecError(await call(url, 'DELETE', `/v2/${repo}/manifests/${m.digest}`), 405, ['UNSUPPORTED']);
        assertSpecError(await call(url, 'DELETE', `/v2/${repo}/blobs/${d}`), 405, ['UNSUPPORTED']);
        assert.ok(await manifestExists(url, repo, 'keep'));
        assert.ok(await blobExists(url, repo, d));
      });
    });

    discoverySections(sections);

    describe('errors', () => {
      it('error bodies carry a spec code for every failure kind', async () => {
        const repo = uniqueRepo(ns, 'errors');
        assertSpecError(await call(url, 'GET', `/v2/${repo}/blobs/sha256:abc`), [400, 404], ['DIGEST_INVALID', 'BLOB_UNKNOWN', 'NAME_INVALID']);
        assertSpecError(await call(url, 'GET', `/v2/${repo}/manifests/sha256:abc`), [400, 404], ['DIGEST_INVALID', 'MANIFEST_UNKNOWN']);
        assertSpecError(await call(url, 'GET', `/v2/${repo}/blobs/uploads/not-an-upload`), [400, 404], ['BLOB_UPLOAD_UNKNOWN']);
        assertSpecError(await call(url, 'GET', '/v2/UPPER/tags/list'), [400, 404], ['NAME_INVALID', 'NAME_UNKNOWN']);
      });
    });
  });
}
