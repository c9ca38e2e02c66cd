/**
 * The blob sections of the registry suite (distribution-spec v1.1.1): pulls with HEAD and ranges,
 * monolithic and chunked uploads with their failures, and cross-repository mounts. Registered by
 * registrySuite inside its describe(), against the registry it started.
 */
import { describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { call, assertSpecError, assertStatus, type Reply } from './http.js';
import { pushBlob, startUpload, withQuery, blobExists, header, OCTET } from './steps.js';
import { digestOf, randomBlob, uniqueRepo } from './fixtures.js';
import { byteRangesBoundary, parseByteRanges } from './multipart.js';
import type { SuiteContext } from './registry-suite.js';

export function blobSections(c: SuiteContext): void {
  describe('blobs: pull', () => {
    const repo = uniqueRepo(c.ns, 'pull');
    const data = randomBlob(1000, 'pull');
    let digest = '';
    before(async () => {
      digest = await pushBlob(c.url, repo, data);
    });
    c.it('GET answers the bytes with Docker-Content-Digest', async () => {
      const r = await call(c.url, 'GET', `/v2/${repo}/blobs/${digest}`);
      assertStatus(r, 200);
      assert.ok(r.body.equals(data), 'blob bytes differ');
      assert.equal(header(r, 'docker-content-digest'), digest);
    });
    c.it('HEAD answers Content-Length and Docker-Content-Digest, and no body', async () => {
      const r = await call(c.url, 'HEAD', `/v2/${repo}/blobs/${digest}`);
      assertStatus(r, 200);
      assert.equal(header(r, 'content-length'), String(data.length));
      assert.equal(header(r, 'docker-content-digest'), digest);
      assert.equal(r.body.length, 0);
    });
    c.it('an unknown blob is 404 BLOB_UNKNOWN (GET) and 404 (HEAD)', async () => {
      const unknown = digestOf(randomBytes(16));
      assertSpecError(await call(c.url, 'GET', `/v2/${repo}/blobs/${unknown}`), 404, ['BLOB_UNKNOWN']);
      assertStatus(await call(c.url, 'HEAD', `/v2/${repo}/blobs/${unknown}`), 404);
    });
    c.it('a blob of another repository is unknown here', async () => {
      assertStatus(await call(c.url, 'HEAD', `/v2/${uniqueRepo(c.ns, 'other')}/blobs/${digest}`), 404);
    });
    c.it('a single range answers 206 with Content-Range', async () => {
      const r = await call(c.url, 'GET', `/v2/${repo}/blobs/${digest}`, { headers: { range: 'bytes=10-19' } });
      assertStatus(r, 206);
      assert.equal(header(r, 'content-range'), `bytes 10-19/${data.length}`);
      assert.ok(r.body.equals(data.subarray(10, 20)), 'range bytes differ');
    });
    c.it('a suffix range and an open-ended range', async () => {
      const suffix = await call(c.url, 'GET', `/v2/${repo}/blobs/${digest}`, { headers: { range: 'bytes=-5' } });
      assertStatus(suffix, 206);
      assert.ok(suffix.body.equals(data.subarray(data.length - 5)));
      const open = await call(c.url, 'GET', `/v2/${repo}/blobs/${digest}`, { headers: { range: 'bytes=990-' } });
      assertStatus(open, 206);
      assert.equal(header(open, 'content-range'), `bytes 990-999/${data.length}`);
      assert.ok(open.body.equals(data.subarray(990)));
    });
    c.it('several ranges answer multipart/byteranges', { skip: !c.f.multiRange && 'multiRange is off' }, async () => {
      const r = await call(c.url, 'GET', `/v2/${repo}/blobs/${digest}`, { headers: { range: 'bytes=0-3,100-149,-2' } });
      assertStatus(r, 206);
      const boundary = byteRangesBoundary(r.headers.get('content-type'));
      assert.ok(boundary, `Content-Type is ${r.headers.get('content-type')}`);
      const parts = parseByteRanges(r.body, boundary);
      assert.deepEqual(parts.map((p) => [p.first, p.last, p.complete]), [[0, 3, 1000], [100, 149, 1000], [998, 999, 1000]]);
      for (const p of parts) assert.ok(p.data.equals(data.subarray(p.first, p.last + 1)), `part ${p.first}-${p.last} differs`);
    });
    c.it('an unsatisfiable range answers 416 with Content-Range: bytes */size', async () => {
      const r = await call(c.url, 'GET', `/v2/${repo}/blobs/${digest}`, { headers: { range: 'bytes=5000-6000' } });
      assertStatus(r, 416);
      assert.equal(header(r, 'content-range'), `bytes */${data.length}`);
    });
    c.it('a zero-byte blob', async () => {
      const empty = Buffer.alloc(0);
      const d = await pushBlob(c.url, repo, empty);
      assert.equal(d, 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
      const head = await call(c.url, 'HEAD', `/v2/${repo}/blobs/${d}`);
      assertStatus(head, 200);
      assert.equal(header(head, 'content-length'), '0');
      const get = await call(c.url, 'GET', `/v2/${repo}/blobs/${d}`);
      assertStatus(get, 200);
      assert.equal(get.body.length, 0);
    });
    c.it('sha512 digests', { skip: !c.f.sha512 && 'sha512 is off' }, async () => {
      const b = randomBlob(777, 'sha512');
      const d = digestOf(b, 'sha512');
      const r = await call(c.url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${d}`, { headers: OCTET, body: b });
      assertStatus(r, 201);
      const get = await call(c.url, 'GET', `/v2/${repo}/blobs/${d}`);
      assertStatus(get, 200);
      assert.ok(get.body.equals(b));
      assert.equal(header(get, 'docker-content-digest'), d);
      assertSpecError(await call(c.url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${digestOf(randomBytes(4), 'sha512')}`, { headers: OCTET, body: b }), 400, ['DIGEST_INVALID']);
    });
  });

  describe('blobs: push', () => {
    const repo = uniqueRepo(c.ns, 'push');
    c.it('monolithic POST ?digest= answers 201 with Location', async () => {
      const b = randomBlob(500, 'mono');
      const d = digestOf(b);
      const r = await call(c.url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${d}`, { headers: OCTET, body: b });
      assertStatus(r, 201);
      assert.ok(header(r, 'location').includes(d), `Location ${r.headers.get('location')} does not name the blob`);
      assert.ok(await blobExists(c.url, repo, d));
    });
    c.it('POST then PUT ?digest= answers 202, then 201', async () => {
      const b = randomBlob(500, 'postput');
      const loc = await startUpload(c.url, repo);
      const d = digestOf(b);
      const put = await call(c.url, 'PUT', withQuery(loc, { digest: d }), { headers: OCTET, body: b });
      assertStatus(put, 201);
      assert.ok(header(put, 'location').length > 0);
      assert.ok((await call(c.url, 'GET', `/v2/${repo}/blobs/${d}`)).body.equals(b));
    });
    c.it('chunked: PATCH with Content-Range, GET status, out-of-order 416, final PUT', async () => {
      const b = randomBlob(3000, 'chunks');
      let loc = await startUpload(c.url, repo);
      const patch = async (from: number, to: number): Promise<Reply> =>
        call(c.url, 'PATCH', loc, { headers: { ...OCTET, 'content-range': `${from}-${to - 1}` }, body: b.subarray(from, to) });
      const first = await patch(0, 1000);
      assertStatus(first, 202);
      assert.equal(header(first, 'range'), '0-999');
      loc = header(first, 'location');
      const status = await call(c.url, 'GET', loc);
      assertStatus(status, 204);
      assert.equal(header(status, 'range'), '0-999');
      assert.ok(header(status, 'location').length > 0);
      if (c.f.chunkOrder416) {
        // A gap and an overlap: both start somewhere other than byte 1000.
        assertStatus(await patch(1500, 2000), 416);
        assertStatus(await patch(500, 1500), 416);
        const still = await call(c.url, 'GET', loc);
        assert.equal(header(still, 'range'), '0-999');
      }
      const second = await patch(1000, 2000);
      assertStatus(second, 202);
      assert.equal(header(second, 'range'), '0-1999');
      loc = header(second, 'location');
      const d = digestOf(b);
      const put = await call(c.url, 'PUT', withQuery(loc, { digest: d }), { headers: { ...OCTET, 'content-range': '2000-2999' }, body: b.subarray(2000) });
      assertStatus(put, 201);
      assert.equal(header(put, 'docker-content-digest'), d);
      assert.ok((await call(c.url, 'GET', `/v2/${repo}/blobs/${d}`)).body.equals(b));
    });
    c.it('a streamed PATCH without Content-Range, an empty PATCH, then PUT ?digest=', async () => {
      const b = randomBlob(2500, 'stream');
      const loc = await startUpload(c.url, repo);
      const first = await call(c.url, 'PATCH', loc, { headers: OCTET, body: b });
      assertStatus(first, 202);
      assert.equal(header(first, 'range'), '0-2499');
      const empty = await call(c.url, 'PATCH', header(first, 'location'), { headers: OCTET, body: Buffer.alloc(0) });
      assertStatus(empty, 202);
      assert.equal(header(empty, 'range'), '0-2499');
      const put = await call(c.url, 'PUT', withQuery(header(empty, 'location'), { digest: digestOf(b) }));
      assertStatus(put, 201);
      assert.ok((await call(c.url, 'GET', `/v2/${repo}/blobs/${digestOf(b)}`)).body.equals(b));
    });
    c.it('an upload that is unknown or ended answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
      const b = randomBlob(10, 'ended');
      const loc = await startUpload(c.url, repo);
      assertStatus(await call(c.url, 'PUT', withQuery(loc, { digest: digestOf(b) }), { headers: OCTET, body: b }), 201);
      assertSpecError(await call(c.url, 'GET', loc), 404, ['BLOB_UPLOAD_UNKNOWN']);
    });
    c.it('DELETE cancels an upload: 204, then 404', async () => {
      const loc = await startUpload(c.url, repo);
      const del = await call(c.url, 'DELETE', loc);
      assertStatus(del, 204);
      assertSpecError(await call(c.url, 'GET', loc), 404, ['BLOB_UPLOAD_UNKNOWN']);
      assertSpecError(await call(c.url, 'PATCH', loc, { headers: OCTET, body: Buffer.from('x') }), 404, ['BLOB_UPLOAD_UNKNOWN']);
    });
    c.it('a final PUT whose digest does not match is 400 DIGEST_INVALID, and stores nothing', async () => {
      const b = randomBlob(200, 'mismatch');
      const wrong = digestOf(randomBytes(10));
      const loc = await startUpload(c.url, repo);
      assertSpecError(await call(c.url, 'PUT', withQuery(loc, { digest: wrong }), { headers: OCTET, body: b }), 400, ['DIGEST_INVALID']);
      assert.equal(await blobExists(c.url, repo, wrong), false);
      assert.equal(await blobExists(c.url, repo, digestOf(b)), false);
      const mono = await call(c.url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${wrong}`, { headers: OCTET, body: b });
      assertSpecError(mono, 400, ['DIGEST_INVALID']);
    });
    c.it('a final chunk whose Content-Range does not match its size is refused, and stores nothing', async () => {
      const b = randomBlob(200, 'size');
      const loc = await startUpload(c.url, repo);
      const r = await call(c.url, 'PUT', withQuery(loc, { digest: digestOf(b) }), { headers: { ...OCTET, 'content-range': '0-299' }, body: b });
      assertSpecError(r, [400, 416], ['SIZE_INVALID', 'BLOB_UPLOAD_INVALID']);
      assert.equal(await blobExists(c.url, repo, digestOf(b)), false);
    });
    c.it('PUT without ?digest= is refused', async () => {
      const loc = await startUpload(c.url, repo);
      const r = await call(c.url, 'PUT', loc, { headers: OCTET, body: Buffer.from('abc') });
      assertSpecError(r, 400, ['DIGEST_INVALID', 'BLOB_UPLOAD_INVALID']);
    });
  });

  describe('blobs: cross-repository mount', () => {
    const from = uniqueRepo(c.ns, 'mountsrc');
    const to = uniqueRepo(c.ns, 'mountdst');
    const b = randomBlob(400, 'mount');
    let d = '';
    before(async () => {
      d = await pushBlob(c.url, from, b);
    });
    c.it('mount of a blob the source has: 201, Location, and the blob is served in the target', async () => {
      const r = await call(c.url, 'POST', `/v2/${to}/blobs/uploads/?mount=${d}&from=${from}`);
      assertStatus(r, 201);
      assert.equal(new URL(header(r, 'location'), c.url).pathname, `/v2/${to}/blobs/${d}`);
      assert.equal(header(r, 'docker-content-digest'), d);
      const get = await call(c.url, 'GET', `/v2/${to}/blobs/${d}`);
      assertStatus(get, 200);
      assert.ok(get.body.equals(b));
    });
    c.it('mount of a blob the source lacks falls back to an upload session (202)', async () => {
      const other = randomBlob(100, 'notthere');
      const od = digestOf(other);
      const r = await call(c.url, 'POST', `/v2/${to}/blobs/uploads/?mount=${od}&from=${from}`);
      assertStatus(r, 202);
      const loc = header(r, 'location');
      assertStatus(await call(c.url, 'PUT', withQuery(loc, { digest: od }), { headers: OCTET, body: other }), 201);
      assert.ok(await blobExists(c.url, to, od));
    });
    c.it('mount without from of a blob nobody named falls back to an upload session (202)', async () => {
      const r = await call(c.url, 'POST', `/v2/${uniqueRepo(c.ns, 'nofrom')}/blobs/uploads/?mount=${digestOf(randomBytes(8))}`);
      assertStatus(r, 202);
      assert.ok(header(r, 'location').length > 0);
    });
  });
}
