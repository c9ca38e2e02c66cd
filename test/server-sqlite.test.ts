/**
 * SQLite on every runtime: node:sqlite where Node has it (22.13+, 24), better-sqlite3 on Node 20.
 * The audit database and the webhook queue behave alike on each engine that loads here.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditDb } from '../src/server/audit/index.js';
import { downloadParams, recordParams } from '../src/server/audit/db.js';
import type { AuditRecord } from '../src/server/audit/index.js';
import { CACHE_KIB, openSqlite, sqliteEngines } from '../src/server/sqlite.js';

const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const hasBuiltin = major > 22 || (major === 22 && minor >= 13);

function record(id: number, over: Partial<AuditRecord> = {}): AuditRecord {
  return { id, time: 1_700_000_000_000 + id, user: 'bob', ip: '127.0.0.1', userAgent: 'ua', method: 'GET', action: 'pull', repo: 'ml/model', reference: 'v1', digest: `sha256:${'a'.repeat(64)}`, mediaType: null, artifactType: null, status: 200, bytes: 10, durationMs: 1.5, outcome: 'completed', ...over };
}

test('the engines: node:sqlite where Node has it, and it is the default there; on Node 20, better-sqlite3', () => {
  const engines = sqliteEngines();
  assert.ok(engines.length > 0, `no SQLite engine loads on Node ${process.version}`);
  assert.equal(engines.includes('node:sqlite'), hasBuiltin);
  const db = openSqlite(':memory:');
  assert.equal(db.engine, hasBuiltin ? 'node:sqlite' : 'better-sqlite3');
  db.close();
});

test('opening the audit database prints no ExperimentalWarning (Node 22 warns on loading node:sqlite)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-sqlite-warn-'));
  try {
    const code = `const { AuditDb } = await import('./src/server/audit/index.ts'); const db = new AuditDb(${JSON.stringify(join(dir, 'a.db'))}); console.log(db.db.engine); db.close();`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), hasBuiltin ? 'node:sqlite' : 'better-sqlite3');
    assert.doesNotMatch(r.stderr, /ExperimentalWarning|experimental/i);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('each connection caches at most CACHE_KIB of pages, on every engine (better-sqlite3 is built with 16 MB)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-sqlite-cache-'));
  try {
    for (const engine of sqliteEngines()) {
      const db = openSqlite(join(dir, `${engine.replace(':', '-')}.db`), { engine });
      assert.equal(db.prepare('PRAGMA cache_size').get()!.cache_size, -CACHE_KIB, engine);
      db.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const engine of sqliteEngines()) {
  describe(`audit database on ${engine}`, () => {
    test('commit, query, downloads, stats, prune; rows are plain objects', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'wharf-sqlite-'));
      try {
        const db = new AuditDb(join(dir, 'audit.db'), { engine });
        assert.equal(db.db.engine, engine);
        const id0 = Date.now() * 4096; // ids are this large (ids.ts): still exact
        db.commit(
          [recordParams(record(id0)), recordParams(record(id0 + 1, { user: null, status: 403 })), recordParams(record(id0 + 2, { action: 'push', repo: 'other' }))],
          [downloadParams({ id: id0, time: 1, lastTime: 2, user: 'bob', ip: '127.0.0.1', repo: 'ml/model', reference: 'v1', digest: `sha256:${'a'.repeat(64)}`, artifactType: null, blobsTotal: 2, blobsDone: 2, bytes: 30, completed: true })],
          [{ id: id0 + 2, bytes: 3 }],
        );
        // The same record again is kept, not doubled.
        db.commit([recordParams(record(id0))]);
        const all = db.query({});
        assert.deepEqual(all.map((r) => r.id), [id0 + 2, id0 + 1, id0]);
        assert.deepEqual(all[2], { ...record(id0), downloadId: null, file: null });
        assert.equal(all[0]!.outcome, 'aborted');
        assert.equal(all[0]!.bytes, 3);
        assert.equal(db.query({ denied: true }).length, 1);
        assert.equal(db.query({ repo: 'ml/*' }).length, 2);
        assert.deepEqual(db.query({}, { limit: 1, before: id0 + 1 }).map((r) => r.id), [id0]);
        assert.equal(db.has(id0 + 1), true);
        assert.equal(db.has(id0 + 9), false);
        const [d] = db.downloads({});
        assert.equal(d!.completed, true);
        assert.equal(d!.bytes, 30);
        // Aggregates come back as plain objects (node:sqlite's rows have a null prototype).
        assert.deepStrictEqual(db.stats({}), {
          perArtifact: [{ repo: 'ml/model', reference: 'v1', digest: `sha256:${'a'.repeat(64)}`, downloads: 1, users: 1, completed: 1, bytes: 30 }],
          perUser: [{ user: 'bob', downloads: 1, bytes: 30 }],
        });
        assert.equal(db.prune({ maxRows: 1 }), 2);
        db.close();
        // Read only: sees the rows, and refuses a file that is not there.
        const ro = new AuditDb(join(dir, 'audit.db'), { readonly: true, engine });
        assert.deepEqual(ro.query({}).map((r) => r.id), [id0 + 2]);
        ro.close();
        assert.throws(() => new AuditDb(join(dir, 'missing.db'), { readonly: true, engine }));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    test('a transaction that throws leaves nothing behind', () => {
      const db = openSqlite(':memory:', { engine });
      db.exec('CREATE TABLE t (x INTEGER)');
      assert.throws(() =>
        db.transaction(() => {
          db.prepare('INSERT INTO t VALUES (?)').run(1);
          throw new Error('boom');
        }),
      /boom/);
      db.transaction(() => void db.prepare('INSERT INTO t VALUES (?)').run(2));
      assert.deepStrictEqual(db.prepare('SELECT x FROM t').all(), [{ x: 2 }]);
      assert.equal(db.prepare('SELECT x FROM t WHERE x = ?').get(3), undefined);
      assert.equal(db.prepare('UPDATE t SET x = 4').run().changes, 1);
      db.close();
    });
  });
}
