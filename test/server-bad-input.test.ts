/**
 * The bad-input suite (src/testkit/bad-input-suite.ts) against a real `wharf serve` on port 0,
 * over each storage driver, with a snapshot of its store so that every refused request is shown
 * to change nothing stored: on fs, the files of its data directory (temporary files included); on
 * memory and s3, what the driver lists.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startServer } from '../src/server/index.js';
import { badInputSuite, type InspectableRegistry } from '../src/testkit/bad-input-suite.js';
import { rawExchange, callRaw, assertError, assertSpecError } from '../src/testkit/http.js';
import { startDistribution, missingPeer, REGISTRY_BIN } from './helpers/distribution.js';
import { DRIVERS, driverSkip, storageConfig, storedFiles, type DriverName } from './helpers/drivers.js';

/** The registry's state in docs/STORAGE.md; other features (an audit log, say) keep their own. */
const REGISTRY_STATE = ['blobs', 'repositories', '_tmp', '_trash'];
/** Where S3Driver keeps its own objects (src/server/driver/s3/session.ts, INTERNAL). */
const S3_INTERNAL = '_s3';

/** Every file of the registry's state under `dir`, with its size, sorted; empty directories do not count. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const top = new Set(await readdir(dir));
  const entries = (await Promise.all(REGISTRY_STATE.filter((d) => top.has(d)).map((d) => readdir(join(dir, d), { recursive: true, withFileTypes: true })))).flat();
  for (const e of entries) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.push(`${relative(dir, p)} ${(await stat(p)).size}`);
  }
  return out.sort();
}

async function startWharf(driver: DriverName): Promise<InspectableRegistry> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wharf-bad-input-'));
  const server = await startServer({ dataDir, port: 0, logLevel: 'silent', deleteEnabled: true, config: { storage: await storageConfig(driver, dataDir) } });
  // The memory and s3 drivers have no files here: their listing through the driver API stands in.
  // On s3 that includes the driver's own keys (_s3/: staged bytes, upload sessions' tails and
  // parts); multipart uploads not yet completed, and the memory driver's staged bytes, hold no
  // name and are the only thing not compared.
  const snapshot = driver === 'fs' ? () => listFiles(dataDir) : () => storedFiles(server.store.driver, driver === 's3' ? [...REGISTRY_STATE, S3_INTERNAL] : REGISTRY_STATE);
  return {
    url: server.url,
    snapshot,
    leftovers: async () => (await snapshot()).filter((f) => f.startsWith('_tmp/') || f.includes('/_uploads/') || f.startsWith(`${S3_INTERNAL}/stage/`)),
    stop: async () => {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

for (const driver of DRIVERS) {
  const skip = driverSkip(driver);
  badInputSuite(`wharf serve (${driver})`, () => startWharf(driver), { skip });

  describe(`wharf serve (${driver}): bytes that are not HTTP`, { skip }, () => {
    let reg: InspectableRegistry;
    before(async () => {
      reg = await startWharf(driver);
    });
    after(async () => reg?.stop());
    test('a request line that does not parse gets 400 with the spec error body, not a stack or an HTML page', async () => {
      const ex = await rawExchange(reg.url, 'NOT HTTP AT ALL', Buffer.alloc(0), { timeoutMs: 30_000 });
      assert.ok(ex.reply, 'no answer');
      assertError(ex.reply, 400);
    });
    test('a URL with broken percent-encoding gets 400 with the spec error body, not fastify\'s', async () => {
      for (const path of ['/v2/%a', '/v2/x/%zz/tags/list', '/v2/x/y/manifests/%']) {
        const r = await callRaw(reg.url, 'GET', path);
        assertSpecError(r, 400);
      }
    });
    test('a chunked body with a broken chunk size ends the request without a 5xx', async () => {
      const head = [`PATCH /v2/x/y/blobs/uploads/00000000-0000-4000-8000-000000000000 HTTP/1.1`, 'Host: x', 'Transfer-Encoding: chunked'].join('\r\n');
      const ex = await rawExchange(reg.url, head, Buffer.from('zz\r\nabc\r\n0\r\n\r\n'), { timeoutMs: 30_000 });
      if (ex.reply) assert.ok(ex.reply.status < 500, `got ${ex.reply.status}`);
    });
  });
}

// The same suite against Distribution (Debian's docker-registry), to show that it tests the spec
// and not Wharf: its departures are reported as skipped, with the assertion each one fails.
badInputSuite(
  'Distribution',
  async () => {
    const d = await startDistribution();
    return { url: d.url, stop: d.stop };
  },
  {
    skip: missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)'),
    knownFailures: [
      'every endpoint refuses an invalid name with 400 NAME_INVALID or 404, and writes nothing',
      'an invalid tag on PUT is 400 TAG_INVALID (or MANIFEST_INVALID), and stores nothing',
      'a malformed digest is 400 DIGEST_INVALID (or 404) on every endpoint, and writes nothing',
      'malformed JSON and JSON that is no manifest are 400 MANIFEST_INVALID',
      'a 5 MiB manifest is 413, with or without Content-Length, and stores nothing',
      'a bogus Content-Range on PATCH is 416 or 400, and the upload keeps its offset',
      'a Content-Length shorter than the body: the blob is checked against the digest and refused',
      'a Content-Length longer than the body, then the client stops: nothing is acknowledged',
      'a client that disconnects mid-chunk leaves the acknowledged chunks, and the upload resumes (small chunks)',
      'a client that disconnects mid-chunk leaves the acknowledged chunks, and the upload resumes (large chunks)',
      'an upload id that is no session (or a path) is 404 BLOB_UPLOAD_UNKNOWN (or 400)',
      'reversed, past-the-end and broken ranges: 416 with Content-Range, or the whole blob; never 5xx',
      '200 concurrent pushes of the same blob all succeed, store it intact and leave nothing behind',
      'n that is huge is served (clamped, with Link when more remain) or refused; n that is no integer is 400',
      'random paths, methods, ranges and bodies: never a 5xx, and only spec error codes',
    ],
  },
);
