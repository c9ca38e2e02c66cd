/**
 * The web UI's analytics and admin API: downloads over time, top artifacts, who downloaded (JSON
 * pages and CSV), tag history, the cache and storage pages; who may see them; bad input.
 * A real server; pulls through /v2 by two users; a tag moved twice and deleted.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditDb, nextAuditId } from '../src/server/audit/index.js';
import { downloadParams, recordParams } from '../src/server/audit/db.js';
import { startServer } from '../src/server/index.js';
import type { CacheStatus, DownloadEvent, DownloadSeries, Page, StorageUse, TagMove, TopArtifact } from '../src/server/web/index.js';
import { call, type Reply } from '../src/testkit/http.js';
import { basic, errorCode, pushArtifact, startAuthServer } from './helpers/auth.js';

const body = <T>(r: Reply): T => {
  assert.equal(r.status, 200, `${r.what}: ${r.status} ${r.body.toString()}`);
  return JSON.parse(r.body.toString()) as T;
};
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

describe('web analytics', () => {
  let s: Awaited<ReturnType<typeof startAuthServer>>;
  let a: { digest: string; layer: string };
  let b: { digest: string; layer: string };
  let c: { digest: string; layer: string };
  let other: { digest: string; layer: string };
  let t0: number;
  const get = (path: string, user?: string): Promise<Reply> => call(s.url, 'GET', path, user ? { headers: basic(user) } : {});

  /** A pull as a client does it: the manifest, then its layer. */
  const pull = async (repo: string, ref: string, layer: string, user: string, ua: string): Promise<void> => {
    const h = { ...basic(user), 'user-agent': ua };
    assert.equal((await call(s.url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: h })).status, 200);
    assert.equal((await call(s.url, 'GET', `/v2/${repo}/blobs/${layer}`, { headers: h })).status, 200);
  };

  before(async () => {
    s = await startAuthServer();
    t0 = Date.now();
    // ml/model:v1 is pushed, moved twice, pulled by bob and alice, then deleted.
    a = await pushArtifact(s.url, 'ml/model', 'v1', basic('alice'), Buffer.from('weights a'));
    await pull('ml/model', 'v1', a.layer, 'bob', 'oras/1.2');
    await pull('ml/model', a.digest, a.layer, 'alice', '=HYPERLINK("http://x")');
    b = await pushArtifact(s.url, 'ml/model', 'v1', basic('alice'), Buffer.from('weights b'));
    c = await pushArtifact(s.url, 'ml/model', 'v1', basic('root'), Buffer.from('weights c'));
    await pull('ml/model', 'v1', c.layer, 'bob', 'oras/1.2');
    assert.equal((await call(s.url, 'DELETE', '/v2/ml/model/manifests/v1', { headers: basic('root') })).status, 202);
    // A repository alice does not own.
    other = await pushArtifact(s.url, 'other/thing', 'latest', basic('root'), Buffer.from('other'));
    await pull('other/thing', 'latest', other.layer, 'root', 'curl/8');
    // A file downloaded from the UI, recorded through the audit log as the artifact page records it.
    const rec = { id: nextAuditId(), time: Date.now(), user: 'bob', ip: '127.0.0.1', userAgent: 'Mozilla/5.0', method: 'GET', action: 'pull' as const, repo: 'ml/model', reference: c.digest, digest: c.layer, mediaType: null, artifactType: null, status: 200, bytes: 9, durationMs: 1, outcome: 'completed' as const, file: 'model/README.md' };
    s.hooks.audit!.journal(rec, { kind: 'file' });
    s.hooks.audit!.complete(rec, { kind: 'file' });
    await settle();
  });
  after(async () => {
    await s.close();
    await rm(s.dataDir, { recursive: true, force: true });
  });

  test('downloads over time: artifact pulls and UI file downloads, bucketed, with bytes and distinct users', async () => {
    const r = await get(`/api/v1/analytics/downloads?repo=ml/model&from=${t0 - 3_600_000}&interval=hour`, 'root');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const series = body<DownloadSeries>(r);
    assert.equal(series.interval, 3_600_000);
    assert.ok(series.points.length >= 2 && series.points.length <= 3, `${series.points.length} points`);
    for (let i = 1; i < series.points.length; i++) assert.equal(series.points[i]!.t - series.points[i - 1]!.t, 3_600_000);
    const sum = (k: 'downloads' | 'bytes'): number => series.points.reduce((n, p) => n + p[k], 0);
    assert.equal(sum('downloads'), 4, 'three artifact pulls and one file');
    assert.ok(sum('bytes') > 0);
    assert.equal(Math.max(...series.points.map((p) => p.users)), 2);

    const files = body<DownloadSeries>(await get(`/api/v1/analytics/downloads?repo=ml/model&file=model/README.md&from=${t0 - 60_000}`, 'root'));
    assert.equal(files.points.reduce((n, p) => n + p.downloads, 0), 1);
    const byDigest = body<DownloadSeries>(await get(`/api/v1/analytics/downloads?repo=ml/model&digest=${a.digest}&from=${t0 - 60_000}`, 'root'));
    assert.equal(byDigest.points.reduce((n, p) => n + p.downloads, 0), 2);
    const byTag = body<DownloadSeries>(await get(`/api/v1/analytics/downloads?repo=ml/model&tag=v1&from=${t0 - 60_000}`, 'root'));
    assert.equal(byTag.points.reduce((n, p) => n + p.downloads, 0), 2, 'the pulls by tag');
    // Auto: a day's span is hourly, a year's weekly, within the bound.
    assert.equal(body<DownloadSeries>(await get('/api/v1/analytics/downloads?from=0&to=86400000', 'root')).interval, 3_600_000);
    const long = body<DownloadSeries>(await get(`/api/v1/analytics/downloads?from=0`, 'root'));
    assert.ok(long.points.length <= 1000 && long.interval % (7 * 86_400_000) === 0);
    assert.equal(long.points.reduce((n, p) => n + p.downloads, 0), 5);
  });

  test('top artifacts, with the reference of the latest pull and last pulled', async () => {
    const top = body<TopArtifact[]>(await get(`/api/v1/analytics/top?from=${t0 - 60_000}`, 'root'));
    assert.deepEqual(top[0] && [top[0].repo, top[0].digest, top[0].downloads, top[0].users], ['ml/model', a.digest, 2, 2]);
    assert.deepEqual(
      top.slice(1).map((t) => `${t.repo}@${t.digest} ${t.downloads} ${t.users}`).sort(),
      [`ml/model@${c.digest} 1 1`, `other/thing@${other.digest} 1 1`].sort(),
    );
    assert.equal(top.length, 3);
    assert.equal(top[0]!.reference, a.digest, 'the latest pull of a was by digest');
    assert.ok(top.every((t) => t.lastPulled >= t0 && t.bytes > 0));
    assert.equal(body<TopArtifact[]>(await get(`/api/v1/analytics/top?from=${t0 - 60_000}&limit=1`, 'root')).length, 1);
  });

  test('who downloaded: pages by cursor, users with groups, IP, client, file; CSV with formulas defused', async () => {
    const first = body<Page<DownloadEvent>>(await get(`/api/v1/analytics/who?repo=ml/model&limit=2`, 'root'));
    assert.equal(first.items.length, 2);
    assert.ok(first.next);
    const rest = body<Page<DownloadEvent>>(await get(`/api/v1/analytics/who?repo=ml/model&limit=2&cursor=${first.next}`, 'root'));
    assert.equal(rest.items.length, 2);
    assert.equal(rest.next, null);
    const all = [...first.items, ...rest.items];
    assert.ok(all.every((e, i) => i === 0 || all[i - 1]!.time >= e.time), 'newest first');
    const file = all.find((e) => e.file !== null)!;
    assert.deepEqual([file.user, file.file, file.client, file.groups], ['bob', 'model/README.md', 'Mozilla/5.0', []]);
    const alice = all.find((e) => e.user === 'alice')!;
    assert.deepEqual([alice.ip, alice.digest, alice.groups, alice.completed], ['127.0.0.1', a.digest, ['ml-team'], true]);
    assert.equal(all.filter((e) => e.user === 'bob' && e.client === 'oras/1.2').length, 2);

    const csv = await get(`/api/v1/analytics/who?repo=ml/model&format=csv`, 'root');
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
    const lines = csv.body.toString().trimEnd().split('\n');
    assert.equal(lines[0], 'time,user,groups,ip,client,repo,reference,digest,file,bytes,completed');
    assert.equal(lines.length, 5);
    assert.ok(lines.some((l) => l.includes(`,alice,ml-team,127.0.0.1,"'=HYPERLINK(""http://x"")",ml/model,`)), lines.join('\n'));
    const digestOnly = body<Page<DownloadEvent>>(await get(`/api/v1/analytics/who?repo=ml/model&digest=${c.digest}`, 'root'));
    assert.equal(digestOnly.items.length, 2, 'the pull of c and the file recorded with c as its reference');
  });

  test('tag history: every move of the tag, newest first, with user and time', async () => {
    const moves = body<TagMove[]>(await get('/api/v1/tag-history?repo=ml/model&tag=v1', 'bob'));
    assert.deepEqual(
      moves.map((m) => [m.action, m.digest, m.user]),
      [
        ['delete', c.digest, 'root'],
        ['push', c.digest, 'root'],
        ['push', b.digest, 'alice'],
        ['push', a.digest, 'alice'],
      ],
    );
    assert.ok(moves.every((m, i) => m.time >= t0 && (i === 0 || moves[i - 1]!.time >= m.time)));
    // Deleting the manifest by digest takes its tags with it.
    const d = await pushArtifact(s.url, 'ml/model', 'v2', basic('alice'), Buffer.from('weights d'));
    assert.equal((await call(s.url, 'DELETE', `/v2/ml/model/manifests/${d.digest}`, { headers: basic('root') })).status, 202);
    await settle();
    const v2 = body<TagMove[]>(await get('/api/v1/tag-history?repo=ml/model&tag=v2', 'alice'));
    assert.deepEqual(v2.map((m) => [m.action, m.digest]), [['delete', d.digest], ['push', d.digest]]);
    assert.deepEqual(body<TagMove[]>(await get('/api/v1/tag-history?repo=ml/model&tag=never', 'alice')), []);
  });

  test('access: anonymous 401 with a challenge; owners see their repositories; pullers and outsiders see nothing; admins everything', async () => {
    for (const path of ['/api/v1/analytics/downloads', '/api/v1/analytics/top', '/api/v1/analytics/who', '/api/v1/admin/cache', '/api/v1/admin/storage', '/api/v1/tag-history?repo=ml/model&tag=v1']) {
      const r = await get(path);
      assert.equal(r.status, 401, path);
      assert.equal(errorCode(r), 'UNAUTHORIZED');
      assert.ok(r.headers.get('www-authenticate'), path);
    }
    // alice owns ml/**: her analytics, not other/thing.
    const top = body<TopArtifact[]>(await get(`/api/v1/analytics/top?from=${t0 - 60_000}`, 'alice'));
    assert.deepEqual([...new Set(top.map((t) => t.repo))], ['ml/model']);
    const all = body<DownloadSeries>(await get(`/api/v1/analytics/downloads?from=${t0 - 60_000}`, 'alice'));
    assert.equal(all.points.reduce((n, p) => n + p.downloads, 0), 4);
    assert.equal(body<Page<DownloadEvent>>(await get('/api/v1/analytics/who', 'alice')).items.every((e) => e.repo === 'ml/model'), true);
    let r = await get('/api/v1/analytics/who?repo=other/thing', 'alice');
    assert.deepEqual([r.status, errorCode(r)], [404, 'NAME_UNKNOWN']);
    // bob may pull ml/** but not push: no analytics of it.
    r = await get('/api/v1/analytics/downloads?repo=ml/model', 'bob');
    assert.deepEqual([r.status, errorCode(r)], [403, 'DENIED']);
    assert.deepEqual(body<TopArtifact[]>(await get('/api/v1/analytics/top', 'bob')), []);
    assert.deepEqual(body<Page<DownloadEvent>>(await get('/api/v1/analytics/who', 'bob')).items, []);
    // victim has no rights at all: a private repository's existence is not told.
    r = await get('/api/v1/tag-history?repo=ml/model&tag=v1', 'victim');
    assert.deepEqual([r.status, errorCode(r)], [404, 'NAME_UNKNOWN']);
    for (const path of ['/api/v1/admin/cache', '/api/v1/admin/storage']) {
      r = await get(path, 'alice');
      assert.deepEqual([r.status, errorCode(r)], [403, 'DENIED'], path);
    }
    // root: everything.
    assert.equal(new Set(body<TopArtifact[]>(await get(`/api/v1/analytics/top?from=${t0 - 60_000}`, 'root')).map((t) => t.repo)).size, 2);
  });

  test('admin: storage per repository (shared blobs in each, once in the total), kept for a minute; cache status without a proxy', async () => {
    const use = body<StorageUse>(await get('/api/v1/admin/storage', 'root'));
    const ml = use.repositories.find((x) => x.name === 'ml/model')!;
    const ot = use.repositories.find((x) => x.name === 'other/thing')!;
    assert.ok(ml.blobs >= 4 && ml.size > 0, JSON.stringify(ml));
    assert.ok(ot.blobs === 3 && ot.size > 0, JSON.stringify(ot));
    // The empty config {} is in both: the total counts it once.
    assert.ok(use.total < ml.size + ot.size && use.total > 0);
    assert.equal(use.truncated, false);
    await pushArtifact(s.url, 'other/new', 'x', basic('root'));
    const again = body<StorageUse>(await get('/api/v1/admin/storage', 'root'));
    assert.equal(again.computed, use.computed, 'the same walk within the minute');
    assert.equal(again.repositories.some((x) => x.name === 'other/new'), false);
    const cache = body<CacheStatus>(await get('/api/v1/admin/cache', 'root'));
    assert.deepEqual([cache.upstreams, cache.repositories, cache.hits, cache.misses], [[], [], 0, 0]);
  });

  test('bad input: 400 with the error body, never a 500', async () => {
    const cases: Array<[string, string]> = [
      ['/api/v1/analytics/downloads?from=2000&to=1000', 'UNSUPPORTED'],
      ['/api/v1/analytics/downloads?interval=minute', 'UNSUPPORTED'],
      ['/api/v1/analytics/downloads?from=0&interval=hour', 'UNSUPPORTED'],
      ['/api/v1/analytics/downloads?from=yesterday', 'UNSUPPORTED'],
      ['/api/v1/analytics/downloads?repo=ml/model&repo=x', 'UNSUPPORTED'],
      ['/api/v1/analytics/downloads?repo=ML/Model', 'NAME_INVALID'],
      ['/api/v1/analytics/downloads?digest=sha256:xyz', 'DIGEST_INVALID'],
      ['/api/v1/analytics/downloads?tag=-bad', 'TAG_INVALID'],
      ['/api/v1/analytics/top?limit=0', 'UNSUPPORTED'],
      ['/api/v1/analytics/top?limit=ten', 'UNSUPPORTED'],
      ['/api/v1/analytics/who?cursor=bm90IGEgY3Vyc29y', 'UNSUPPORTED'],
      ['/api/v1/analytics/who?cursor=%25%25', 'UNSUPPORTED'],
      ['/api/v1/analytics/who?format=xml', 'UNSUPPORTED'],
      ['/api/v1/tag-history?repo=ml/model', 'TAG_INVALID'],
      ['/api/v1/tag-history?tag=v1', 'NAME_INVALID'],
    ];
    for (const [path, code] of cases) {
      const r = await get(path, 'root');
      assert.equal(r.status, 400, `${path}: ${r.status} ${r.body.toString()}`);
      assert.equal(errorCode(r), code, path);
    }
  });
});

