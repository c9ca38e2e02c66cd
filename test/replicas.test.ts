/**
 * Two `wharf serve` replicas over one bucket and one PostgreSQL database (issue 22): what one
 * writes, the other reads at once, with no stale tag from its memory; the tags, links and
 * referrers are rows in PostgreSQL, and the bucket holds only blobs; a token or a UI session that
 * one replica issued is good on the other.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { parseConfig, startServer, type RunningServer } from '../src/server/index.js';
import { GC_LOCK, openAdmin } from '../src/server/admin.js';
import { wharf } from './helpers/cli.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { makeImage, pushImage, type TestImage } from './helpers/proxy-images.js';
import { call } from '../src/testkit/http.js';
import { pushBlob, pushManifest, startUpload, withQuery } from '../src/testkit/steps.js';
import { EMPTY_DESCRIPTOR, EMPTY_JSON, MediaTypes, descriptorOf, imageManifest, randomBlob } from '../src/testkit/fixtures.js';
import { databaseConfig, driverSkip, pgCluster, s3Client, storageConfig } from './helpers/drivers.js';
import { basic, pushArtifact, RULES, USERS, writeUsers } from './helpers/auth.js';

const skip = driverSkip('s3+pg');

describe('two replicas over one bucket and one database', { skip }, () => {
  const dirs: string[] = [];
  const servers: RunningServer[] = [];
  let a: RunningServer;
  let b: RunningServer;
  let dbUrl: string;
  let bucket: string;
  let prefix: string;
  /** The config sections both replicas have (as a config file would give them). */
  let sections: { storage: Awaited<ReturnType<typeof storageConfig>>; database: { url: string } };

  before(async () => {
    const shared = await mkdtemp(join(tmpdir(), 'wharf-replicas-'));
    dirs.push(shared);
    const storage = await storageConfig('s3+pg', shared);
    const database = (await databaseConfig('s3+pg')).database!;
    sections = { storage, database };
    dbUrl = database.url;
    bucket = storage.driver === 's3' ? storage.s3.bucket : '';
    prefix = storage.driver === 's3' ? (storage.s3.prefix ?? '') : '';
    for (let i = 0; i < 2; i++) {
      // Each replica has a data directory of its own (its audit log, its spool); the rest is shared.
      const dataDir = await mkdtemp(join(tmpdir(), `wharf-replica-${i}-`));
      dirs.push(dataDir);
      servers.push(await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage, database } }));
    }
    [a, b] = servers as [RunningServer, RunningServer];
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('a tag moved on one replica is read moved on the other at once, every time', async () => {
    const repo = 'shared/app';
    await pushBlob(a.url, repo, EMPTY_JSON);
    for (let i = 0; i < 20; i++) {
      const layer = randomBlob(64);
      await pushBlob(i % 2 ? b.url : a.url, repo, layer);
      const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [descriptorOf(MediaTypes.layer, layer)] });
      const writer = i % 2 ? b : a;
      const reader = i % 2 ? a : b;
      // The reader has the old tag in hand (and in any cache it keeps) before the move.
      if (i > 0) assert.equal((await call(reader.url, 'HEAD', `/v2/${repo}/manifests/latest`)).status, 200);
      await pushManifest(writer.url, repo, 'latest', m);
      const r = await call(reader.url, 'GET', `/v2/${repo}/manifests/latest`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('docker-content-digest'), m.digest, `round ${i}: the other replica serves the tag just moved`);
    }
    const tags = await call(b.url, 'GET', `/v2/${repo}/tags/list`);
    assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['latest']);
  });

  test('a tag read again and again is answered from memory, and /metrics says how reads were answered', async () => {
    const repo = 'shared/hot';
    await pushBlob(a.url, repo, EMPTY_JSON);
    const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [] });
    await pushManifest(a.url, repo, 'v1', m);
    const count = async (): Promise<{ memory: number; database: number }> => {
      const text = (await call(b.url, 'GET', '/metrics')).body.toString();
      const n = (from: string): number => Number(new RegExp(`^wharf_kept_reads_total\\{from="${from}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      return { memory: n('memory'), database: n('database') };
    };
    assert.equal((await call(b.url, 'GET', `/v2/${repo}/manifests/v1`)).status, 200);
    const before = await count();
    for (let i = 0; i < 20; i++) assert.equal((await call(b.url, 'GET', `/v2/${repo}/manifests/v1`)).status, 200);
    const after = await count();
    // Each GET reads the tag and the manifest's link: 40 reads, nearly all from memory (a lease
    // that lapsed for a moment on a loaded machine sends a read to the database).
    assert.ok(after.memory - before.memory >= 30, JSON.stringify({ before, after }));
    assert.ok(after.memory + after.database - before.memory - before.database >= 40);
    assert.match((await call(b.url, 'GET', '/metrics')).body.toString(), /wharf_store_cache_entries\{cache="kept"\} [1-9]/);
  });

  test('a blob pushed through one replica is pulled through the other; a deleted tag is gone on both', async () => {
    const repo = 'shared/data';
    const blob = randomBlob(100_000);
    const desc = descriptorOf(MediaTypes.layer, blob);
    await pushBlob(a.url, repo, blob);
    const got = await call(b.url, 'GET', `/v2/${repo}/blobs/${desc.digest}`);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(blob));
    await pushBlob(a.url, repo, EMPTY_JSON);
    const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [desc] });
    await pushManifest(b.url, repo, 'gone-soon', m);
    assert.equal((await call(a.url, 'GET', `/v2/${repo}/manifests/gone-soon`)).status, 200);
    assert.equal((await call(a.url, 'DELETE', `/v2/${repo}/manifests/gone-soon`)).status, 202);
    assert.equal((await call(b.url, 'GET', `/v2/${repo}/manifests/gone-soon`)).status, 404);
    const catalog = JSON.parse((await call(b.url, 'GET', '/v2/_catalog')).body.toString()) as { repositories: string[] };
    // What the tests so far pushed, through either replica.
    assert.deepEqual(catalog.repositories, ['shared/app', 'shared/data', 'shared/hot']);
  });

  test('gc from any host sees the links in PostgreSQL: it keeps what manifests use, takes an orphan, and runs one at a time', async () => {
    const repo = 'shared/gc';
    const used = randomBlob(5000, 'used');
    const orphan = randomBlob(5000, 'orphan');
    await pushBlob(a.url, repo, EMPTY_JSON);
    await pushBlob(a.url, repo, used);
    await pushBlob(b.url, repo, orphan);
    const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [descriptorOf(MediaTypes.layer, used)] });
    await pushManifest(b.url, repo, 'kept', m);
    const config = parseConfig({ data: dirs[0], ...sections });
    const admin = await openAdmin(config);
    try {
      // Another collection holds the lock: this one is refused, and removes nothing.
      const holder = new pg.Client({ connectionString: dbUrl });
      await holder.connect();
      await holder.query('SELECT pg_advisory_lock($1)', [GC_LOCK]);
      await assert.rejects(admin.gc({ graceMs: 0 }), /another garbage collection is running/);
      await holder.end();
      const report = await admin.gc({ graceMs: 0 });
      assert.equal(report.blobs, 1, JSON.stringify(report));
    } finally {
      await admin.close();
    }
    assert.equal((await call(b.url, 'GET', `/v2/${repo}/blobs/${descriptorOf(MediaTypes.layer, orphan).digest}`)).status, 404);
    assert.equal((await call(a.url, 'GET', `/v2/${repo}/blobs/${descriptorOf(MediaTypes.layer, used).digest}`)).status, 200);
    assert.equal((await call(a.url, 'GET', `/v2/${repo}/manifests/kept`)).status, 200);
    // The CLI on a config with the database: it finishes (its connections closed) and keeps all that is used.
    const file = join(dirs[0]!, 'gc.yaml');
    await writeFile(file, JSON.stringify({ data: dirs[0], ...sections }));
    const r = await wharf(['gc', '--config', file, '--grace', '0s']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /freed 0 blob\(s\)/);
    assert.equal((await call(b.url, 'GET', `/v2/${repo}/manifests/kept`)).status, 200);
  });

  test('an upload abandoned before its first chunk, in a repository with nothing else, is found and ended by the purge', async () => {
    const loc = await startUpload(a.url, 'lonely/repo');
    const id = loc.split('/').pop()!.split('?')[0]!;
    const gone = await b.store.purgeUploads(0);
    assert.ok(gone.uploads.some((u) => u.id === id && u.repo === 'lonely/repo'), JSON.stringify(gone.uploads));
    assert.equal((await call(a.url, 'GET', loc)).status, 404);
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    try {
      assert.equal((await db.query("SELECT 1 FROM wharf_files WHERE path LIKE 'repositories/lonely/%'")).rowCount, 0);
    } finally {
      await db.end();
    }
    const keys = ((await (await s3Client()).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/repositories/lonely/` }))).Contents ?? []).map((o) => o.Key);
    assert.deepEqual(keys, []);
  });

  // It stops the database for a while; the tests after it find it back.
  test('with the database stopped a replica answers 503 UNAVAILABLE and /healthz says why; once it is back, both work again by themselves', async () => {
    const cluster = await pgCluster();
    await cluster.halt();
    try {
      for (const s of [a, b]) {
        const r = await call(s.url, 'GET', '/v2/shared/app/manifests/latest');
        assert.equal(r.status, 503, r.body.toString());
        assert.equal((JSON.parse(r.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAVAILABLE');
        const h = await call(s.url, 'GET', '/healthz');
        assert.equal(h.status, 503);
        assert.match(h.body.toString(), /"reason":"database: /);
      }
    } finally {
      await cluster.resume();
    }
    for (const s of [a, b]) {
      let ok = 0;
      // The pool replaces the connections the stop ended, at the latest on the second try.
      for (let i = 0; i < 3 && ok === 0; i++) if ((await call(s.url, 'GET', '/v2/shared/app/manifests/latest')).status === 200) ok++;
      assert.equal(ok, 1, 'the replica serves again');
      assert.equal((await call(s.url, 'GET', '/healthz')).status, 200);
    }
    // The 503s were recorded on each replica's disk meanwhile, and reach the shared log once it is back.
    let denied = 0;
    for (let i = 0; i < 50 && denied < 2; i++) {
      const r = await call(b.url, 'GET', '/api/v1/audit?repo=shared/app&limit=1000');
      denied = (JSON.parse(r.body.toString()) as { records: Array<{ status: number }> }).records.filter((x) => x.status === 503).length;
      if (denied < 2) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(denied, 2, 'the answers given while the database was away are in the audit log, once each');
  });

  test('tags and links are rows in PostgreSQL; the bucket holds blobs, not the repositories\' files', async () => {
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    try {
      const r = await db.query<{ path: string }>("SELECT path FROM wharf_files WHERE path LIKE 'repositories/shared/app/_tags/%'");
      assert.deepEqual(
        r.rows.map((x) => x.path),
        ['repositories/shared/app/_tags/latest'],
      );
    } finally {
      await db.end();
    }
    const keys = ((await (await s3Client()).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }))).Contents ?? []).map((o) => o.Key!.slice(prefix.length + 1));
    assert.ok(keys.some((k) => k.startsWith('blobs/')), keys.join(' '));
    assert.deepEqual(
      keys.filter((k) => k.startsWith('repositories/')),
      [],
    );
  });
  test('a replica with a pool of one connection serves: the audit id slot holds a connection of its own', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wharf-replica-one-conn-'));
    dirs.push(dataDir);
    const s = await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage: sections.storage, database: { ...sections.database, maxConnections: 1 } } });
    try {
      await pushArtifact(s.url, 'shared/one-conn', 'v1', {});
      assert.equal((await call(s.url, 'GET', '/v2/shared/one-conn/manifests/v1')).status, 200);
      assert.equal((await call(s.url, 'GET', '/api/v1/audit?repo=shared/one-conn')).status, 200);
    } finally {
      await s.close();
    }
  });

  test('the audit log is one for both: every pull is on both replicas once, and a manifest pulled on one with its blob on the other is one download', async () => {
    const repo = 'shared/audit';
    const layer = randomBlob(4096, 'audited');
    const desc = descriptorOf(MediaTypes.layer, layer);
    await pushBlob(a.url, repo, layer);
    await pushBlob(a.url, repo, EMPTY_JSON);
    const m = imageManifest({ config: EMPTY_DESCRIPTOR, layers: [desc] });
    await pushManifest(a.url, repo, 'v1', m);
    assert.equal((await call(a.url, 'GET', `/v2/${repo}/manifests/v1`)).status, 200);
    assert.equal((await call(b.url, 'GET', `/v2/${repo}/blobs/${desc.digest}`)).status, 200);
    assert.equal((await call(b.url, 'GET', `/v2/${repo}/manifests/${m.digest}`)).status, 200);
    type Rec = { id: number; method: string; action: string; reference: string | null; digest: string | null };
    const views: Rec[][] = [];
    for (const s of [a, b]) {
      const r = await call(s.url, 'GET', `/api/v1/audit?repo=${repo}&limit=1000`);
      assert.equal(r.status, 200, r.body.toString());
      views.push((JSON.parse(r.body.toString()) as { records: Rec[] }).records);
    }
    const [onA, onB] = views as [Rec[], Rec[]];
    assert.deepEqual(onA.map((r) => r.id), onB.map((r) => r.id), 'both replicas list the same records, in the same order');
    assert.equal(new Set(onA.map((r) => r.id)).size, onA.length, 'no id twice');
    const pulls = onA.filter((r) => r.action === 'pull');
    assert.equal(pulls.length, 3, JSON.stringify(onA));
    // Ids grow with time across replicas too: newest first.
    assert.deepEqual(pulls.map((r) => r.method + ' ' + (r.reference ?? r.digest)), [`GET ${m.digest}`, `GET ${desc.digest}`, 'GET v1']);
    const d = await call(b.url, 'GET', `/api/v1/audit/downloads?repo=${repo}`);
    const downloads = (JSON.parse(d.body.toString()) as { downloads: Array<{ reference: string; blobsDone: number; blobsTotal: number; completed: boolean }> }).downloads;
    const first = downloads.find((x) => x.reference === 'v1');
    assert.ok(first, JSON.stringify(downloads));
    assert.deepEqual([first.blobsDone, first.blobsTotal, first.completed], [1, 1, true], 'the blob pulled on b joins the manifest pulled on a');
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    try {
      const r = await db.query<{ n: string }>("SELECT count(*) AS n FROM wharf_audit_journal WHERE lines LIKE '%shared/audit%'");
      assert.ok(Number(r.rows[0]!.n) > 0, 'the journal is in PostgreSQL');
    } finally {
      await db.end();
    }
    // `wharf audit` on a host with no replica: the database URL is all it needs.
    const host = await mkdtemp(join(tmpdir(), 'wharf-audit-host-'));
    dirs.push(host);
    const cli = await wharf(['audit', 'query', '--data', host, '--repo', repo, '--action', 'pull', '--format', 'json'], { env: { WHARF_DATABASE_URL: dbUrl } });
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual((JSON.parse(cli.stdout) as Rec[]).map((r) => r.id), pulls.map((r) => r.id));
    const stats = await wharf(['audit', 'downloads', '--data', host, '--repo', repo, '--format', 'json'], { env: { WHARF_DATABASE_URL: dbUrl } });
    assert.equal(stats.code, 0, stats.stderr);
    assert.ok((JSON.parse(stats.stdout) as Array<{ reference: string; completed: boolean }>).some((x) => x.reference === 'v1' && x.completed), stats.stdout);
  });

  test('a replica with audit.index: false writes the shared journal but reads nothing back; its audit API says where to ask; one server alone cannot have it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wharf-replica-noindex-'));
    dirs.push(dataDir);
    const c = await startServer({ dataDir, port: 0, logLevel: 'silent', config: { ...sections, audit: { index: false } } });
    try {
      const repo = 'shared/noindex';
      const layer = randomBlob(1024, 'noindex');
      await pushBlob(c.url, repo, layer);
      const pulled = await call(c.url, 'GET', `/v2/${repo}/blobs/${descriptorOf(MediaTypes.layer, layer).digest}`);
      assert.equal(pulled.status, 200);
      const own = await call(c.url, 'GET', `/api/v1/audit?repo=${repo}`);
      assert.equal(own.status, 404);
      assert.match(own.body.toString(), /UNSUPPORTED.*audit\.index: false/);
      const top = await call(c.url, 'GET', '/api/v1/analytics/top');
      assert.match(top.body.toString(), /audit\.index: false/);
      // The pull it served is in the index of a replica that keeps one.
      const r = await call(a.url, 'GET', `/api/v1/audit?repo=${repo}&action=pull`);
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body.toString()) as { records: unknown[] }).records.length, 1);
    } finally {
      await c.close();
    }
    assert.throws(() => parseConfig({ audit: { index: false } }), /audit\.index: false is for replicas: it needs database\.url/);
  });
  test('a small artifact costs the bucket a few requests: no object for an upload session sent whole, none for its record', async () => {
    const requests = async (): Promise<Map<string, number>> => {
      const text = (await call(a.url, 'GET', '/metrics')).body.toString();
      return new Map([...text.matchAll(/^wharf_object_store_requests_total\{op="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
    };
    const repo = 'shared/cost';
    await pushBlob(a.url, repo, EMPTY_JSON);
    const before = await requests();
    const layer = randomBlob(1024);
    await pushBlob(a.url, repo, layer);
    await pushBlob(a.url, repo, Buffer.from('{"cost":1}'));
    await pushManifest(a.url, repo, 'v1', imageManifest({ config: descriptorOf(MediaTypes.config, Buffer.from('{"cost":1}')), layers: [descriptorOf(MediaTypes.layer, layer)] }));
    const after = await requests();
    const used: Record<string, number> = Object.fromEntries([...after].map(([op, n]) => [op, n - (before.get(op) ?? 0)]).filter(([, n]) => n !== 0));
    const total = Object.values(used).reduce((x, y) => x + y, 0);
    // Two blobs and a manifest: each one conditional PutObject; the manifest's blobs each stat'ed
    // and touched (HeadObject, CopyObject). No request asks whether a blob is there first.
    assert.ok(total <= 7, JSON.stringify(used));
    assert.equal(used.delete, undefined, JSON.stringify(used));
    const keys = ((await (await s3Client()).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/repositories/` }))).Contents ?? []).map((o) => o.Key);
    assert.deepEqual(keys, []);
  });

  test('a chunked upload makes its data object with its first chunk; a session idle less than the purge age stays', async () => {
    const repo = 'shared/lazy';
    const blob = randomBlob(300_000);
    const loc = await startUpload(a.url, repo);
    assert.equal((await b.store.purgeUploads(60_000)).uploads.length, 0);
    const first = await call(b.url, 'PATCH', loc, { headers: { 'content-type': 'application/octet-stream', 'content-range': `0-99999` }, body: blob.subarray(0, 100_000) });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get('range'), '0-99999');
    const status = await call(a.url, 'GET', loc);
    assert.equal(status.headers.get('range'), '0-99999');
    const put = await call(a.url, 'PUT', withQuery(first.headers.get('location')!, { digest: descriptorOf(MediaTypes.layer, blob).digest }), { headers: { 'content-type': 'application/octet-stream' }, body: blob.subarray(100_000) });
    assert.equal(put.status, 201);
    assert.ok((await call(b.url, 'GET', `/v2/${repo}/blobs/${descriptorOf(MediaTypes.layer, blob).digest}`)).body.equals(blob));
    // Used, so that no later collection finds it an orphan.
    await pushBlob(a.url, repo, EMPTY_JSON);
    await pushManifest(a.url, repo, 'v1', imageManifest({ config: EMPTY_DESCRIPTOR, layers: [descriptorOf(MediaTypes.layer, blob)] }));
    const keys = ((await (await s3Client()).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/repositories/${repo}/` }))).Contents ?? []).map((o) => o.Key);
    assert.deepEqual(keys, []);
  });
});

