/**
 * The audit log: every content request (denied ones too) with user, IP, user agent, repository,
 * reference, digest, media and artifact type, status, bytes, duration and outcome; artifact
 * downloads grouped; the admin API and the CLI; retention; and no completed response lost to kill -9.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditDb } from '../src/server/audit/index.js';
import { recordParams } from '../src/server/audit/db.js';
import { openSqlite } from '../src/server/sqlite.js';
import { startServer } from '../src/server/index.js';
import { call } from '../src/testkit/http.js';
import { basic, pushArtifact, startAuthServer } from './helpers/auth.js';
import { spawnServe, wharf } from './helpers/cli.js';

describe('audit log', () => {
  let s: Awaited<ReturnType<typeof startAuthServer>>;
  let ml: { digest: string; layer: string };
  const big = Buffer.alloc(8 << 20, 7);
  let bigPush: { digest: string; layer: string };
  before(async () => {
    s = await startAuthServer();
    ml = await pushArtifact(s.url, 'ml/model', 'v3', basic('alice'));
    bigPush = await pushArtifact(s.url, 'ml/big', 'v1', basic('alice'), big);
    const ua = { 'user-agent': 'audit-test/1.0' };
    assert.equal((await call(s.url, 'GET', '/v2/ml/model/manifests/v3', { headers: { ...basic('bob'), ...ua } })).status, 200);
    assert.equal((await call(s.url, 'GET', `/v2/ml/model/blobs/${ml.layer}`, { headers: { ...basic('bob'), ...ua } })).status, 200);
    assert.equal((await call(s.url, 'GET', '/v2/secret/model/manifests/v1', { headers: { ...basic('bob'), ...ua } })).status, 403);
    assert.equal((await call(s.url, 'GET', '/v2/ml/model/manifests/v3', { headers: basic('bob', 'wrong') })).status, 401);
    // A download the client stops early.
    await new Promise<void>((resolve) => {
      const u = new URL(s.url);
      const req = request({ host: u.hostname, port: u.port, path: `/v2/ml/big/blobs/${bigPush.layer}`, headers: basic('bob') }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    await new Promise((r) => setTimeout(r, 100));
    s.hooks.audit?.flush();
  });
  after(async () => {
    await s.close();
    await rm(s.dataDir, { recursive: true, force: true });
  });

  test('a manifest pull is recorded with user, IP, user agent, reference, digest, media type, artifactType, bytes and outcome', () => {
    const [r] = s.hooks.audit!.db.query({ repo: 'ml/model', action: 'pull', user: 'bob', digest: ml.digest });
    assert.ok(r);
    assert.equal(r.ip, '127.0.0.1');
    assert.equal(r.userAgent, 'audit-test/1.0');
    assert.equal(r.reference, 'v3');
    assert.equal(r.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(r.artifactType, 'application/vnd.example.model');
    assert.equal(r.status, 200);
    assert.ok(r.bytes > 100);
    assert.equal(r.outcome, 'completed');
  });

  test('the blob pull that follows joins the manifest pull in one artifact download row', () => {
    const [b] = s.hooks.audit!.db.query({ repo: 'ml/model', digest: ml.layer, action: 'pull' });
    assert.equal(b?.mediaType, 'application/vnd.example.layer');
    assert.equal(b?.artifactType, 'application/vnd.example.model');
    const [d] = s.hooks.audit!.db.downloads({ repo: 'ml/model', user: 'bob' });
    assert.ok(d);
    assert.equal(b?.downloadId, d.id);
    assert.deepEqual([d.reference, d.digest, d.blobsDone, d.blobsTotal, d.completed], ['v3', ml.digest, 1, 1, true]);
  });

  test('denied attempts are recorded, a failed login under the name that was tried', () => {
    const denied = s.hooks.audit!.db.query({ action: 'denied' });
    assert.ok(denied.some((r) => r.repo === 'secret/model' && r.user === 'bob' && r.status === 403));
    assert.ok(denied.some((r) => r.repo === 'ml/model' && r.user === 'bob' && r.status === 401));
  });

  test('pushes are recorded, and a download the client stopped is aborted with the bytes sent', () => {
    assert.ok(s.hooks.audit!.db.query({ repo: 'ml/model', action: 'push', user: 'alice' }).some((r) => r.reference === 'v3' && r.digest === ml.digest));
    const [r] = s.hooks.audit!.db.query({ repo: 'ml/big', digest: bigPush.layer, action: 'pull' });
    assert.equal(r?.outcome, 'aborted');
    assert.ok(r!.bytes < big.length, `${r!.bytes} bytes`);
  });

  test('GET /api/v1/audit: admins only, filters, pages, CSV', async () => {
    assert.equal((await call(s.url, 'GET', '/api/v1/audit')).status, 401);
    assert.equal((await call(s.url, 'GET', '/api/v1/audit', { headers: basic('bob') })).status, 403);
    const r = await call(s.url, 'GET', '/api/v1/audit?repo=ml/model&user=bob&limit=1', { headers: basic('root') });
    assert.equal(r.status, 200);
    const page = JSON.parse(r.body.toString()) as { records: Array<{ repo: string; user: string; id: number }> };
    assert.equal(page.records.length, 1);
    assert.equal(page.records[0]!.user, 'bob');
    const next = /<([^>]+)>; rel="next"/.exec(r.headers.get('link') ?? '')?.[1];
    assert.ok(next);
    const p2 = JSON.parse((await call(s.url, 'GET', next, { headers: basic('root') })).body.toString()) as { records: Array<{ id: number }> };
    assert.ok(p2.records[0]!.id < page.records[0]!.id);
    const csv = await call(s.url, 'GET', '/api/v1/audit?repo=ml/*&format=csv', { headers: basic('root') });
    assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
    const lines = csv.body.toString().trim().split('\n');
    assert.equal(lines[0], 'time,user,ip,userAgent,method,action,repo,reference,digest,mediaType,artifactType,status,bytes,durationMs,outcome,file');
    assert.ok(lines.length > 3);
    const dl = JSON.parse((await call(s.url, 'GET', '/api/v1/audit/downloads?repo=ml/model&since=7d', { headers: basic('root') })).body.toString()) as { downloads: Array<{ user: string; reference: string }> };
    assert.deepEqual(dl.downloads.map((d) => `${d.user} ${d.reference}`), ['bob v3']);
    const st = JSON.parse((await call(s.url, 'GET', '/api/v1/audit/stats?since=1d', { headers: basic('root') })).body.toString()) as { perUser: Array<{ user: string; downloads: number }> };
    assert.ok(st.perUser.some((u) => u.user === 'bob' && u.downloads === 1));
    assert.equal((await call(s.url, 'GET', '/api/v1/audit/stats', { headers: basic('bob') })).status, 403);
  });

  test('wharf audit query and stats read the database', async () => {
    const j = await wharf(['audit', 'query', '--data', s.dataDir, '--repo', 'ml/model', '--user', 'bob', '--action', 'pull', '--format', 'json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual((JSON.parse(j.stdout) as Array<{ status: number }>).map((r) => r.status).sort(), [200, 200, 401]);
    const t = await wharf(['audit', 'query', '--data', s.dataDir, '--action', 'denied', '--since', '1h']);
    assert.match(t.stdout, /secret\/model/);
    const c = await wharf(['audit', 'query', '--data', s.dataDir, '--digest', ml.digest, '--format', 'csv']);
    assert.match(c.stdout, /^time,user,ip/);
    const st = await wharf(['audit', 'stats', '--data', s.dataDir, '--since', '1d']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /ml\/model\s+v3\s+sha256:\S+\s+1\s+1\s+1/);
    assert.match(st.stdout, /bob\s+\d/);
  });
});

describe('audit retention', () => {
  test('maxRows keeps the newest rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-audit-ret-'));
    // One flush, at close: its batch carries the retention pass (done on the writer thread).
    const s = await startServer({ dataDir: dir, logLevel: 'silent', config: { audit: { flushInterval: '1h', retention: { maxRows: 5 } } } });
    try {
      for (let i = 0; i < 12; i++) await call(s.url, 'GET', `/v2/r/manifests/t${i}`);
      await s.close();
      const db = new AuditDb(join(dir, 'audit', 'audit.db'));
      const rows = db.query({}, { limit: 100 });
      assert.deepEqual(rows.map((r) => r.reference), ['t11', 't10', 't9', 't8', 't7']);
      db.prune({ maxAge: 0 }, Date.now() + 1000);
      assert.equal(db.query({}).length, 0);
      db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('audit schema', () => {
  test('a version 2 database keeps its rows and gains the file column', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-audit-v2-'));
    try {
      const path = join(dir, 'audit.db');
      const old = openSqlite(path);
      old.exec(`CREATE TABLE requests (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, user TEXT, ip TEXT NOT NULL, user_agent TEXT, method TEXT NOT NULL,
        action TEXT NOT NULL, repo TEXT, reference TEXT, digest TEXT, media_type TEXT, artifact_type TEXT, status INTEGER NOT NULL, bytes INTEGER NOT NULL,
        duration_ms REAL NOT NULL, outcome TEXT NOT NULL, download_id INTEGER);
        INSERT INTO requests VALUES (1, 1000, 'alice', '127.0.0.1', NULL, 'GET', 'pull', 'r', 'v1', NULL, NULL, NULL, 200, 5, 1.5, 'completed', NULL);
        PRAGMA user_version = 2;`);
      old.close();
      const db = new AuditDb(path);
      const rec = { id: 2, time: 2000, user: null, ip: '::1', userAgent: null, method: 'GET', action: 'pull' as const, repo: 'r', reference: null, digest: null, mediaType: null, artifactType: null, status: 200, bytes: 9, durationMs: 1, outcome: 'completed' as const, file: 'docs/a.txt' };
      db.commit([recordParams(rec)]);
      assert.deepEqual(db.query({}).map((r) => [r.id, r.user, r.file]), [[2, null, 'docs/a.txt'], [1, 'alice', null]]);
      db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('audit durability', () => {
  test('a journal that cannot be written (a full disk, say) costs no response, and the records still reach SQLite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-audit-ebadf-'));
    const s = await startServer({ dataDir: dir, logLevel: 'silent', config: { audit: { flushInterval: '1h' } } });
    try {
      // Point the journal at a descriptor that does not exist: every append fails.
      (s.hooks.audit as unknown as { fd: number }).fd = 1 << 20;
      for (let i = 0; i < 3; i++) assert.equal((await call(s.url, 'GET', `/v2/x/tags/list?i=${i}`)).status, 404);
      s.hooks.audit!.flush();
      assert.equal(s.hooks.audit!.db.query({ repo: 'x' }).length, 3);
      // The next flush opens a new segment: the journal works again.
      assert.notEqual((s.hooks.audit as unknown as { fd: number }).fd, 1 << 20);
      assert.equal((await call(s.url, 'GET', '/v2/x/tags/list')).status, 404);
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });


  test('a full batch of records goes to SQLite without waiting for the timer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-audit-batch-'));
    const s = await startServer({ dataDir: dir, logLevel: 'silent', config: { audit: { flushInterval: '1h' } } });
    try {
      const db = s.hooks.audit!.db;
      await Promise.all(Array.from({ length: 300 }, (_, i) => call(s.url, 'GET', `/v2/x/tags/list?i=${i}`)));
      await new Promise((r) => setImmediate(r));
      // Read the database, not the log's query (which flushes first).
      const n = db.query({ repo: 'x' }, { limit: 1000 }).length;
      assert.ok(n >= 256 && n <= 300, `${n} records in SQLite before any timer`);
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a journal with a torn last line and a stray correction line is replayed, and the server starts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-audit-replay-'));
    try {
      await mkdir(join(dir, 'audit', 'journal'), { recursive: true });
      const rec = { id: 7001, time: Date.now(), user: 'bob', ip: '10.0.0.1', userAgent: 'x', method: 'GET', action: 'pull', repo: 'a/b', reference: 'v1', digest: null, mediaType: null, artifactType: null, status: 200, bytes: 10, durationMs: 1, outcome: 'completed' };
      await writeFile(join(dir, 'audit', 'journal', 'journal-7.log'), `${JSON.stringify(rec)}\n${JSON.stringify({ id: 7002, outcome: 'aborted', bytes: 1 })}\n{"id":7003,"ti`);
      const s = await startServer({ dataDir: dir, logLevel: 'silent' });
      await s.close();
      const db = new AuditDb(join(dir, 'audit', 'audit.db'));
      assert.deepEqual(db.query({}).map((r) => `${r.id} ${r.user} ${r.repo}`), ['7001 bob a/b']);
      db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });


  test('kill -9 right after responses completed loses no record (the journal is replayed on start)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-audit-kill-'));
    // Nothing reaches SQLite by the timer before the kill: only the journal can keep the records.
    const { child, url } = await spawnServe(dir, 'audit: { flushInterval: 1h }\n');
    try {
      const pushed = await pushArtifact(url, 'k/model', 'v1', {});
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await call(url, 'GET', i % 2 ? `/v2/k/model/blobs/${pushed.layer}` : '/v2/k/model/manifests/v1', { headers: { 'user-agent': `kill-test-${i}` } });
        assert.equal(r.status, 200);
        ids.push(`kill-test-${i}`);
      }
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const s = await startServer({ dataDir: join(dir, 'data'), logLevel: 'silent' });
      await s.close();
      const db = new AuditDb(join(dir, 'data', 'audit', 'audit.db'));
      const rows = db.query({ repo: 'k/model', action: 'pull' }, { limit: 1000 });
      db.close();
      const got = new Set(rows.map((r) => r.userAgent));
      assert.deepEqual(ids.filter((u) => !got.has(u)), []);
      assert.ok(rows.every((r) => r.status === 200 && r.outcome === 'completed'));
      assert.equal(rows.filter((r) => r.userAgent === 'kill-test-29').length, 1);
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
