import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry, RemoteBlobSource, type RemoteRepository } from '../src/stores/remote/index.js';
import { pushEstargz, pushArtifact, openArtifact, getFiles, type EstargzPushResult } from '../src/client/index.js';
import { EstargzCache } from '../src/estargz/index.js';
import { startDistribution, missingPeer, REGISTRY_BIN } from './helpers/distribution.js';
import { makeFixture, startCountingProxy, type FaultMode } from './helpers/estargz.js';
import { wharf } from './helpers/cli.js';

interface Reg {
  host: string;
  /** Where the registry keeps a blob's bytes on disk. */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

const serverEntry = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'src', 'server', 'index.ts');

async function startWharf(): Promise<Reg> {
  const mod = (await import(serverEntry)) as { startServer(o: { dataDir: string; port: number; logLevel: string }): Promise<{ url: string; close(): Promise<void> }> };
  const dataDir = await mkdtemp(join(tmpdir(), 'wharf-estargz-data-'));
  const s = await mod.startServer({ dataDir, port: 0, logLevel: 'silent' });
  return {
    host: new URL(s.url).host,
    blobFile: (d) => join(dataDir, 'blobs', 'sha256', d.slice(7, 9), d.slice(7)),
    stop: async () => {
      await s.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function startDist(): Promise<Reg> {
  const d = await startDistribution();
  return { host: d.host, blobFile: (dg) => join(d.dataDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', dg.slice(7, 9), dg.slice(7), 'data'), stop: d.stop };
}

const KINDS: Array<{ name: string; skip: string | undefined; start: () => Promise<Reg> }> = [
  { name: 'wharf serve', skip: undefined, start: startWharf },
  { name: 'Distribution', skip: missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)'), start: startDist },
];

const SMALL = ['hello.txt', 'sub/deeper/small.json', 'sub/run.sh', '.hidden'];

for (const kind of KINDS) {
  describe(`eStargz against ${kind.name}`, { skip: kind.skip }, () => {
    let reg: Reg;
    let work: string;
    let src: string;
    let pushed: EstargzPushResult;
    const repoAt = (host: string): { repo: RemoteRepository; close(): Promise<void> } => {
      const r = new Registry(host, { plainHttp: true });
      return { repo: r.repository('test/es'), close: () => r.close() };
    };
    const withProxy = async (mode: FaultMode, fn: (repo: RemoteRepository, proxy: Awaited<ReturnType<typeof startCountingProxy>>) => Promise<void>): Promise<void> => {
      const proxy = await startCountingProxy(`http://${reg.host}`, mode);
      const { repo, close } = repoAt(proxy.host);
      try {
        await fn(repo, proxy);
      } finally {
        await close();
        await proxy.close();
      }
    };

    before(async () => {
      reg = await kind.start();
      work = await mkdtemp(join(tmpdir(), 'wharf-estargz-reg-'));
      src = join(work, 'src');
      await mkdir(src);
      await makeFixture(src);
      const { repo, close } = repoAt(reg.host);
      pushed = await pushEstargz(repo, { dir: src, chunkSize: 64 * 1024, tags: ['v1'] });
      await close();
    });
    after(async () => {
      await reg?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('ls fetches the footer and the TOC only; cat of a small file only its chunk; the cache then serves both', async () => {
      const cache = new EstargzCache(join(work, 'cache-1'));
      await withProxy({}, async (repo, proxy) => {
        const art = await openArtifact(repo, 'v1', { cache });
        const tocAndFooter = pushed.build.size - pushed.build.tocOffset;
        assert.equal(proxy.blobBytes(), tocAndFooter, `footer + TOC are ${tocAndFooter} of ${pushed.build.size} bytes`);
        assert.equal(proxy.blobGets.length, 2);
        assert.ok(art.fs.list().some((e) => e.path === 'sub/big.bin'));
        const before = proxy.blobBytes();
        assert.equal((await art.fs.readFile('hello.txt')).toString(), 'hello, eStargz\n');
        assert.ok(proxy.blobBytes() - before < 1024, `cat fetched ${proxy.blobBytes() - before} bytes`);
        await art.close();
        const n = proxy.blobGets.length;
        const again = await openArtifact(repo, 'v1', { cache });
        assert.equal((await again.fs.readFile('hello.txt')).toString(), 'hello, eStargz\n');
        assert.equal(proxy.blobGets.length, n, 'TOC and chunk come from the cache');
        await again.close();
      });
    });

    test('a plain tar.gz layer is read in one GET, then from the cache with no blob request', async () => {
      const { repo: direct, close } = repoAt(reg.host);
      const plain = await pushArtifact(direct, { files: [{ path: src }], tags: ['plain'] });
      await close();
      const cache = new EstargzCache(join(work, 'cache-plain'));
      await withProxy({}, async (repo, proxy) => {
        const said: string[] = [];
        const art = await openArtifact(repo, 'plain', { cache, onMessage: (m) => said.push(m) });
        assert.equal(art.fs.kind, 'tar.gz');
        assert.equal((await art.fs.readFile('src/hello.txt')).toString(), 'hello, eStargz\n');
        assert.deepEqual(proxy.blobGets.map((g) => g.range ?? 'whole'), [`bytes=${plain.layers[0]!.size - 51}-${plain.layers[0]!.size - 1}`, 'whole']);
        assert.match(said.join('\n'), /not eStargz.*reading the whole layer once/);
        await art.close();
        const n = proxy.blobGets.length;
        const again = await openArtifact(repo, 'plain', { cache, onMessage: (m) => said.push(m) });
        assert.deepEqual(await again.fs.readFile('src/sub/big.bin'), await readFile(join(src, 'sub/big.bin')));
        assert.equal(proxy.blobGets.length, n);
        assert.match(said.at(-1)!, /from the local cache/);
        await again.close();
      });
    });

    test('get of several small files is one multi-range request', async () => {
      await withProxy({}, async (repo, proxy) => {
        const art = await openArtifact(repo, 'v1');
        const out = join(work, 'get-multi');
        await getFiles(art.fs, SMALL, { output: out });
        for (const p of SMALL) assert.deepEqual(await readFile(join(out, p)), await readFile(join(src, p)), p);
        const data = proxy.blobGets.slice(2);
        assert.equal(data.length, 1, JSON.stringify(data));
        assert.match(data[0]!.range ?? '', /,/);
        assert.equal(data[0]!.status, 206);
        assert.equal(art.stats().multiRange, true);
        await art.close();
      });
    });

    test('a multi-range request answered 400 falls back to single ranges', async () => {
      await withProxy({ rejectMultiRange: true }, async (repo, proxy) => {
        const said: string[] = [];
        const art = await openArtifact(repo, 'v1', { onMessage: (m) => said.push(m) });
        const out = join(work, 'get-single');
        await getFiles(art.fs, SMALL, { output: out });
        for (const p of SMALL) assert.deepEqual(await readFile(join(out, p)), await readFile(join(src, p)), p);
        const data = proxy.blobGets.slice(2);
        assert.equal(data[0]!.status, 400);
        assert.ok(data.slice(1).every((g) => g.status === 206 && !g.range?.includes(',')));
        assert.ok(said.some((m) => /one range per request/.test(m)), said.join('\n'));
        await art.close();
      });
    });

    test('a multi-range request answered with one covering range is used as it is', async () => {
      await withProxy({ coalesceMultiRange: true }, async (repo, proxy) => {
        const art = await openArtifact(repo, 'v1');
        const out = join(work, 'get-coalesced');
        await getFiles(art.fs, SMALL, { output: out });
        for (const p of SMALL) assert.deepEqual(await readFile(join(out, p)), await readFile(join(src, p)), p);
        assert.equal(proxy.blobGets.length, 3, JSON.stringify(proxy.blobGets));
        assert.equal(proxy.blobGets[2]!.status, 206);
        await art.close();
      });
    });

    test('a registry that ignores Range has the blob read whole, once', async () => {
      await withProxy({ ignoreRange: true }, async (repo, proxy) => {
        const said: string[] = [];
        const art = await openArtifact(repo, 'v1', { onMessage: (m) => said.push(m) });
        assert.deepEqual(await art.fs.readFile('sub/big.bin'), await readFile(join(src, 'sub/big.bin')));
        assert.equal((await art.fs.readFile('hello.txt')).toString(), 'hello, eStargz\n');
        assert.equal(proxy.blobGets.length, 1);
        assert.equal(proxy.blobGets[0]!.status, 200);
        assert.equal(proxy.blobBytes(), pushed.build.size);
        assert.ok(said.some((m) => /ignored Range/.test(m)));
        await art.close();
      });
    });

    test('parallel reads from a registry that ignores Range keep one whole copy', async () => {
      await withProxy({ ignoreRange: true }, async (repo) => {
        const s = new RemoteBlobSource(repo, pushed.layer);
        const got = await Promise.all([0, 1000, 5000].map((at) => s.read([{ start: at, end: at + 99 }])));
        assert.equal(s.stats.bytes, pushed.layer.size, 'one body read in full');
        assert.ok(s.stats.wholeBlob);
        const again = await s.read([{ start: 0, end: 99 }, { start: 1000, end: 1099 }]);
        assert.deepEqual(again[0], got[0]![0]);
        assert.deepEqual(again[1], got[1]![0]);
        await s.close();
      });
    });

    test('the size comes from bytes=0-1 when HEAD fails', async () => {
      await withProxy({ failHead: true }, async (repo, proxy) => {
        const s = new RemoteBlobSource(repo, { digest: pushed.layer.digest });
        assert.equal(await s.size(), pushed.layer.size);
        assert.equal(proxy.blobGets[0]!.range, 'bytes=0-1');
      });
    });

    test('one altered byte of the blob in the registry makes cat fail, clearly', async () => {
      // Tamper with a copy pushed under another tag of a different layer, so the other tests keep theirs.
      const dir2 = join(work, 'src2');
      await mkdir(dir2);
      await makeFixture(dir2, { big: 1000 });
      const { repo, close } = repoAt(reg.host);
      const p2 = await pushEstargz(repo, { dir: dir2, chunkSize: 64 * 1024, tags: ['tampered'] });
      const art = await openArtifact(repo, 'tampered');
      const [r] = (art.fs as unknown as { rangesFor(p: string): Array<{ start: number; end: number }> }).rangesFor('hello.txt');
      await art.close();
      await close();
      const flip = async (at: number): Promise<void> => {
        const fh = await open(reg.blobFile(p2.layer.digest), 'r+');
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, at);
        b[0] = b[0]! ^ 0x01;
        await fh.write(b, 0, 1, at);
        await fh.close();
      };
      await flip(r!.start + 15);
      const env = { XDG_CACHE_HOME: join(work, 'xdg') };
      const cat = await wharf(['cat', '--plain-http', '--no-cache', `${reg.host}/test/es:tampered`, 'hello.txt'], { env });
      assert.equal(cat.code, 1, cat.stderr);
      assert.match(cat.stderr, /^wharf: DIGEST_INVALID: .*hello\.txt.*altered/m);
      assert.equal(cat.stdout, '');
      await flip(p2.build.tocOffset + 30);
      const ls = await wharf(['ls', '--plain-http', '--no-cache', `${reg.host}/test/es:tampered`], { env });
      assert.equal(ls.code, 1);
      assert.match(ls.stderr, /DIGEST_INVALID: .*TOC/);
    });
  });
}

test('ranged reads carry credentials: an eStargz image behind htpasswd on Distribution', { skip: missingPeer(REGISTRY_BIN, 'Distribution (docker-registry)') }, async () => {
  const { staticCredentials } = await import('../src/stores/remote/index.js');
  const d = await startDistribution({ users: { alice: 's3cret' } });
  const dir = await mkdtemp(join(tmpdir(), 'wharf-estargz-auth-'));
  try {
    await mkdir(join(dir, 'src'));
    await makeFixture(join(dir, 'src'));
    const reg = new Registry(d.host, { plainHttp: true, credentials: staticCredentials({ username: 'alice', password: 's3cret' }) });
    const repo = reg.repository('auth/es');
    await pushEstargz(repo, { dir: join(dir, 'src'), chunkSize: 64 * 1024, tags: ['v1'] });
    const art = await openArtifact(repo, 'v1');
    assert.equal((await art.fs.readFile('hello.txt')).toString(), 'hello, eStargz\n');
    await getFiles(art.fs, SMALL, { output: join(dir, 'out') });
    await art.close();
    await reg.close();
    const anon = new Registry(d.host, { plainHttp: true });
    await assert.rejects(openArtifact(anon.repository('auth/es'), 'v1'), /UNAUTHORIZED|401|auth/i);
    await anon.close();
  } finally {
    await d.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