describe('two replicas with auth share their keys through the database', { skip }, () => {
  const dirs: string[] = [];
  const servers: RunningServer[] = [];

  before(async () => {
    const shared = await mkdtemp(join(tmpdir(), 'wharf-replicas-auth-'));
    dirs.push(shared);
    // One htpasswd file for both, as a deployment mounts one (docs/SCALE-OUT.md).
    const htpasswd = join(shared, 'htpasswd');
    await writeUsers(htpasswd);
    const storage = await storageConfig('s3+pg', shared);
    const { database } = await databaseConfig('s3+pg');
    for (let i = 0; i < 2; i++) {
      const dataDir = await mkdtemp(join(tmpdir(), `wharf-replica-auth-${i}-`));
      dirs.push(dataDir);
      servers.push(await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage, database, auth: { htpasswd, rules: RULES, groups: { 'ml-team': ['alice'] }, rateLimit: { perUser: 4, perClient: 100, window: '1m' } } } }));
    }
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('a token issued by one replica is accepted by the other, and so is a UI session cookie', async () => {
    const [a, b] = servers as [RunningServer, RunningServer];
    await pushArtifact(a.url, 'ml/model', 'v1', basic('alice'));
    const t = await call(a.url, 'GET', '/token?service=wharf&scope=repository:ml/model:pull', { headers: basic('bob') });
    assert.equal(t.status, 200, t.body.toString());
    const { token } = JSON.parse(t.body.toString()) as { token: string };
    const got = await call(b.url, 'GET', '/v2/ml/model/manifests/v1', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(got.status, 200, got.body.toString());

    const s = await call(a.url, 'POST', '/api/v1/session', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'bob', password: USERS.bob }) });
    assert.equal(s.status, 200, s.body.toString());
    const cookie = (s.headers.get('set-cookie') ?? '').split(';')[0]!;
    const me = JSON.parse((await call(b.url, 'GET', '/api/v1/session', { headers: { cookie } })).body.toString()) as { user: string | null };
    assert.equal(me.user, 'bob');
  });

  test('failed logins count across replicas: wrong passwords spread over both are stopped at the limit plus one', async () => {
    const [a, b] = servers as [RunningServer, RunningServer];
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await call((i % 2 ? b : a).url, 'GET', '/v2/ml/model/manifests/v1', { headers: basic('victim', 'wrong') });
      statuses.push(r.status);
    }
    // 4 allowed per user; counted apart, the two replicas would have let all 8 through to bcrypt.
    const tried = statuses.filter((s) => s === 401).length;
    assert.ok(tried <= 4 + 1, `attempts answered 401: ${statuses.join(' ')}`);
    assert.equal(statuses[statuses.length - 1], 429, statuses.join(' '));
  });
});

