/**
 * Air-gapped operation and cache management: `wharf cache load` from an image list (online), a
 * docker save tarball and an OCI layout (directory and .tar); an offline server that never
 * contacts its upstream and serves what was loaded; `serve --preload`; `wharf cache ls` and
 * `wharf cache prune` by pattern and by LRU size quota, where blobs shared with other images stay.
 * The cache registry runs over each storage driver (fs, memory, s3); the upstream stays on fs. The
 * CLI reaches a store from another process (fs: --data; s3: --config with the same storage
 * section). On memory nothing else reaches the store, so what the CLI does is done by the same
 * functions on the running server's store (see cacheAdmin); what needs a store to outlive its
 * server does not run on memory.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig, startServer, type RunningServer } from '../src/server/index.js';
import { listCache, pruneCache } from '../src/server/store/index.js';
import { globToRegExp, loadCache, upstreamsOf } from '../src/server/proxy/index.js';
import { paths } from '../src/server/store/paths.js';
import { missingPeer } from './helpers/distribution.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { wharf } from './helpers/cli.js';
import { makeImage, pushImage, sha256, type TestImage } from './helpers/proxy-images.js';
import { run } from './helpers/exec.js';
import { S3Driver } from '../src/server/driver/index.js';
import { DRIVERS, adminArgs, driverSkip, setMtime, storageConfig, type DriverName } from './helpers/drivers.js';

const noSkopeo = missingPeer('skopeo');
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

let tmp: string;
let upstream: RunningServer;
let fwd: Proxy;
let a: TestImage;
let b: TestImage;
let shared: TestImage;

/** Pulls a whole image from a server; returns the manifest digest. */
async function pull(url: string, repo: string, ref: string, img: TestImage): Promise<string> {
  const m = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  assert.equal(m.status, 200, `${repo}:${ref}: ${m.status}`);
  const body = Buffer.from(await m.arrayBuffer());
  const layers = JSON.parse(body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  for (const d of [layers.config.digest, ...layers.layers.map((l) => l.digest)]) {
    const r = await fetch(`${url}/v2/${repo}/blobs/${d}`);
    assert.equal(r.status, 200);
    assert.equal(sha256(Buffer.from(await r.arrayBuffer())), d);
  }
  if (ref === img.digest) assert.equal(sha256(body), img.digest);
  return sha256(body);
}

interface CachedRow {
  repository: string;
  digest: string;
  tags: string[];
  size: number;
}

interface Pruned {
  images: string[];
  blobs: number;
  remaining: number;
}

/**
 * `wharf cache ls` and `wharf cache prune` on a cache. On fs and s3, the CLI on its store (see
 * adminArgs), beside the running server. On memory nothing outside the process reaches the store:
 * the functions the CLI runs (listCache, pruneCache, as in src/server/admin.ts) on the server's
 * own store.
 */
function cacheAdmin(driver: DriverName, data: string, server: RunningServer): { ls(): Promise<CachedRow[]>; prune(o: { pattern?: string; maxSize?: number; dryRun?: boolean }): Promise<Pruned> } {
  if (driver !== 'memory') {
    return {
      async ls() {
        const r = await wharf(['cache', 'ls', ...(await adminArgs(driver, data)), '--format', 'json']);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as CachedRow[];
      },
      async prune(o) {
        const args = ['cache', 'prune', ...(await adminArgs(driver, data)), '--format', 'json'];
        if (o.pattern !== undefined) args.push('--pattern', o.pattern);
        if (o.maxSize !== undefined) args.push('--max-size', String(o.maxSize));
        if (o.dryRun) args.push('--dry-run');
        const r = await wharf(args);
        assert.equal(r.code, 0, r.stderr);
        const rep = JSON.parse(r.stdout) as { images: Array<{ repository: string }>; blobs: number; remaining: number };
        return { images: rep.images.map((i) => i.repository), blobs: rep.blobs, remaining: rep.remaining };
      },
    };
  }
  return {
    async ls() {
      return (await listCache(server.store)).map((i) => ({ repository: i.repository, digest: i.digest, tags: i.tags, size: i.size }));
    },
    async prune(o) {
      const r = await pruneCache(server.store, {
        ...(o.pattern !== undefined ? { patterns: [globToRegExp(o.pattern)] } : {}),
        ...(o.maxSize !== undefined ? { maxSize: o.maxSize } : {}),
        ...(o.dryRun ? { dryRun: true } : {}),
      });
      return { images: r.images.map((i) => i.repository), blobs: r.blobs, remaining: r.remaining };
    },
  };
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wharf-proxy-airgap-'));
  upstream = await startServer({ dataDir: join(tmp, 'up'), logLevel: 'silent', config: { storage: { fsync: false } } });
  fwd = await startProxy(upstream.url);
  a = await makeImage(2, 3000, 'a');
  b = await makeImage(1, 5000, 'b');
  shared = await makeImage(1, 7000, 'shared');
  await pushImage(upstream.url, 'team/a', 'v1', a);
  await pushImage(upstream.url, 'team/b', 'v1', b);
  await pushImage(upstream.url, 'team/shared', 'v1', shared);
  // Same layers as `a`, a second image: the layers are shared.
  await pushImage(upstream.url, 'team/a-too', 'v1', a);
});

