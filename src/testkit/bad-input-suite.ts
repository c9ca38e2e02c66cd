/**
 * Bad input any registry must survive: hostile names, tags and digests, broken manifests, lying
 * headers, clients that vanish mid-body, and races. Each answer must be a 4xx with the spec's
 * error body (never a 5xx), and, when the registry under test can show its storage, the store
 * must be left exactly as it was. Plain HTTP and raw sockets only, so any registry can be tested.
 */
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { call, callRaw, rawExchange, assertSpecError, assertNo5xx, assertStatus, json, type Reply } from './http.js';
import { pushBlob, pushManifest, startUpload, withQuery, blobExists, manifestExists } from './steps.js';
import { MediaTypes, EMPTY_DESCRIPTOR, EMPTY_JSON, built, descriptorOf, digestOf, imageManifest, randomBlob, uniqueRepo } from './fixtures.js';
import { knownFailureTest, type RegistryUnderTest, type SuiteOptions } from './registry-suite.js';

/** A registry whose storage the suite may inspect: `snapshot` lists what it holds. */
export interface InspectableRegistry extends RegistryUnderTest {
  /** A stable listing of the stored state (paths and sizes), or undefined when not inspectable. */
  snapshot?: () => Promise<string[]>;
  /** Temporary files and upload sessions still stored, or undefined when not inspectable. */
  leftovers?: () => Promise<string[]>;
}

const OCTET = { 'content-type': 'application/octet-stream' };

/** Runs `fn`, then checks that the registry's storage is what it was before. */
async function unchanged(reg: InspectableRegistry, fn: () => Promise<void>): Promise<void> {
  const before = reg.snapshot ? await reg.snapshot() : undefined;
  await fn();
  if (before && reg.snapshot) assert.deepEqual(await reg.snapshot(), before, 'the store changed');
}