describe('three replicas caching one upstream (pull-through) over one database', { skip }, () => {
  const dirs: string[] = [];
  const servers: RunningServer[] = [];
  let upstream: RunningServer;
  let fwd: Proxy;
  let img: TestImage;

  before(async () => {
    const shared = await mkdtemp(join(tmpdir(), 'wharf-replicas-proxy-'));
    dirs.push(shared);
    upstream = await startServer({ dataDir: join(shared, 'up'), logLevel: 'silent', config: { storage: { driver: 'memory' } } });
    fwd = await startProxy(upstream.url);
    img = await makeImage(2, 200_000);
    await pushImage(upstream.url, 'team/app', 'v1', img);
    const storage = await storageConfig('s3+pg', shared);
    const { database } = await databaseConfig('s3+pg');
    for (let i = 0; i < 3; i++) {
      const dataDir = await mkdtemp(join(tmpdir(), `wharf-replica-proxy-${i}-`));
      dirs.push(dataDir);
      servers.push(await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage, database, proxy: { upstreams: [{ namespace: 'up', url: fwd.url, ttl: '1h' }] } } }));
    }
  });
  after(async () => {
    for (const s of servers) await s.close();
    await fwd?.close();
    await upstream?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('12 concurrent misses of one blob, spread over the replicas, make one upstream fetch; all get its bytes', async () => {
    const layer = img.blobs[1]!;
    const gets = (): number => fwd.requests.filter((r) => r.method === 'GET' && r.url.includes(`/blobs/${layer.digest}`)).length;
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => call(servers[i % 3]!.url, 'GET', `/v2/up/team/app/blobs/${layer.digest}`)));
    for (const r of replies) {
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(layer.data));
    }
    assert.equal(gets(), 1, `upstream GETs of the blob: ${gets()}`);
  });
});