after(async () => {
  await fwd?.close();
  await upstream?.close();
  await rm(tmp, { recursive: true, force: true });
});

for (const driver of DRIVERS) {
  const skip = driverSkip(driver);
  describe(`air-gapped (${driver})`, { skip }, () => {
    test('cache load from an image list, then an offline server serves it without contacting the upstream', async () => {
      const data = join(tmp, `offline-data-${driver}`);
      const cfgFile = join(tmp, `offline-${driver}.yaml`);
      const online = { data, storage: await storageConfig(driver, data), proxy: { upstreams: [{ namespace: 'up', url: fwd.url }] } };
      await writeFile(cfgFile, stringify(online));
      const list = join(tmp, `images-${driver}.txt`);
      await writeFile(list, `# images for the air gap\nup/team/a:v1\nup/team/b@${b.digest}\n`);
      const offline = { storage: await storageConfig(driver, data), proxy: { offline: true, upstreams: [{ namespace: 'up', url: fwd.url }] } };
      let before: number;
      let s: RunningServer;
      if (driver !== 'memory') {
        const load = await wharf(['cache', 'load', '--config', cfgFile, list]);
        assert.equal(load.code, 0, load.stderr);
        assert.match(load.stdout, /Loaded 2 image\(s\)/);
        before = fwd.requests.length;
        s = await startServer({ dataDir: data, logLevel: 'silent', config: offline });
      } else {
        // A memory store lives and dies with its server: the offline server starts first, and the
        // images are loaded into its store as `wharf cache load` does (loadCache, the upstreams of
        // the online config).
        s = await startServer({ dataDir: data, logLevel: 'silent', config: offline });
        const upstreams = upstreamsOf(parseConfig(online).proxy);
        try {
          assert.equal((await loadCache(list, { store: s.store, upstreams })).images.length, 2);
        } finally {
          await Promise.all(upstreams.map((u) => u.close()));
        }
        before = fwd.requests.length;
      }
      try {
        assert.equal(await pull(s.url, 'up/team/a', 'v1', a), a.digest);
        assert.equal(await pull(s.url, 'up/team/b', b.digest, b), b.digest);
        const missing = await fetch(`${s.url}/v2/up/team/shared/manifests/v1`, { headers: { accept: ACCEPT } });
        assert.equal(missing.status, 404);
        await missing.arrayBuffer();
        const blob = await fetch(`${s.url}/v2/up/team/shared/blobs/${shared.blobs[1]!.digest}`);
        assert.equal(blob.status, 404);
        await blob.arrayBuffer();
        assert.equal(fwd.requests.length, before, 'offline: no request reached the upstream');
        const images = await cacheAdmin(driver, data, s).ls();
        assert.deepEqual(images.map((i) => i.repository).sort(), ['up/team/a', 'up/team/b']);
      } finally {
        await s.close();
      }
    });

    // Not on memory: the CLI loads into a store, then servers start on it.
    test('docker save tarball and OCI layout (dir and tar) load additively', { skip: noSkopeo || (driver === 'memory' && 'loads into a store that servers then start on: a memory store does not outlive its server') }, async () => {
      const src = `docker://${fwd.host}`;
      const sk = (args: string[]): Promise<string> => run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', ...args]);
      const dockerTar = join(tmp, `saved-${driver}.tar`);
      await sk([`${src}/team/shared:v1`, `docker-archive:${dockerTar}:up/team/shared:v1`]);
      const layoutDir = join(tmp, `layout-${driver}`);
      await sk([`${src}/team/b:v1`, `oci:${layoutDir}:v1`]);
      const layoutTar = join(tmp, `layout-${driver}.tar`);
      await sk([`${src}/team/a:v1`, `oci-archive:${layoutTar}:v7`]);

      const data = join(tmp, `preload-data-${driver}`);
      const storage = await storageConfig(driver, data);
      const cfg = { data, storage, proxy: { upstreams: [{ namespace: 'up', url: 'http://127.0.0.1:9', offline: true }] } };
      const cfgFile = join(tmp, `preload-${driver}.yaml`);
      await writeFile(cfgFile, stringify(cfg));
      const r1 = await wharf(['cache', 'load', '--config', cfgFile, dockerTar]);
      assert.equal(r1.code, 0, r1.stderr + r1.stdout);
      const r2 = await wharf(['cache', 'load', '--config', cfgFile, '--repo', 'up/team/b', layoutDir]);
      assert.equal(r2.code, 0, r2.stderr);

      // A preload that cannot be placed stops the start, with the reason.
      const withPreload = await startServer({
        dataDir: data,
        logLevel: 'silent',
        config: { storage, proxy: { ...cfg.proxy, defaultNamespace: 'up', preload: [layoutTar] } },
      }).catch((err: unknown) => err as Error);
      assert.ok(withPreload instanceof Error, 'a layout image without a repository name cannot be placed');
      assert.match(withPreload.message, /--repo|repository name/);

      const r3 = await wharf(['cache', 'load', '--config', cfgFile, '--repo', 'up/team/a', layoutTar]);
      assert.equal(r3.code, 0, r3.stderr);
      const srv = await startServer({ dataDir: data, logLevel: 'silent', config: { storage, proxy: cfg.proxy } });
      try {
        // docker save stores layers uncompressed under a new manifest: the image is there by tag.
        await pull(srv.url, 'up/team/shared', 'v1', shared);
        assert.equal(await pull(srv.url, 'up/team/b', 'v1', b), b.digest);
        assert.equal(await pull(srv.url, 'up/team/a', 'v7', a), a.digest);
      } finally {
        await srv.close();
      }
    });

    test('serve --preload loads before serving, offline', { skip: noSkopeo }, async () => {
      const layoutDir = join(tmp, `layout-named-${driver}`);
      await run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${fwd.host}/team/b:v1`, `oci:${layoutDir}:up/team/b:v1`]);
      const data = join(tmp, `preload-start-${driver}`);
      const s = await startServer({
        dataDir: data,
        logLevel: 'silent',
        config: { storage: await storageConfig(driver, data), proxy: { offline: true, preload: [layoutDir], upstreams: [{ namespace: 'up', url: 'http://127.0.0.1:9' }] } },
      });
      try {
        assert.equal(await pull(s.url, 'up/team/b', 'v1', b), b.digest);
      } finally {
        await s.close();
      }
    });
  });

  describe(`wharf cache prune (${driver})`, { skip }, () => {
    let data: string;
    let cache: RunningServer;
    let admin: ReturnType<typeof cacheAdmin>;

    before(async () => {
      data = join(tmp, `prune-data-${driver}`);
      cache = await startServer({ dataDir: data, logLevel: 'silent', config: { storage: await storageConfig(driver, data), proxy: { upstreams: [{ namespace: 'up', url: fwd.url }] } } });
      for (const [repo, img] of [['team/a', a], ['team/b', b], ['team/shared', shared], ['team/a-too', a]] as const) await pull(cache.url, `up/${repo}`, 'v1', img);
      for (const img of [a, b, shared]) for (const bl of img.blobs) await cache.proxy!.backend.fillDone(bl.digest);
      // Access order, oldest first: a, b, shared, a-too.
      let t = Date.now() - 10 * 3600e3;
      for (const repo of ['team/a', 'team/b', 'team/shared', 'team/a-too']) {
        const when = new Date((t += 3600e3));
        await setMtime(cache.store.driver, paths.manifestLink(`up/${repo}`, repo === 'team/b' ? b.digest : repo === 'team/shared' ? shared.digest : a.digest), when);
      }
      admin = cacheAdmin(driver, data, cache);
    });

    after(async () => {
      await cache?.close();
    });

    // What the bucket holds now: the CLI wrote it beside the server, whose S3 driver keeps tags for a while.
    const stored = async (path: string): Promise<boolean> => {
      const d = cache.store.driver;
      if (d instanceof S3Driver) d.forget(path);
      return (await d.stat(path)) !== undefined;
    };
    const exists = (d: string): Promise<boolean> => stored(paths.blobData(d as `sha256:${string}`));

    test('ls lists each cached image with its size, least recently pulled first', async () => {
      const images = await admin.ls();
      assert.deepEqual(images.map((i) => i.repository), ['up/team/a', 'up/team/b', 'up/team/shared', 'up/team/a-too']);
      assert.ok(images.every((i) => i.size > 0 && i.tags[0] === 'v1'));
    });

    test('--dry-run removes nothing; a pattern removes the image but not the layers another image shares', async () => {
      const dry = await admin.prune({ pattern: 'up/team/a:*', dryRun: true });
      assert.deepEqual(dry.images, ['up/team/a']);
      if (driver !== 'memory') {
        // The CLI's text report (on memory there is no CLI to run).
        const text = await wharf(['cache', 'prune', ...(await adminArgs(driver, data)), '--pattern', 'up/team/a:*', '--dry-run']);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /would remove up\/team\/a@/);
        assert.match(text.stdout, /would remove 1 image\(s\); would free 0 blob/);
      }
      assert.ok(await stored(paths.tag('up/team/a', 'v1')));
      const r = await admin.prune({ pattern: 'up/team/a:*' });
      assert.deepEqual(r.images, ['up/team/a']);
      assert.equal(r.blobs, 0);
      assert.equal(await stored(paths.tag('up/team/a', 'v1')), false);
      for (const bl of a.blobs) assert.ok(await exists(bl.digest), 'still used by up/team/a-too');
    });

    test('--max-size drops the least recently pulled until the quota holds; unreferenced blobs are freed', async () => {
      const total = (b.blobs.concat(shared.blobs, a.blobs)).reduce((n, x) => n + x.data.length, 0) + b.manifest.length + shared.manifest.length + a.manifest.length;
      // Room for a little more than the last-pulled image (a-too): b and shared must go.
      const keep = a.blobs.reduce((n, x) => n + x.data.length, 0) + a.manifest.length;
      assert.ok(total > keep);
      const rep = await admin.prune({ maxSize: keep + 100 });
      assert.deepEqual(rep.images, ['up/team/b', 'up/team/shared']);
      assert.ok(rep.remaining <= keep + 100);
      for (const bl of [...b.blobs, ...shared.blobs]) assert.equal(await exists(bl.digest), false, 'freed');
      for (const bl of a.blobs) assert.ok(await exists(bl.digest));
      // Pulled again, it comes back from the upstream.
      assert.equal(await pull(cache.url, 'up/team/b', 'v1', b), b.digest);
    });
  });

  describe(`background pruning (${driver})`, { skip }, () => {
    test('proxy.prune in the config drops images down to the quota while the server runs', async () => {
      const data = join(tmp, `bg-prune-${driver}`);
      const s = await startServer({
        dataDir: data,
        logLevel: 'silent',
        config: { storage: await storageConfig(driver, data), proxy: { prune: { interval: '1s', maxSize: 1 }, upstreams: [{ namespace: 'up', url: fwd.url }] } },
      });
      try {
        await pull(s.url, 'up/team/b', 'v1', b);
        for (const bl of b.blobs) await s.proxy!.backend.fillDone(bl.digest);
        // Wait (bounded) for the timer: the image goes, and its blobs with it (the tag first, so
        // wait for all of them: a pass is not atomic to an observer).
        const stored = async (path: string): Promise<boolean> => (await s.store.driver.stat(path)) !== undefined;
        const tag = paths.tag('up/team/b', 'v1');
        const present = async (): Promise<boolean> => {
          for (const p of [tag, ...b.blobs.map((bl) => paths.blobData(bl.digest))]) if (await stored(p)) return true;
          return false;
        };
        for (let i = 0; i < 100 && (await present()); i++) await new Promise((r) => setTimeout(r, 100));
        assert.equal(await stored(tag), false, 'the tag was pruned');
        for (const bl of b.blobs) assert.equal(await stored(paths.blobData(bl.digest)), false);
      } finally {
        await s.close();
      }
    });
  });

  describe(`gc and the cache (${driver})`, { skip }, () => {
    test('wharf gc keeps what cached manifests reference and collects blobs pulled on their own', async () => {
      const data = join(tmp, `gc-data-${driver}`);
      const s = await startServer({ dataDir: data, logLevel: 'silent', config: { storage: await storageConfig(driver, data), proxy: { upstreams: [{ namespace: 'up', url: fwd.url }] } } });
      try {
        await pull(s.url, 'up/team/b', 'v1', b);
        // A blob of another image, pulled by digest alone: no cached manifest references it.
        const lone = shared.blobs[1]!.digest;
        const r = await fetch(`${s.url}/v2/up/team/shared/blobs/${lone}`);
        assert.equal(r.status, 200);
        await r.arrayBuffer();
        for (const d of [...b.blobs.map((x) => x.digest), lone]) await s.proxy!.backend.fillDone(d as `sha256:${string}`);
        const { collectGarbage } = await import('../src/server/store/gc.js');
        // gc keeps what was used in the millisecond it starts (mtime >= its start, grace 0): the
        // memory driver's times are in whole milliseconds, so let one pass.
        await new Promise((r) => setTimeout(r, 5));
        const report = await collectGarbage(s.store, { graceMs: 0 });
        assert.equal(report.blobs, 1, 'the lone blob');
        assert.equal(await s.store.driver.stat(paths.blobData(lone as `sha256:${string}`)), undefined);
        for (const bl of b.blobs) assert.ok(await s.store.driver.stat(paths.blobData(bl.digest)));
        assert.equal(await pull(s.url, 'up/team/b', 'v1', b), b.digest);
        assert.deepEqual((await cacheAdmin(driver, data, s).ls()).map((i) => i.repository), ['up/team/b']);
      } finally {
        await s.close();
      }
    });
  });
}