export function badInputSuite(name: string, start: () => Promise<InspectableRegistry>, opts: SuiteOptions = {}): void {
  const known = new Set(opts.knownFailures ?? []);
  const it = (title: string, fn: () => Promise<void>): void => knownFailureTest(name, known, title, fn);
  describe(`bad input: ${name}`, { skip: opts.skip ?? false }, () => {
    let reg: InspectableRegistry;
    let url = '';
    const ns = `bad${randomBytes(3).toString('hex')}`;
    const repo = `${ns}/repo`;
    let blob: Buffer = Buffer.alloc(0);
    let blobDigest = '';
    before(async () => {
      reg = await start();
      url = reg.url;
      blob = randomBlob(1000, 'bad');
      blobDigest = await pushBlob(url, repo, blob);
      await pushBlob(url, repo, EMPTY_JSON);
      await pushManifest(url, repo, 'v1', imageManifest({ config: EMPTY_DESCRIPTOR, layers: [descriptorOf(MediaTypes.layer, blob)] }));
    });
    after(async () => {
      await reg?.stop();
    });

    describe('names', () => {
      const bad = [
        ['dot-dot', `${ns}/../${ns}x`],
        ['leading dot-dot', `../${ns}`],
        ['percent-encoded dot-dot', `${ns}/%2e%2e/x`],
        ['percent-encoded slash', `${ns}%2fx`],
        ['doubled slash', `${ns}//x`],
        ['upper case', `${ns}/Repo`],
        ['300 characters', `${ns}/${'a'.repeat(300)}`],
        ['a component starting with an underscore', `${ns}/_tags`],
        ['a trailing slash', `${ns}/x/`],
        ['a backslash', `${ns}/x\\y`],
      ] as const;
      it('every endpoint refuses an invalid name with 400 NAME_INVALID or 404, and writes nothing', async () => {
        await unchanged(reg, async () => {
          for (const [, n] of bad) {
            const endpoints: Array<[string, string]> = [
              ['GET', `/v2/${n}/tags/list`],
              ['GET', `/v2/${n}/manifests/v1`],
              ['PUT', `/v2/${n}/manifests/v1`],
              ['HEAD', `/v2/${n}/blobs/${blobDigest}`],
              ['POST', `/v2/${n}/blobs/uploads/`],
              ['POST', `/v2/${n}/blobs/uploads/?digest=${blobDigest}`],
              ['GET', `/v2/${n}/referrers/${blobDigest}`],
              ['DELETE', `/v2/${n}/manifests/v1`],
            ];
            for (const [method, path] of endpoints) {
              const r = await callRaw(url, method, path, method === 'PUT' || method === 'POST' ? { headers: OCTET, body: blob } : {});
              assertNo5xx(r);
              assertSpecError(r, [400, 404], ['NAME_INVALID', 'NAME_UNKNOWN', 'MANIFEST_UNKNOWN', 'BLOB_UNKNOWN']);
            }
          }
        });
      });
      it('a mount whose from is an invalid name is refused, or falls back to an upload; never mounts', async () => {
        const target = uniqueRepo(ns, 'mount');
        for (const from of ['..', `${ns}/../${ns}`, '%2e%2e%2frepo', `${ns.toUpperCase()}/repo`]) {
          const r = await callRaw(url, 'POST', `/v2/${target}/blobs/uploads/?mount=${blobDigest}&from=${from}`);
          assertNo5xx(r);
          if (r.status === 202) await call(url, 'DELETE', r.headers.get('location')!);
          else assertSpecError(r, 400, ['NAME_INVALID']);
        }
        assert.equal(await blobExists(url, target, blobDigest), false);
      });
    });

    describe('tags and digests', () => {
      it('an invalid tag on PUT is 400 TAG_INVALID (or MANIFEST_INVALID), and stores nothing', async () => {
        const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [] });
        await unchanged(reg, async () => {
          for (const tag of ['-lead', '.dot', 'a'.repeat(129), '%2e%2e', 'tag%2fx', 'with+plus', 'ünï']) {
            const r = await callRaw(url, 'PUT', `/v2/${repo}/manifests/${encodeURI(tag).replace(/%25/g, '%')}`, { headers: { 'content-type': m.mediaType }, body: m.body });
            assertNo5xx(r);
            assertSpecError(r, [400, 404], ['TAG_INVALID', 'MANIFEST_INVALID', 'NAME_INVALID']);
          }
        });
      });
      it('a malformed digest is 400 DIGEST_INVALID (or 404) on every endpoint, and writes nothing', async () => {
        const bad = ['sha256:abc', `sha256:${'A'.repeat(64)}`, `sha256:${'g'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'sha256:', ':abc', `sha256:${'a'.repeat(64)}x`, 'sha256:..'];
        await unchanged(reg, async () => {
          for (const d of bad) {
            for (const [method, path] of [
              ['GET', `/v2/${repo}/blobs/${d}`],
              ['HEAD', `/v2/${repo}/blobs/${d}`],
              ['DELETE', `/v2/${repo}/blobs/${d}`],
              ['GET', `/v2/${repo}/manifests/${d}`],
              ['DELETE', `/v2/${repo}/manifests/${d}`],
              ['GET', `/v2/${repo}/referrers/${d}`],
            ] as const) {
              const r = await callRaw(url, method, path);
              assertNo5xx(r);
              assertSpecError(r, [400, 404], ['DIGEST_INVALID', 'BLOB_UNKNOWN', 'MANIFEST_UNKNOWN']);
            }
            const mono = await callRaw(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${d}`, { headers: OCTET, body: blob });
            assertSpecError(mono, 400, ['DIGEST_INVALID']);
          }
          const loc = await startUpload(url, repo);
          const put = await call(url, 'PUT', withQuery(loc, { digest: 'sha256:abc' }), { headers: OCTET, body: blob });
          assertSpecError(put, 400, ['DIGEST_INVALID']);
          await call(url, 'DELETE', loc);
        });
      });
      it('a manifest PUT whose digest reference does not match is 400 DIGEST_INVALID', async () => {
        const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [], annotations: { n: 'mismatch' } });
        await unchanged(reg, async () => {
          const r = await call(url, 'PUT', `/v2/${repo}/manifests/${digestOf(randomBytes(4))}`, { headers: { 'content-type': m.mediaType }, body: m.body });
          assertSpecError(r, 400, ['DIGEST_INVALID']);
        });
      });
    });

    describe('manifests', () => {
      const put = (ref: string, contentType: string, body: Buffer | string): Promise<Reply> =>
        call(url, 'PUT', `/v2/${repo}/manifests/${ref}`, { headers: { 'content-type': contentType }, body });
      it('malformed JSON and JSON that is no manifest are 400 MANIFEST_INVALID', async () => {
        const valid = JSON.parse(imageManifest({ config: EMPTY_DESCRIPTOR, layers: [] }).body.toString('utf8')) as Record<string, unknown>;
        const bodies = [
          '{not json',
          '',
          '[]',
          'null',
          '"a string"',
          '{}',
          JSON.stringify({ ...valid, schemaVersion: 1 }),
          JSON.stringify({ ...valid, config: 'nope' }),
          JSON.stringify({ ...valid, layers: {} }),
          JSON.stringify({ ...valid, layers: [{ mediaType: MediaTypes.layer, digest: 'sha256:abc', size: 1 }] }),
          JSON.stringify({ ...valid, layers: [{ mediaType: MediaTypes.layer, digest: blobDigest, size: -1 }] }),
          JSON.stringify({ ...valid, annotations: { a: 1 } }),
          JSON.stringify({ ...valid, subject: { mediaType: MediaTypes.manifest, digest: '../../etc', size: 2 } }),
          Buffer.from([0xff, 0xfe, 0x00, 0x7b]).toString('latin1'),
        ];
        await unchanged(reg, async () => {
          for (const b of bodies) assertSpecError(await put('broken', MediaTypes.manifest, b), 400, ['MANIFEST_INVALID', 'MANIFEST_BLOB_UNKNOWN']);
        });
        assert.equal(await manifestExists(url, repo, 'broken'), false);
      });
      it('a mediaType that contradicts the Content-Type, or is unknown, is 400 MANIFEST_INVALID', async () => {
        const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [] });
        const unknownType = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [], mediaType: 'application/x-not-a-manifest' });
        await unchanged(reg, async () => {
          assertSpecError(await put('wrongtype', MediaTypes.index, m.body), 400, ['MANIFEST_INVALID']);
          assertSpecError(await put('wrongtype', MediaTypes.manifest, unknownType.body), 400, ['MANIFEST_INVALID']);
          // An index body under an image manifest's Content-Type (and no mediaType field to settle it).
          const idx = built(MediaTypes.index, JSON.stringify({ schemaVersion: 2, manifests: [] }));
          assertSpecError(await put('wrongtype', MediaTypes.manifest, idx.body), 400, ['MANIFEST_INVALID']);
        });
        assert.equal(await manifestExists(url, repo, 'wrongtype'), false);
      });
      it('a 5 MiB manifest is 413, with or without Content-Length, and stores nothing', async () => {
        const huge = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [], annotations: { f: 'x'.repeat(5 << 20) } });
        await unchanged(reg, async () => {
          assertStatus(await put('huge', MediaTypes.manifest, huge.body), 413);
          // Chunked: the registry cannot refuse up front and must stop reading at its limit.
          const head = [`PUT /v2/${repo}/manifests/huge HTTP/1.1`, `Host: ${new URL(url).host}`, `Content-Type: ${MediaTypes.manifest}`, 'Transfer-Encoding: chunked', 'Connection: close'].join('\r\n');
          const chunks: Buffer[] = [];
          for (let i = 0; i < huge.body.length; i += 1 << 20) {
            const part = huge.body.subarray(i, i + (1 << 20));
            chunks.push(Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n'));
          }
          chunks.push(Buffer.from('0\r\n\r\n'));
          const ex = await rawExchange(url, head, Buffer.concat(chunks), { timeoutMs: 30_000 });
          assert.ok(ex.reply, 'no answer to a chunked 5 MiB manifest');
          assertStatus(ex.reply, 413);
        });
        assert.equal(await manifestExists(url, repo, 'huge'), false);
      });
    });

    describe('uploads', () => {
      it('a bogus Content-Range on PATCH is 416 or 400, and the upload keeps its offset', async () => {
        const loc = await startUpload(url, repo);
        for (const cr of ['abc', '5-2', 'bytes=0-10', '-1-5', '0-', '99999999999999999999999-99999999999999999999999', '0-9/abc', '1-10']) {
          const r = await call(url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': cr }, body: blob.subarray(0, 10) });
          assertNo5xx(r);
          assertSpecError(r, [400, 416], ['SIZE_INVALID', 'BLOB_UPLOAD_INVALID']);
        }
        // A Content-Range that does not match the body's length.
        const short = await call(url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': '0-99' }, body: blob.subarray(0, 10) });
        assertSpecError(short, [400, 416], ['SIZE_INVALID', 'BLOB_UPLOAD_INVALID']);
        const status = await call(url, 'GET', loc);
        assertStatus(status, 204);
        assert.equal(status.headers.get('range'), '0-0');
        assertStatus(await call(url, 'DELETE', loc), 204);
      });
      it('a Content-Length shorter than the body: the blob is checked against the digest and refused', async () => {
        const b = randomBlob(100, 'short');
        const d = digestOf(b);
        await unchanged(reg, async () => {
          const head = [`POST /v2/${repo}/blobs/uploads/?digest=${d} HTTP/1.1`, `Host: ${new URL(url).host}`, 'Content-Type: application/octet-stream', 'Content-Length: 60', 'Connection: close'].join('\r\n');
          const ex = await rawExchange(url, head, b, { timeoutMs: 30_000 });
          assert.ok(ex.reply, 'no answer');
          assertSpecError(ex.reply, 400, ['DIGEST_INVALID', 'SIZE_INVALID']);
        });
        assert.equal(await blobExists(url, repo, d), false);
      });
      it('a Content-Length longer than the body, then the client stops: nothing is acknowledged', async () => {
        const b = randomBlob(100, 'long');
        const loc = new URL(await startUpload(url, repo), url);
        const head = [`PATCH ${loc.pathname}${loc.search} HTTP/1.1`, `Host: ${loc.host}`, 'Content-Type: application/octet-stream', 'Content-Length: 1000'].join('\r\n');
        const ex = await rawExchange(url, head, b, { end: 'half', afterMs: 20, timeoutMs: 30_000 });
        if (ex.reply) assertNo5xx(ex.reply);
        const status = await call(url, 'GET', loc.href);
        assertStatus(status, 204);
        assert.equal(status.headers.get('range'), '0-0');
        // The upload goes on from where the registry says.
        const put = await call(url, 'PUT', withQuery(loc.href, { digest: digestOf(b) }), { headers: OCTET, body: b });
        assertStatus(put, 201);
        assert.ok((await call(url, 'GET', `/v2/${repo}/blobs/${digestOf(b)}`)).body.equals(b));
      });
      // Small chunks, and chunks of a few MiB (which a registry may hash apart from the request).
      for (const [what, unit] of [['small', 1000], ['large', 1 << 20]] as const) {
        it(`a client that disconnects mid-chunk leaves the acknowledged chunks, and the upload resumes (${what} chunks)`, async () => {
          const b = randomBlob(4 * unit, `gone-${what}`);
          const loc0 = await startUpload(url, repo);
          const first = await call(url, 'PATCH', loc0, { headers: { ...OCTET, 'content-range': `0-${unit - 1}` }, body: b.subarray(0, unit) });
          assertStatus(first, 202);
          const loc = new URL(first.headers.get('location')!, url);
          const head = [`PATCH ${loc.pathname}${loc.search} HTTP/1.1`, `Host: ${loc.host}`, 'Content-Type: application/octet-stream', `Content-Range: ${unit}-${4 * unit - 1}`, `Content-Length: ${3 * unit}`].join('\r\n');
          await rawExchange(url, head, b.subarray(unit, 2 * unit), { end: 'destroy', afterMs: 30 });
          const status = await call(url, 'GET', loc.href);
          assertStatus(status, 204);
          assert.equal(status.headers.get('range'), `0-${unit - 1}`);
          const rest = await call(url, 'PATCH', loc.href, { headers: { ...OCTET, 'content-range': `${unit}-${4 * unit - 1}` }, body: b.subarray(unit) });
          assertStatus(rest, 202);
          const put = await call(url, 'PUT', withQuery(rest.headers.get('location')!, { digest: digestOf(b) }), { headers: OCTET });
          assertStatus(put, 201);
          assert.ok((await call(url, 'GET', `/v2/${repo}/blobs/${digestOf(b)}`)).body.equals(b));
        });
      }
      it('an upload id that is no session (or a path) is 404 BLOB_UPLOAD_UNKNOWN (or 400)', async () => {
        for (const id of ['nope', '..', '%2e%2e', '00000000-0000-0000-0000-000000000000', `${'a'.repeat(300)}`]) {
          for (const method of ['GET', 'PATCH', 'PUT', 'DELETE']) {
            const r = await callRaw(url, method, `/v2/${repo}/blobs/uploads/${id}${method === 'PUT' ? `?digest=${blobDigest}` : ''}`, method === 'GET' || method === 'DELETE' ? {} : { headers: OCTET, body: blob });
            assertNo5xx(r);
            assertSpecError(r, [400, 404], ['BLOB_UPLOAD_UNKNOWN', 'BLOB_UPLOAD_INVALID']);
          }
        }
      });
    });

    describe('ranges and pagination', () => {
      it('reversed, past-the-end and broken ranges: 416 with Content-Range, or the whole blob; never 5xx', async () => {
        for (const range of ['bytes=10-5', 'bytes=1000-', 'bytes=5000-6000', 'bytes=abc', 'bytes=--1', 'bytes=1-2-3', `bytes=${'9'.repeat(30)}-`, 'bytes=0-1,', 'bytes=-0']) {
          const r = await call(url, 'GET', `/v2/${repo}/blobs/${blobDigest}`, { headers: { range } });
          assertNo5xx(r);
          assertStatus(r, [200, 206, 416]);
          if (r.status === 416) assert.equal(r.headers.get('content-range'), `bytes */${blob.length}`, `range ${range}`);
          if (r.status === 200) assert.ok(r.body.equals(blob));
        }
        // A range the server may ignore: another unit.
        const other = await call(url, 'GET', `/v2/${repo}/blobs/${blobDigest}`, { headers: { range: 'items=0-5' } });
        assertStatus(other, 200);
      });
      it('n that is huge is served (clamped, with Link when more remain) or refused; n that is no integer is 400', async () => {
        for (const path of [`/v2/${repo}/tags/list`, '/v2/_catalog']) {
          for (const n of ['99999999999999999999', `1${'0'.repeat(400)}`, '2147483648']) {
            // The spec lets a registry answer fewer results with a Link; some refuse n over their page size.
            const r = await call(url, 'GET', `${path}?n=${n}`);
            assertNo5xx(r);
            if (r.status === 400) assertSpecError(r, 400);
            else json<unknown>(r);
          }
          for (const n of ['-1', 'abc', '1.5', '0x10', '']) {
            const r = await call(url, 'GET', `${path}?n=${n}`);
            assertNo5xx(r);
            if (r.status === 400) assertSpecError(r, 400);
            else assertStatus(r, 200);
          }
          const last = await call(url, 'GET', `${path}?last=${'%ff'.repeat(10)}&n=5`);
          assertNo5xx(last);
        }
      });
    });

    describe('fuzz', () => {
      it('random paths, methods, ranges and bodies: never a 5xx, and only spec error codes', async () => {
        const piece = fc.oneof(
          fc.constantFrom('..', '.', '', '%2e%2e', '%2f', '%00', '%ff', 'A', '_x', '-', 'a..b', '~', ':', '@', 'sha256:', 'sha512:abc', blobDigest, 'v1', 'uploads', 'blobs', 'manifests', 'tags', 'list', 'referrers', '_catalog'),
          fc.stringMatching(/^[a-zA-Z0-9._%:~+@!-]{1,12}$/),
        );
        const path = fc.array(piece, { minLength: 1, maxLength: 6 }).map((parts) => `/v2/${parts.join('/')}`);
        const templated = fc.tuple(fc.constantFrom('manifests', 'blobs', 'blobs/uploads', 'referrers', 'tags/list'), piece, piece).map(([kind, a, b]) => `/v2/${ns}/${a}/${kind}/${kind === 'tags/list' ? '' : b}`);
        const query = fc.option(fc.constantFrom('?n=1', '?n=-5', '?n=99999999999999999999999', '?last=%ff', '?digest=sha256:x', `?digest=${blobDigest}`, `?mount=${blobDigest}&from=..`, '?artifactType=%00'), { nil: '' });
        const headers = fc.record(
          {
            range: fc.constantFrom('bytes=0-0', 'bytes=-1', 'bytes=5-1', 'bytes=a-b', 'bytes=0-1,1-2,,', 'bytes=99999999999999999999-'),
            'content-range': fc.constantFrom('0-0', '1-0', 'x', '0-99999999999999999999', 'bytes 0-1/2'),
            'content-type': fc.constantFrom('application/octet-stream', MediaTypes.manifest, MediaTypes.index, 'text/plain', 'application/json; charset=x'),
          },
          { requiredKeys: [] },
        );
        const body = fc.option(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constantFrom('{', '{}', '{"schemaVersion":2}', '[]').map((t) => new TextEncoder().encode(t))), { nil: undefined });
        await fc.assert(
          fc.asyncProperty(fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'), fc.oneof(path, templated), query, headers, body, async (method, p, q, h, b) => {
            const r = await callRaw(url, method, `${p}${q}`, b === undefined ? { headers: h } : { headers: h, body: b });
            assertNo5xx(r);
            if (r.status >= 400 && method !== 'HEAD' && /json/.test(r.headers.get('content-type') ?? '')) assertSpecError(r, r.status);
          }),
          { numRuns: Number(process.env.WHARF_FUZZ_RUNS ?? 300), seed: Number(process.env.WHARF_FUZZ_SEED ?? 4242) },
        );
        assertStatus(await call(url, 'GET', '/v2/'), 200);
      });
    });

    describe('races', () => {
      it('200 concurrent pushes of the same blob all succeed, store it intact and leave nothing behind', async () => {
        const b = randomBlob(64 * 1024, 'race');
        const d = digestOf(b);
        const r = uniqueRepo(ns, 'race');
        const replies = await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            i % 2 === 0
              ? call(url, 'POST', `/v2/${r}/blobs/uploads/?digest=${d}`, { headers: OCTET, body: b })
              : startUpload(url, r).then((loc) => call(url, 'PUT', withQuery(loc, { digest: d }), { headers: OCTET, body: b })),
          ),
        );
        for (const x of replies) assertStatus(x, 201);
        const get = await call(url, 'GET', `/v2/${r}/blobs/${d}`);
        assertStatus(get, 200);
        assert.ok(get.body.equals(b));
        if (reg.leftovers) assert.deepEqual(await reg.leftovers(), [], 'temporary files or upload sessions were left behind');
      });
      it('a manifest PUT racing a DELETE of one of its blobs: consistent answers, never 5xx', async () => {
        for (let i = 0; i < 20; i++) {
          const r = uniqueRepo(ns, 'putdel');
          const layer = randomBlob(100, `layer${i}`);
          await pushBlob(url, r, EMPTY_JSON);
          const d = await pushBlob(url, r, layer);
          const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [descriptorOf(MediaTypes.layer, layer)] });
          const [p, del] = await Promise.all([
            call(url, 'PUT', `/v2/${r}/manifests/t`, { headers: { 'content-type': m.mediaType }, body: m.body }),
            call(url, 'DELETE', `/v2/${r}/blobs/${d}`),
          ]);
          assertNo5xx(p);
          assertNo5xx(del);
          if (p.status === 201) {
            const g = await call(url, 'GET', `/v2/${r}/manifests/t`, { headers: { accept: m.mediaType } });
            assertStatus(g, 200);
            assert.ok(g.body.equals(m.body));
          } else {
            assertSpecError(p, 400, ['MANIFEST_BLOB_UNKNOWN']);
            assert.equal(await manifestExists(url, r, 't'), false);
          }
          assertStatus(del, [202, 405]);
        }
      });
    });
  });
}
