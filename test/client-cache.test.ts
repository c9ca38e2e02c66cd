/**
 * WHARF_CACHE: a local content cache that serves repeated pulls by digest without the network,
 * and never serves a damaged entry.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../src/server/index.js';
import { wharf } from './helpers/cli.js';

describe('client: local content cache (WHARF_CACHE)', () => {
  let work: string;
  let dataDir: string;
  let s: RunningServer | undefined;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'wharf-cache-'));
    dataDir = join(work, 'data');
    s = await startServer({ dataDir, port: 0, logLevel: 'silent' });
  });
  after(async () => {
    await s?.close();
    await rm(work, { recursive: true, force: true });
  });

  test('a second pull by digest needs no registry; a damaged entry is dropped and fetched again', async () => {
    const host = new URL(s!.url).host;
    const file = join(work, 'model.bin');
    const content = randomBytes(300_000);
    await writeFile(file, content);
    const push = await wharf(['push', '--plain-http', '--format', 'json', `${host}/cache/model:v1`, 'model.bin'], { cwd: work });
    assert.equal(push.code, 0, push.stderr);
    const digest = (JSON.parse(push.stdout) as { digest: string }).digest;
    const cacheDir = join(work, 'cache');
    const env = { WHARF_CACHE: cacheDir };

    const first = await wharf(['pull', '--plain-http', `${host}/cache/model@${digest}`, '-o', join(work, 'out1')], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.ok((await readFile(join(work, 'out1', 'model.bin'))).equals(content));
    const cached = await readdir(join(cacheDir, 'blobs', 'sha256'));
    assert.ok(cached.length >= 2, 'the manifest and the layer are cached');

    // Damage the cached layer: the next read detects it, drops it, and goes to the registry.
    let damaged = 0;
    for (const h of cached) {
      const p = join(cacheDir, 'blobs', 'sha256', h);
      const b = await readFile(p);
      if (b.length === content.length) {
        b[1000] = (b[1000] ?? 0) ^ 0xff;
        await writeFile(p, b);
        damaged++;
      }
    }
    assert.equal(damaged, 1, 'the layer is in the cache');
    const healed = await wharf(['pull', '--plain-http', `${host}/cache/model@${digest}`, '-o', join(work, 'out3')], { env });
    assert.equal(healed.code, 0, healed.stderr);
    assert.ok((await readFile(join(work, 'out3', 'model.bin'))).equals(content), 'the damaged entry is never served');

    // With the registry gone, the pull by digest is served from the cache alone.
    await s!.close();
    s = undefined;
    const offline = await wharf(['pull', '--plain-http', `${host}/cache/model@${digest}`, '-o', join(work, 'out4')], { env });
    assert.equal(offline.code, 0, offline.stderr);
    assert.ok((await readFile(join(work, 'out4', 'model.bin'))).equals(content));
    const noCache = await wharf(['pull', '--plain-http', `${host}/cache/model@${digest}`, '-o', join(work, 'out5')]);
    assert.notEqual(noCache.code, 0, 'without the cache the registry is needed');
  });
});
