/**
 * Configuration of `wharf serve`: flags beat environment variables, which beat the config file,
 * which beats the defaults; a bad key or value stops the start with a message that names it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadServeConfig } from '../src/cli/run/serve.js';
import { parseConfig, ConfigError, startServer } from '../src/server/index.js';
import { parseDuration, parseSize } from '../src/spec/index.js';
import { paths } from '../src/server/store/paths.js';
import { wharf } from './helpers/cli.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const bytes = (b: Buffer): Uint8Array<ArrayBuffer> => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.length);

describe('serve configuration', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('defaults: 127.0.0.1:5000, ./wharf-data, deletes allowed, 4 MiB manifests, 24 h purge', () => {
    const c = parseConfig({});
    assert.equal(c.listen, '127.0.0.1:5000');
    assert.equal(c.data, './wharf-data');
    assert.equal(c.delete.enabled, true);
    assert.equal(c.manifests.maxSize, 4 * 1024 * 1024);
    assert.equal(c.uploads.purgeAfter, 24 * 3600e3);
    assert.equal(c.log.level, 'info');
  });

  test('sizes and durations in the units people write', () => {
    assert.equal(parseSize('4MiB'), 4 << 20);
    assert.equal(parseSize('10GB'), 10e9);
    assert.equal(parseSize(1024), 1024);
    assert.equal(parseSize('5M'), 5 << 20, 'a bare letter is binary, as in Docker and podman');
    assert.equal(parseSize('lots'), undefined);
    assert.equal(parseDuration('24h'), 86400e3);
    assert.equal(parseDuration('1d12h'), 36 * 3600e3);
    assert.equal(parseDuration('90s'), 90e3);
    assert.equal(parseDuration('soon'), undefined);
    assert.equal(parseDuration('5 h'), undefined);
  });

  test('flags beat the environment, which beats the file (YAML and JSON)', async () => {
    const yaml = join(dir, 'wharf.yaml');
    await writeFile(yaml, 'listen: 127.0.0.1:6001\ndata: /from/file\nlog:\n  level: warn\ndelete:\n  enabled: false\nuploads:\n  purgeAfter: 2h\n  maxBlobSize: 1GiB\n');
    const fromFile = await loadServeConfig({ config: yaml }, {});
    assert.equal(fromFile.listen, '127.0.0.1:6001');
    assert.equal(fromFile.data, '/from/file');
    assert.equal(fromFile.log.level, 'warn');
    assert.equal(fromFile.delete.enabled, false);
    assert.equal(fromFile.uploads.purgeAfter, 2 * 3600e3);
    assert.equal(fromFile.uploads.maxBlobSize, 1 << 30);

    const env = { WHARF_CONFIG: yaml, WHARF_DATA: '/from/env', WHARF_LISTEN: '127.0.0.1:6002', WHARF_LOG_LEVEL: 'error' };
    const fromEnv = await loadServeConfig({}, env);
    assert.equal(fromEnv.data, '/from/env');
    assert.equal(fromEnv.listen, '127.0.0.1:6002');
    assert.equal(fromEnv.log.level, 'error');
    assert.equal(fromEnv.delete.enabled, false, 'what the environment does not set comes from the file');

    const fromFlags = await loadServeConfig({ data: '/from/flag', listen: '0.0.0.0:6003', logLevel: 'debug', delete: 'on' }, env);
    assert.equal(fromFlags.data, '/from/flag');
    assert.equal(fromFlags.listen, '0.0.0.0:6003');
    assert.equal(fromFlags.log.level, 'debug');
    assert.equal(fromFlags.delete.enabled, true);

    const json = join(dir, 'wharf.json');
    await writeFile(json, JSON.stringify({ manifests: { maxSize: '1MiB' }, pagination: { pageSize: 50 } }));
    const fromJson = await loadServeConfig({ config: json }, {});
    assert.equal(fromJson.manifests.maxSize, 1 << 20);
    assert.equal(fromJson.pagination.pageSize, 50);
  });

  test('a bad key or value names the key at fault', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ lisen: '127.0.0.1:5000' }, /unknown key "lisen"/],
      [{ uploads: { purgeAfterr: '1h' } }, /unknown key "uploads.purgeAfterr"/],
      [{ listen: 'localhost' }, /"listen".*host:port/],
      [{ uploads: { purgeAfter: 'soon' } }, /"uploads.purgeAfter".*not a duration/],
      [{ manifests: { maxSize: 'huge' } }, /"manifests.maxSize".*not a size/],
      [{ log: { level: 'loud' } }, /"log.level"/],
      [{ delete: { enabled: 'yes' } }, /"delete.enabled"/],
      [{ pagination: { pageSize: 0 } }, /"pagination.pageSize"/],
    ];
    for (const [input, re] of cases) {
      assert.throws(() => parseConfig(input), (err: unknown) => err instanceof ConfigError && re.test(err.message), JSON.stringify(input));
    }
    await assert.rejects(loadServeConfig({ delete: 'maybe' }, {}), /--delete: expected on or off/);
  });

  test('the CLI refuses a bad config at start with one line and exit code 2', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'listen: 127.0.0.1:0\nstorage:\n  fsync: sometimes\n');
    const r = await wharf(['serve', '--config', bad, '--data', join(dir, 'never')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"storage.fsync"/);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, 'no stack trace');

    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'listen: [\n');
    const b = await wharf(['serve', '--config', broken]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /broken\.yaml is not valid YAML/);

    const missing = await wharf(['serve', '--config', join(dir, 'absent.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config file/);
  });

  test('limits from the config are enforced: blob size and manifest size get 413', async () => {
    const s = await startServer({ dataDir: join(dir, 'limits'), port: 0, logLevel: 'silent', config: { uploads: { maxBlobSize: '64KiB' }, manifests: { maxSize: '1KiB' } } });
    try {
      const big = randomBytes(65 * 1024);
      const r = await fetch(`${s.url}/v2/limits/app/blobs/uploads/?digest=${sha256(big)}`, { method: 'POST', body: bytes(big), headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(r.status, 413);
      const body = (await r.json()) as { errors: Array<{ code: string }> };
      assert.equal(body.errors[0]?.code, 'SIZE_INVALID');
      const ok = randomBytes(1000);
      const r2 = await fetch(`${s.url}/v2/limits/app/blobs/uploads/?digest=${sha256(ok)}`, { method: 'POST', body: bytes(ok), headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(r2.status, 201);
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(Buffer.from('{}')), size: 2 }, layers: [], annotations: { pad: 'x'.repeat(2000) } }));
      const r3 = await fetch(`${s.url}/v2/limits/app/manifests/v1`, { method: 'PUT', body: bytes(m), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(r3.status, 413);
      await r3.arrayBuffer();
    } finally {
      await s.close();
    }
  });

  test('storage.verifyReads: a blob damaged on disk fails its GET when on (the default), even after clean reads and with its mtime put back, and is served unhashed when off', async () => {
    for (const verifyReads of [true, false]) {
      const dataDir = join(dir, `verify-${verifyReads}`);
      const s = await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage: { verifyReads } } });
      try {
        const blob = randomBytes(3 << 20);
        const d = sha256(blob);
        const r = await fetch(`${s.url}/v2/v/app/blobs/uploads/?digest=${d}`, { method: 'POST', body: bytes(blob), headers: { 'content-type': 'application/octet-stream' } });
        assert.equal(r.status, 201);
        // Clean reads first: an unchanged file is then served without hashing it again.
        for (let i = 0; i < 2; i++) assert.equal(sha256(new Uint8Array(await (await fetch(`${s.url}/v2/v/app/blobs/${d}`)).arrayBuffer())), d);
        // Damage behind the server's back: the same size, one byte flipped, the mtime put back.
        const file = join(dataDir, paths.blobData(d as `sha256:${string}`));
        const before = await stat(file);
        const damaged = await readFile(file);
        damaged[damaged.length - 10] = (damaged[damaged.length - 10] ?? 0) ^ 0xff;
        await writeFile(file, damaged);
        await utimes(file, before.atime, before.mtime);
        const got = await fetch(`${s.url}/v2/v/app/blobs/${d}`);
        assert.equal(got.status, 200, 'the headers went out before the damage could be seen');
        if (verifyReads) await assert.rejects(got.arrayBuffer(), 'the response is cut off before its last byte');
        else assert.equal(sha256(new Uint8Array(await got.arrayBuffer())), sha256(damaged), 'served as stored; the client must verify');
      } finally {
        await s.close();
      }
    }
  });
});