describe('web analytics with auth off', () => {
  test('loopback clients see everything; with audit off the analytics say so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-analytics-'));
    const s = await startServer({ dataDir: dir, logLevel: 'silent', config: {} });
    try {
      const p = await pushArtifact(s.url, 'open/repo', 'v1', {});
      assert.equal((await call(s.url, 'GET', '/v2/open/repo/manifests/v1')).status, 200);
      await settle();
      const who = body<Page<DownloadEvent>>(await call(s.url, 'GET', '/api/v1/analytics/who'));
      assert.deepEqual(who.items.map((e) => [e.repo, e.digest, e.user, 'groups' in e]), [['open/repo', p.digest, null, false]]);
      assert.equal(body<StorageUse>(await call(s.url, 'GET', '/api/v1/admin/storage')).repositories.length, 1);
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
    const dir2 = await mkdtemp(join(tmpdir(), 'wharf-analytics-'));
    const s2 = await startServer({ dataDir: dir2, logLevel: 'silent', config: { audit: { enabled: false } } });
    try {
      const r = await call(s2.url, 'GET', '/api/v1/analytics/top');
      assert.deepEqual([r.status, errorCode(r)], [404, 'UNSUPPORTED']);
    } finally {
      await s2.close();
      await rm(dir2, { recursive: true, force: true });
    }
  });
});