describe('webhooks of two replicas come from the shared journal', { skip }, () => {
  const dirs: string[] = [];
  let servers: RunningServer[] = [];
  const received: Array<{ id: string; action: string; target: { repository: string; tag: string | null } }> = [];
  const soloReceived: typeof received = [];
  let down = true;
  let refused = 0;
  const hookServer = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      if (req.url?.endsWith('?never')) return void res.writeHead(500).end();
      if (req.url === '/solo') {
        soloReceived.push(...(JSON.parse(body) as { events: typeof received }).events);
        return void res.writeHead(204).end();
      }
      if (down) {
        refused++;
        return void res.writeHead(503).end();
      }
      received.push(...(JSON.parse(body) as { events: typeof received }).events);
      res.writeHead(204).end();
    });
  });

  before(async () => {
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`;
    const shared = await mkdtemp(join(tmpdir(), 'wharf-replicas-hooks-'));
    dirs.push(shared);
    const storage = await storageConfig('s3+pg', shared);
    const { database } = await databaseConfig('s3+pg');
    for (let i = 0; i < 2; i++) {
      const dataDir = await mkdtemp(join(tmpdir(), `wharf-replica-hooks-${i}-`));
      dirs.push(dataDir);
      const webhooks = [
        { name: 'ci', url, actions: ['push' as const], repos: ['hooked/**'], backoff: 20, maxBackoff: 100, timeout: 2000 },
        // Always refused: after its 2 attempts the events are kept as failed and the endpoint moves on.
        { name: 'never', url: `${url}?never`, actions: ['push' as const], repos: ['hooked/**'], attempts: 2, backoff: 20, maxBackoff: 20, timeout: 2000 },
      ];
      servers.push(await startServer({ dataDir, port: 0, logLevel: 'silent', config: { storage, database, webhooks } }));
    }
  });
  after(async () => {
    for (const s of servers) await s.close();
    await new Promise((r) => hookServer.close(r));
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('with the audit log off, a replica still writes the journal for its webhooks', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wharf-replica-hooks-solo-'));
    dirs.push(dataDir);
    const url = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/solo`;
    const storage = await storageConfig('s3+pg', dirs[0]!);
    const { database } = await databaseConfig('s3+pg');
    const solo = await startServer({
      dataDir,
      port: 0,
      logLevel: 'silent',
      config: { storage, database, audit: { enabled: false }, webhooks: [{ name: 'solo', url, actions: ['push' as const], repos: ['solo/**'], backoff: 20, timeout: 2000 }] },
    });
    try {
      await pushArtifact(solo.url, 'solo/one', 'v1', {});
      for (let i = 0; i < 100 && !soloReceived.some((e) => e.target.tag === 'v1'); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(soloReceived.some((e) => e.target.repository === 'solo/one' && e.target.tag === 'v1'), 'the push event came');
      assert.equal((await call(solo.url, 'GET', '/api/v1/audit')).status, 404, 'no audit API with the audit log off');
    } finally {
      await solo.close();
    }
  });

  test('an endpoint that is down misses nothing, even when the replica that served the pushes is gone; each event comes once', async () => {
    const [a, b] = servers as [RunningServer, RunningServer];
    await pushArtifact(a.url, 'hooked/one', 'v1', {});
    await pushArtifact(b.url, 'hooked/two', 'v1', {});
    for (let i = 0; i < 100 && refused < 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(refused >= 2, `delivery was tried while the endpoint was down (${refused} refused)`);
    // The replica that served the first push goes away; the other delivers its events.
    await a.close();
    servers = [b];
    down = false;
    const tags = (): string[] => received.filter((e) => e.target.tag === 'v1').map((e) => e.target.repository).sort();
    for (let i = 0; i < 200 && tags().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(tags(), ['hooked/one', 'hooked/two']);
    // A moment more: nothing is sent twice when every POST succeeded.
    await new Promise((r) => setTimeout(r, 1200));
    const ids = received.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `no event twice: ${ids.join(' ')}`);
    assert.ok(received.every((e) => e.action === 'push' && e.target.repository.startsWith('hooked/')), 'the filters held');
    // The endpoint that refuses everything gave up on those events after 2 attempts, and keeps them.
    const { database } = await databaseConfig('s3+pg');
    const db = new pg.Client({ connectionString: database!.url });
    await db.connect();
    try {
      let failed = 0;
      for (let i = 0; i < 100 && failed < ids.length; i++) {
        failed = Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM wharf_webhook_failed WHERE endpoint = 'never'")).rows[0]!.n);
        if (failed < ids.length) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(failed, ids.length, 'every event the other endpoint got is kept as failed for this one');
      const errors = await db.query<{ error: string }>("SELECT DISTINCT error FROM wharf_webhook_failed WHERE endpoint = 'never'");
      assert.deepEqual(errors.rows.map((r) => r.error), ['HTTP 500']);
      const c = await db.query<{ attempts: number }>("SELECT attempts FROM wharf_webhook_cursors WHERE endpoint = 'never'");
      assert.equal(c.rows[0]!.attempts, 0, 'the endpoint moved on past them');
    } finally {
      await db.end();
    }
  });
});
