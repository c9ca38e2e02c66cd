/**
 * GET /api/v1/download against a real server: a titled layer whole, a file inside a tar, a tar.gz
 * and an eStargz layer (only its chunks read from the store), Range, the whole artifact as a tar,
 * the audit records with `file`, bad paths, and hostile names in Content-Disposition.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { Registry } from '../src/stores/remote/index.js';
import { pushArtifact, pushEstargz } from '../src/client/index.js';
import { Readable, Transform } from 'node:stream';
import * as tarStream from 'tar-stream';
import { call } from '../src/testkit/http.js';
import type { ByteRange } from '../src/spec/index.js';
import { contentDisposition, safeArchivePath } from '../src/server/web/download.js';
import type { ArtifactDetail, LayerFiles } from '../src/server/web/types.js';
import { basic, errorCode } from './helpers/auth.js';
import { pushFixtures, sha256, type Fixture } from './helpers/web-artifact.js';

describe('download names', () => {
  test('Content-Disposition: attachment, an ASCII stand-in and the exact UTF-8 name', () => {
    assert.equal(contentDisposition('data.bin'), `attachment; filename="data.bin"; filename*=UTF-8''data.bin`);
    assert.equal(contentDisposition('dir/sub/résumé ü.txt'), `attachment; filename="r_sum_ _.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%C3%BC.txt`);
    const evil = contentDisposition('../../"a\r\nSet-Cookie: x=1;\\b%.txt');
    assert.doesNotMatch(evil, /[\r\n\u0000-\u001f]/);
    assert.match(evil, /^attachment; filename="[^"\\]*"; filename\*=UTF-8''[A-Za-z0-9!#$&+\-.^_`|~%]+$/);
    assert.equal(contentDisposition('..'), `attachment; filename="download"; filename*=UTF-8''download`);
    assert.equal(contentDisposition(''), `attachment; filename="download"; filename*=UTF-8''download`);
  });
  test('archive paths never climb', () => {
    assert.equal(safeArchivePath('a/b.txt'), 'a/b.txt');
    assert.equal(safeArchivePath('/abs/./x'), 'abs/x');
    assert.equal(safeArchivePath('../x'), undefined);
    assert.equal(safeArchivePath('a/../../x'), undefined);
    assert.equal(safeArchivePath('a\u0000b'), 'ab');
    assert.equal(safeArchivePath(''), undefined);
  });
});

describe('downloads from the web API', () => {
  let f: Fixture;
  let url: string;
  const alice = basic('alice');
  /** Bytes the store's driver handed out through ranged/streamed reads since the last reset. */
  let storeBytes = 0;

  const dl = (params: Record<string, string>, headers: Record<string, string> = {}): ReturnType<typeof call> =>
    call(url, 'GET', `/api/v1/download?${new URLSearchParams(params)}`, { headers: { ...alice, ...headers } });
  const json = async <T>(path: string): Promise<T> => JSON.parse((await call(url, 'GET', path, { headers: alice })).body.toString()) as T;

  before(async () => {
    f = await pushFixtures();
    url = f.server.url;
    // Counts what the store reads for a response (not the thing under test: its storage driver).
    const driver = f.server.store.driver as unknown as { reader(path: string, range?: ByteRange): Promise<Readable> };
    const reader = driver.reader.bind(driver);
    driver.reader = async (path, range) => {
      const s = await reader(path, range);
      const t = new Transform({
        transform(c: Buffer, _e, cb) {
          storeBytes += c.length;
          cb(null, c);
        },
      });
      s.on('error', (err) => t.destroy(err));
      t.on('close', () => s.destroy());
      return s.pipe(t);
    };
  });
  after(async () => f?.close());

  const headersOk = (r: Awaited<ReturnType<typeof call>>, name: string): void => {
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('content-disposition'), contentDisposition(name));
    assert.match(r.headers.get('cache-control') ?? '', /no-store/);
  };

  test('a titled layer whole: verified bytes, its title as the file name, Range', async () => {
    const a = await json<ArtifactDetail>('/api/v1/artifact?repo=ml/data&ref=v1');
    const file = a.files.find((x) => x.path === 'data.bin')!;
    const r = await call(url, 'GET', file.download, { headers: alice });
    assert.equal(r.status, 200);
    headersOk(r, 'data.bin');
    assert.equal(r.headers.get('content-length'), String(f.files.data.length));
    assert.equal(r.headers.get('accept-ranges'), 'bytes');
    assert.equal(sha256(r.body), sha256(f.files.data));

    const part = await call(url, 'GET', file.download, { headers: { ...alice, range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${f.files.data.length}`);
    assert.deepEqual(part.body, f.files.data.subarray(100, 200));
    const tail = await call(url, 'GET', file.download, { headers: { ...alice, range: 'bytes=-10' } });
    assert.deepEqual(tail.body, f.files.data.subarray(f.files.data.length - 10));

    const bad = await call(url, 'GET', file.download, { headers: { ...alice, range: 'bytes=999999-' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), `bytes */${f.files.data.length}`);
    assert.equal(errorCode(bad), 'SIZE_INVALID');

    // Without the manifest, the layer is named by its digest.
    const bare = await dl({ repo: 'ml/data', layer: file.layer });
    assert.equal(bare.status, 200);
    assert.match(bare.headers.get('content-disposition') ?? '', new RegExp(`filename="${file.layer.slice(7, 19)}"`));
    // A packed directory downloads as its archive.
    const tree = await dl({ repo: 'ml/data', ref: f.files.desc.digest, layer: f.files.dirLayer.digest });
    headersOk(tree, 'tree.tar.gz');
  });

  test('a file inside a tar.gz and a plain tar layer, with Range', async () => {
    const listing = await json<LayerFiles>(`/api/v1/files?repo=ml/data&layer=${f.files.dirLayer.digest}`);
    const leaf = listing.files.find((x) => x.path.endsWith('deep/leaf.txt'))!;
    const r = await call(url, 'GET', leaf.download, { headers: alice });
    assert.equal(r.status, 200);
    headersOk(r, 'leaf.txt');
    assert.equal(r.body.toString(), 'leaf\n');

    const g = await dl({ repo: 'ml/data', layer: f.files.tarLayer.digest, path: 'docs/guide.txt' });
    assert.equal(g.status, 200);
    assert.equal(sha256(g.body), sha256(f.files.tarEntry));
    const gr = await dl({ repo: 'ml/data', layer: f.files.tarLayer.digest, path: './docs/guide.txt' }, { range: 'bytes=5-24' });
    assert.equal(gr.status, 206);
    assert.equal(gr.headers.get('content-range'), `bytes 5-24/${f.files.tarEntry.length}`);
    assert.deepEqual(gr.body, f.files.tarEntry.subarray(5, 25));

    const img = await dl({ repo: 'ml/app', layer: f.image.layer.digest, path: 'etc/app.conf' });
    assert.equal(img.body.toString(), 'port=8080\n');
  });

  test('an uncompressed tar is read header by header: a big file in it is jumped over', async () => {
    storeBytes = 0;
    const listing = await json<LayerFiles>(`/api/v1/files?repo=ml/large&layer=${f.bigTar.layer.digest}`);
    assert.equal(listing.format, 'tar');
    const long = `${'d'.repeat(20)}/${'n'.repeat(150)}.txt`;
    assert.deepEqual(listing.files.map((x) => [x.path, x.size]), [['big.bin', 8 << 20], ['after.txt', 18], [long, 10]]);
    assert.ok(storeBytes < (1 << 20), `listing read ${storeBytes} of ${f.bigTar.layer.size} bytes`);
    storeBytes = 0;
    const r = await dl({ repo: 'ml/large', layer: f.bigTar.layer.digest, path: 'after.txt' }, { range: 'bytes=6-' });
    assert.equal(r.status, 206);
    assert.equal(r.body.toString(), 'the big one\n');
    assert.ok(storeBytes < (1 << 20), `download read ${storeBytes} bytes`);
    assert.equal((await dl({ repo: 'ml/large', layer: f.bigTar.layer.digest, path: long })).body.toString(), 'long name\n');
  });

  test('a file inside an eStargz layer: only its chunks are read from the store, each verified', async () => {
    storeBytes = 0;
    const r = await dl({ repo: 'ml/es', layer: f.estargz.layer.digest, path: 'hello.txt' });
    assert.equal(r.status, 200, r.body.toString());
    headersOk(r, 'hello.txt');
    assert.equal(sha256(r.body), sha256(f.estargz.small));
    // Footer, TOC and one chunk: a small part of the 1 MiB layer.
    assert.ok(storeBytes > 0 && storeBytes < f.estargz.layer.size / 4, `read ${storeBytes} of ${f.estargz.layer.size} bytes`);

    storeBytes = 0;
    const part = await dl({ repo: 'ml/es', layer: f.estargz.layer.digest, path: 'sub/big.bin' }, { range: 'bytes=70000-70099' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 70000-70099/${f.estargz.big.length}`);
    assert.deepEqual(part.body, f.estargz.big.subarray(70000, 70100));
    assert.ok(storeBytes < f.estargz.layer.size / 4, `read ${storeBytes} of ${f.estargz.layer.size} bytes for one 64 KiB chunk`);

    const whole = await dl({ repo: 'ml/es', layer: f.estargz.layer.digest, path: 'sub/big.bin' });
    assert.equal(sha256(whole.body), sha256(f.estargz.big));
  });

  test('the whole artifact as a tar of its titled layers', async () => {
    const r = await dl({ repo: 'ml/data', ref: 'v1', archive: 'tar' });
    assert.equal(r.status, 200);
    headersOk(r, 'data-v1.tar');
    const got = new Map<string, Buffer>();
    const extract = tarStream.extract();
    const done = (async () => {
      for await (const e of extract) {
        const parts: Buffer[] = [];
        for await (const c of e) parts.push(c as Buffer);
        got.set(e.header.name, Buffer.concat(parts));
      }
    })();
    Readable.from([r.body]).pipe(extract as unknown as NodeJS.WritableStream);
    await done;
    assert.deepEqual([...got.keys()].sort(), ['LICENSE', 'README.md', 'bundle.tar', 'data.bin', 'tree.tar.gz']);
    assert.equal(sha256(got.get('data.bin')!), sha256(f.files.data));
    assert.equal(got.get('README.md')!.toString(), f.files.readme);
    assert.equal(sha256(got.get('bundle.tar')!), sha256(await readFile(`${f.work}/files/bundle.tar`)));
    // An index has no files of its own.
    const idx = await dl({ repo: 'ml/app', ref: 'multi', archive: 'tar' });
    assert.equal(idx.status, 400);
  });

  test('downloads are in the audit log like pulls, with the file, and counted on the artifact page', async () => {
    const before = (await json<ArtifactDetail>('/api/v1/artifact?repo=ml/data&ref=v1')).downloads!;
    const r = await dl({ repo: 'ml/data', layer: f.files.tarLayer.digest, path: 'docs/guide.txt' }, { 'user-agent': 'web-test/1' });
    assert.equal(r.status, 200);
    const after = await json<ArtifactDetail>('/api/v1/artifact?repo=ml/data&ref=v1');
    assert.equal(after.downloads, before + 1);
    assert.ok(after.lastPulled !== null);
    const audit = f.server.hooks.audit!;
    audit.flush();
    const rows = audit.db.query({ repo: 'ml/data', action: 'pull', user: 'alice' }, { limit: 1000 }).filter((x) => x.file);
    const guide = rows.find((x) => x.file === 'docs/guide.txt' && x.userAgent === 'web-test/1')!;
    assert.ok(guide, JSON.stringify(rows.map((x) => x.file)));
    assert.equal(guide.digest, f.files.tarLayer.digest);
    assert.equal(guide.bytes, f.files.tarEntry.length);
    assert.equal(guide.outcome, 'completed');
    assert.equal(guide.status, 200);
    assert.equal(guide.method, 'GET');
    const data = rows.find((x) => x.file === 'data.bin' && x.status === 200)!;
    assert.equal(data.bytes, f.files.data.length);
    assert.equal(data.reference, f.files.desc.digest);
    const archive = rows.find((x) => x.file === 'data-v1.tar')!;
    assert.equal(archive.digest, f.files.desc.digest);
    assert.equal(archive.reference, 'v1');
    assert.ok(archive.bytes > f.files.data.length);
    assert.ok(rows.some((x) => x.file === 'hello.txt' && x.digest === f.estargz.layer.digest) === false, 'another repository');
    const es = audit.db.query({ repo: 'ml/es', action: 'pull' }, { limit: 100 }).find((x) => x.file === 'hello.txt');
    assert.ok(es && es.bytes === f.estargz.small.length);
  });

  test('a download the client leaves is recorded as aborted, with the bytes sent', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${url}/api/v1/download?${new URLSearchParams({ repo: 'ml/large', ref: 'v1', layer: f.large.layer.digest })}`, { headers: { ...alice, 'user-agent': 'abort-test/1' }, signal: ctl.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read();
    ctl.abort();
    await reader.cancel().catch(() => undefined);
    const audit = f.server.hooks.audit!;
    let rec;
    for (let i = 0; i < 100 && !rec; i++) {
      await new Promise((r) => setTimeout(r, 50));
      audit.flush();
      rec = audit.db.query({ repo: 'ml/large', action: 'pull' }, { limit: 10 }).find((x) => x.userAgent === 'abort-test/1' && x.outcome === 'aborted');
    }
    assert.ok(rec, 'an aborted record');
    assert.equal(rec.file, 'large.bin');
    assert.ok(rec.bytes < f.large.size, `${rec.bytes} bytes`);
  });

  test('bad paths and parameters: 400 or 404 with the error body', async () => {
    const layer = f.files.tarLayer.digest;
    const cases: Array<[Record<string, string>, number, string]> = [
      [{ repo: 'ml/data', layer, path: '../etc/passwd' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/data', layer, path: 'docs/../../x' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/data', layer, path: '' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/data', layer, path: 'a\u0000b' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/data', layer, path: '/' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/data', layer, path: 'docs/nope.txt' }, 404, 'BLOB_UNKNOWN'],
      [{ repo: 'ml/data', layer, path: 'docs' }, 404, 'BLOB_UNKNOWN'],
      [{ repo: 'ml/data', layer, path: 'docs/link' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/es', layer: f.estargz.layer.digest, path: 'nope' }, 404, 'BLOB_UNKNOWN'],
      [{ repo: 'ml/es', layer: f.estargz.layer.digest, path: 'sub' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/data', layer: (f.files.desc.digest), path: 'x' }, 404, 'BLOB_UNKNOWN'],
      [{ repo: 'ml/data', layer: f.image.layer.digest }, 404, 'BLOB_UNKNOWN'],
      [{ repo: 'ml/data', ref: 'v1', layer: f.image.layer.digest }, 404, 'BLOB_UNKNOWN'],
      [{ repo: 'ml/data', layer: 'sha256:xyz' }, 400, 'DIGEST_INVALID'],
      [{ repo: 'ml/data' }, 400, 'DIGEST_INVALID'],
      [{ repo: 'ml/data', ref: 'v1', archive: 'zip' }, 400, 'UNSUPPORTED'],
      [{ repo: 'ml/data', ref: 'nope', archive: 'tar' }, 404, 'MANIFEST_UNKNOWN'],
      [{ layer }, 400, 'NAME_INVALID'],
    ];
    for (const [params, status, code] of cases) {
      const r = await dl(params);
      assert.equal(r.status, status, `${JSON.stringify(params)}: ${r.status} ${r.body.toString()}`);
      assert.equal(errorCode(r), code, JSON.stringify(params));
      assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    }
    // A file path into a layer that is no archive.
    const a = await json<ArtifactDetail>('/api/v1/artifact?repo=ml/data&ref=v1');
    const plain = await dl({ repo: 'ml/data', layer: a.files.find((x) => x.path === 'data.bin')!.layer, path: 'x' });
    assert.equal(plain.status, 400);
  });

  test('hostile titles are safe in Content-Disposition and in the archive', async () => {
    const r = await dl({ repo: 'ml/hostile', ref: 'v1', layer: f.hostile.layer.digest });
    assert.equal(r.status, 200);
    const cd = r.headers.get('content-disposition')!;
    assert.doesNotMatch(cd, /[\r\n\u0000-\u001f\u007f]|\.\.\/|\//);
    assert.equal(cd, `attachment; filename="_passwd_.txt"; filename*=UTF-8''%22passwd%3B.txt`);
    assert.equal(r.body.toString(), 'evil bytes');
    const t = await dl({ repo: 'ml/hostile', ref: 'v1', archive: 'tar' });
    assert.equal(t.status, 200);
    const names: string[] = [];
    const extract = tarStream.extract();
    const done = (async () => {
      for await (const e of extract) {
        names.push(e.header.name);
        e.resume();
      }
    })();
    Readable.from([t.body]).pipe(extract as unknown as NodeJS.WritableStream);
    await done;
    assert.equal(names.length, 1);
    assert.doesNotMatch(names[0]!, /\.\.|^\/|[\u0000-\u001f]/);
  });

  test('anonymous and users without rights cannot download from a private repository', async () => {
    for (const headers of [{ authorization: '' }, basic('victim')]) {
      const r = await call(url, 'GET', `/api/v1/download?repo=ml/data&layer=${f.files.tarLayer.digest}&path=docs/guide.txt`, { headers });
      assert.equal(r.status, 404);
      assert.equal(errorCode(r), 'NAME_UNKNOWN');
    }
  });
});

describe('the artifact page and downloads through a pull-through cache', () => {
  let tmp: string;
  let upstream: RunningServer;
  let cache: RunningServer;
  let data: Buffer;
  let es: { layer: string; small: Buffer };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-web-proxy-'));
    upstream = await startServer({ dataDir: join(tmp, 'up'), logLevel: 'silent' });
    cache = await startServer({ dataDir: join(tmp, 'cache'), logLevel: 'silent', config: { proxy: { upstreams: [{ namespace: 'up', url: upstream.url, ttl: '1h' }] } } });
    const reg = new Registry(new URL(upstream.url).host, { plainHttp: true });
    data = randomBytes(200_000);
    await writeFile(join(tmp, 'data.bin'), data);
    await writeFile(join(tmp, 'README.md'), '# upstream\n');
    await pushArtifact(reg.repository('team/data'), { files: [{ path: join(tmp, 'data.bin') }, { path: join(tmp, 'README.md') }], artifactType: 'application/vnd.acme.dataset', tags: ['v1'] });
    await mkdir(join(tmp, 'es'));
    const small = Buffer.from('small one\n');
    await writeFile(join(tmp, 'es', 'a.txt'), small);
    await writeFile(join(tmp, 'es', 'b.bin'), randomBytes(300_000));
    const pushed = await pushEstargz(reg.repository('team/es'), { dir: join(tmp, 'es'), chunkSize: 64 * 1024, tags: ['v1'] });
    es = { layer: pushed.layer.digest, small };
    await reg.close();
  });
  after(async () => {
    await cache?.close();
    await upstream?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  test('an upstream artifact: its page, a file, a file inside an eStargz layer', async () => {
    const r = await call(cache.url, 'GET', '/api/v1/artifact?repo=up/team/data&ref=v1');
    assert.equal(r.status, 200, r.body.toString());
    const a = JSON.parse(r.body.toString()) as ArtifactDetail;
    assert.equal(a.kind.label, 'Acme dataset');
    assert.equal(a.readme?.markdown, '# upstream\n');
    const file = a.files.find((x) => x.path === 'data.bin')!;
    const d = await call(cache.url, 'GET', file.download);
    assert.equal(d.status, 200);
    assert.equal(sha256(d.body), sha256(data));
    // Again, now from the cache's store.
    assert.equal(sha256((await call(cache.url, 'GET', file.download)).body), sha256(data));

    const listing = JSON.parse((await call(cache.url, 'GET', `/api/v1/files?repo=up/team/es&ref=v1&layer=${es.layer}`)).body.toString()) as LayerFiles;
    assert.equal(listing.format, 'estargz');
    const f1 = listing.files.find((x) => x.path === 'a.txt')!;
    const got = await call(cache.url, 'GET', f1.download);
    assert.equal(got.status, 200, got.body.toString());
    assert.deepEqual(got.body, es.small);
  });
});