describe('admin cache page with a pull-through cache', () => {
  test('upstreams with health and counters; cached repositories with size, images and last pull', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'wharf-analytics-cache-'));
    const upstream = await startServer({ dataDir: join(tmp, 'up'), logLevel: 'silent', config: { audit: { enabled: false } } });
    const cache = await startServer({ dataDir: join(tmp, 'cache'), logLevel: 'silent', config: { proxy: { upstreams: [{ namespace: 'up', url: upstream.url, ttl: '1h' }] } } });
    try {
      const p = await pushArtifact(upstream.url, 'team/app', 'v1', {});
      for (let i = 0; i < 2; i++) {
        assert.equal((await call(cache.url, 'GET', '/v2/up/team/app/manifests/v1')).status, 200);
        assert.equal((await call(cache.url, 'GET', `/v2/up/team/app/blobs/${p.layer}`)).status, 200);
      }
      await settle();
      const st = body<CacheStatus>(await call(cache.url, 'GET', '/api/v1/admin/cache'));
      assert.equal(st.upstreams.length, 1);
      const u = st.upstreams[0]!;
      assert.deepEqual([u.name, u.url, u.healthy, u.downUntil, u.namespaces], ['up', new URL(upstream.url).href, true, null, ['up']]);
      assert.ok(u.misses >= 1 && u.hits >= 1 && st.hits === u.hits && st.misses === u.misses, JSON.stringify(st));
      const r = st.repositories.find((x) => x.name === 'up/team/app');
      assert.ok(r && r.images === 1 && r.size > 0 && r.lastPulled !== null, JSON.stringify(st.repositories));
    } finally {
      await cache.close();
      await upstream.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('analytics rollups', () => {
  test('a series and a top list read from the daily rollups equal the same read from the rows, before and after retention', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-rollup-'));
    const db = new AuditDb(join(dir, 'audit.db'));
    try {
      const D = 86_400_000;
      const today = Math.floor(Date.now() / D) * D;
      let seed = 7;
      const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
      const recs: Parameters<typeof db.commit>[0] = [];
      const dls: NonNullable<Parameters<typeof db.commit>[1]> = [];
      for (let id = 1; id <= 3000; id++) {
        const time = today - 20 * D + rnd(21 * D);
        const repo = `r/${rnd(5)}`;
        const digest = `sha256:${String(rnd(8)).padStart(64, '0')}`;
        const user = rnd(4) === 0 ? null : `u${rnd(12)}`;
        const ip = `10.0.0.${rnd(30)}`;
        const bytes = 100 + rnd(1000);
        const base = { id, time, user, ip, userAgent: null, method: 'GET', action: 'pull' as const, repo, reference: `v${rnd(3)}`, digest, mediaType: null, artifactType: null, status: 200, bytes, durationMs: 1, outcome: 'completed' as const };
        if (rnd(10) === 0) recs.push(recordParams({ ...base, file: `f${rnd(3)}` }));
        else {
          recs.push(recordParams({ ...base, downloadId: id }));
          dls.push(downloadParams({ id, time, lastTime: time, user, ip, repo, reference: base.reference, digest, artifactType: null, blobsTotal: 1, blobsDone: 1, bytes, completed: true }));
        }
      }
      db.commit(recs, dls);
      const compare = (from: number, to: number): void => {
        for (const width of [D, 7 * D]) {
          const b = { width, offset: width === D ? 0 : 4 * D };
          assert.deepEqual(db.analytics.downloadSeries({ from, to }, b), db.analytics.downloadSeries({ from, to }, b, { rollup: false }), `series ${width}`);
        }
        assert.deepEqual(db.analytics.topArtifacts({ from, to }, 50), db.analytics.topArtifacts({ from, to }, 50, { rollup: false }));
        const repos = ['r/1', 'r/3'];
        assert.deepEqual(db.analytics.topArtifacts({ from, to, repos }, 5), db.analytics.topArtifacts({ from, to, repos }, 5, { rollup: false }));
      };
      // Five days per call: the first calls leave the newest days to the rows.
      db.analytics.rollUp(today, 5);
      compare(today - 30 * D, Date.now());
      compare(today - 9 * D - 12345, today - 2 * D + 999);
      for (let i = 0; i < 5; i++) db.analytics.rollUp(today, 5);
      compare(today - 30 * D, Date.now());
      compare(today - 9 * D - 12345, today - 2 * D + 999);
      // Spans moved a few days either way: the remembered sums are moved, not summed again.
      for (const [a, b] of [[-8, -1], [-6, -1], [-10, -3], [-12, -4], [-5, 0]] as const) compare(today + a * D + 777, today + b * D - 5);
      const rolled = db.db.prepare('SELECT COUNT(*) AS n FROM rollup_days').get()!.n;
      assert.equal(rolled, 20);
      // Retention at a day boundary: the rollups lose the same days.
      db.prune({ maxAge: Date.now() - (today - 10 * D) });
      db.analytics.rollUp(today, 5);
      assert.equal(db.db.prepare('SELECT COUNT(*) AS n FROM rollup_days').get()!.n, 10);
      compare(today - 30 * D, Date.now());
    } finally {
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
