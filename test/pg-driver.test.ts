/**
 * The shared state of several replicas (issue 22) on a real PostgreSQL 15: the schema's
 * migrations (versioned, several replicas starting at once, a newer schema refused), a pool that
 * outlives its server's restarts, and PgDriver, the registry's small files as rows, under the
 * same contract suite as every other driver.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { MIGRATIONS, openDatabase, pgJournal, sharedSecrets, type Database } from '../src/server/db/index.js';
import { PgDriver } from '../src/server/driver/pg.js';
import { KEPT_APPLICATION_NAME, KEPT_LEASE_MS } from '../src/server/driver/pg-kept.js';
import { driverSuite } from '../src/testkit/driver-suite.js';
import { createDatabase, missingPg, startPg, type Pg } from './helpers/pg.js';

const skip = missingPg();

/** Waits until a driver's listening connection is up: it keeps what it reads from then on. */
async function untilKeeping(d: PgDriver): Promise<void> {
  const probe = 'repositories/probe/_tags/p';
  await d.put(probe, 'x');
  for (let i = 0; i < 200; i++) {
    await d.get(probe, { since: d.tick() });
    if (d.keeps(probe)) return void (await d.delete('repositories/probe'));
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the driver never started keeping files');
}

let cluster: Promise<Pg> | undefined;
const pgCluster = (): Promise<Pg> => (cluster ??= startPg());
after(async () => {
  if (cluster) await (await cluster).stop();
});

describe('the database: schema and connections', { skip }, () => {
  test('replicas starting at once migrate the schema once, in order, and all find it current', async () => {
    const url = await createDatabase(await pgCluster(), 'migrate');
    const dbs = await Promise.all(Array.from({ length: 6 }, () => openDatabase({ url })));
    try {
      for (const db of dbs) assert.equal(db.version, MIGRATIONS.length);
      const r = await dbs[0]!.pool.query<{ version: number }>('SELECT version FROM wharf_schema ORDER BY version');
      assert.deepEqual(
        r.rows.map((x) => x.version),
        MIGRATIONS.map((_, i) => i + 1),
      );
      // Opening again changes nothing.
      const again = await openDatabase({ url });
      assert.equal((await again.pool.query('SELECT 1 FROM wharf_schema')).rowCount, MIGRATIONS.length);
      await again.close();
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  test('a database at schema 6 with files in it is migrated to the newest: the files stay, and a write after says whether it changed them', async () => {
    const url = await createDatabase(await pgCluster(), 'upgrade');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('CREATE TABLE wharf_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      for (let v = 0; v < 6; v++) {
        await c.query(MIGRATIONS[v]!);
        await c.query('INSERT INTO wharf_schema (version) VALUES ($1)', [v + 1]);
      }
      await c.query("INSERT INTO wharf_files (path, data, mtime_ms) VALUES ('repositories/old/_tags/v1', 'sha256:aa', 0)");
    } finally {
      await c.end();
    }
    const db = await openDatabase({ url });
    const d = new PgDriver(db.pool);
    try {
      assert.equal(db.version, MIGRATIONS.length);
      assert.equal((await d.get('repositories/old/_tags/v1'))?.toString(), 'sha256:aa');
      const changed = async (data: string): Promise<boolean> =>
        (await db.pool.query<{ changed: boolean }>('SELECT wharf_put($1, $2) AS changed', ['repositories/old/_tags/v1', Buffer.from(data)])).rows[0]!.changed;
      assert.equal(await changed('sha256:aa'), false, 'the same bytes');
      assert.equal(await changed('sha256:bb'), true, 'other bytes');
      const n = async (): Promise<number> => Number((await db.pool.query<{ n: string }>('SELECT n FROM wharf_changes')).rows[0]!.n);
      const before = await n();
      await d.put('repositories/old/_tags/v1', 'sha256:bb');
      assert.equal(await n(), before, 'a rewrite of the same bytes is no change');
      await d.put('repositories/old/_tags/v2', 'sha256:cc');
      assert.equal(await n(), before + 1, 'a new file is one');
    } finally {
      await d.close();
      await db.close();
    }
  });

  test('a shared secret asked for by many replicas at once is made once: all get the same value', async () => {
    const url = await createDatabase(await pgCluster(), 'secrets');
    const dbs = await Promise.all(Array.from({ length: 5 }, () => openDatabase({ url })));
    try {
      let made = 0;
      const values = await Promise.all(dbs.map((db, i) => sharedSecrets(db)('token-key', async () => `candidate-${i}-${++made}`)));
      assert.equal(new Set(values).size, 1, values.join(' '));
      assert.match(values[0]!, /^candidate-/);
      // Later asks read it and make nothing.
      assert.equal(await sharedSecrets(dbs[0]!)('token-key', async () => assert.fail('made again')), values[0]);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  test('a schema newer than this build is refused with a message that says so', async () => {
    const url = await createDatabase(await pgCluster(), 'newer');
    const db = await openDatabase({ url });
    await db.pool.query('INSERT INTO wharf_schema (version) VALUES ($1)', [MIGRATIONS.length + 1]);
    await db.close();
    await assert.rejects(openDatabase({ url }), /newer than this build knows/);
  });

  test('a database that cannot be reached fails the open with the reason, soon', async () => {
    const t0 = Date.now();
    await assert.rejects(openDatabase({ url: 'postgres://wharf:x@127.0.0.1:1/none' }), /ECONNREFUSED/);
    assert.ok(Date.now() - t0 < 10_000);
  });

  test('idle connections the server ends do not end the process, and the next query works', async () => {
    const url = await createDatabase(await pgCluster(), 'idle');
    const warnings: unknown[] = [];
    const db = await openDatabase({ url, log: { warn: (o: unknown) => warnings.push(o), info: () => undefined } });
    try {
      // Three connections, then idle in the pool.
      await Promise.all([1, 2, 3].map(() => db.pool.query('SELECT pg_sleep(0.05)')));
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      await admin.end();
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(warnings.length > 0, 'the pool reported the ended connections');
      assert.equal((await db.pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
    } finally {
      await db.close();
    }
  });
});

describe('PgDriver', { skip }, () => {
  let db: Database;
  before(async () => {
    if (skip) return;
    db = await openDatabase({ url: await createDatabase(await pgCluster(), 'driver') });
  });
  after(async () => {
    await db?.close();
  });

  test('two replicas (pools) read each other\'s writes at once; touch moves the version, by the database\'s clock', async () => {
    const other = new pg.Pool({ connectionString: (db.pool as unknown as { options: { connectionString: string } }).options.connectionString });
    try {
      const a = new PgDriver(db.pool);
      const b = new PgDriver(other);
      await a.put('repositories/r/_tags/v1', 'sha256:aa');
      assert.equal((await b.get('repositories/r/_tags/v1'))?.toString(), 'sha256:aa');
      await b.put('repositories/r/_tags/v1', 'sha256:bb');
      assert.equal((await a.get('repositories/r/_tags/v1'))?.toString(), 'sha256:bb');
      const before = (await a.stat('repositories/r/_tags/v1'))!;
      const touched = await b.touch('repositories/r/_tags/v1');
      assert.equal(touched?.version, before.version);
      const now = (await a.stat('repositories/r/_tags/v1'))!;
      assert.notEqual(now.version, before.version);
      assert.ok(Math.abs(now.mtimeMs - Date.now()) < 5_000);
      assert.deepEqual(await b.list('repositories/r'), ['_tags']);
      await a.delete('repositories/r');
      assert.deepEqual(await b.list('repositories'), []);
    } finally {
      await other.end();
    }
  });

  test('kept files: another replica\'s write, move or delete is read at once; kept files answer with no query; a rewrite of the same bytes, a touch and upload records are no change', async () => {
    const url = db.url;
    const other = new pg.Pool({ connectionString: url });
    let queries = 0;
    const counted = new Proxy(other, {
      get: (t, k) => (k === 'query' ? (...args: unknown[]) => (queries++, (t.query as (...a: unknown[]) => unknown).apply(t, args)) : Reflect.get(t, k)),
    });
    const a = new PgDriver(db.pool, undefined, { url });
    const b = new PgDriver(counted, undefined, { url });
    try {
      await untilKeeping(b);
      const tag = 'repositories/kept/_tags/v1';
      for (let i = 0; i < 30; i++) {
        if (i % 10 === 9) await a.delete(tag);
        else if (i % 10 === 5) await a.move('repositories/kept/_tags/tmp', tag).catch(async () => (await a.put('repositories/kept/_tags/tmp', `sha256:m${i}`), a.move('repositories/kept/_tags/tmp', tag)));
        else await a.put(tag, `sha256:${i}`);
        const want = i % 10 === 9 ? undefined : i % 10 === 5 ? `sha256:m${i}` : `sha256:${i}`;
        // Read right after the write returned, as the next request of its client.
        assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), want, `round ${i}`);
        assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), want, `round ${i}, kept`);
      }
      await a.put(tag, 'sha256:final');
      // Read until kept within a lease: on a loaded machine one check of the count can take longer
      // than the lease, and reads meanwhile rightly go to the database.
      for (let i = 0; i < 200; i++) {
        await b.get(tag, { since: b.tick() });
        if (b.keeps(tag)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      queries = 0;
      const got = await Promise.all(Array.from({ length: 50 }, () => b.get(tag, { since: b.tick() })));
      assert.equal(queries, 0, 'a kept file: 50 reads, no query');
      assert.equal(got[49]?.toString(), 'sha256:final');
      // An absent file is not kept: creating one needs no wait.
      const absent = 'repositories/kept/_manifests/revisions/sha256/ff/link';
      await b.get(absent, { since: b.tick() });
      queries = 0;
      assert.equal(await b.get(absent, { since: b.tick() }), undefined);
      assert.equal(queries, 1, 'an absent file is asked for again');
      // A changing write waits out the lease; a new file and the same bytes again do not change anything kept.
      let t0 = performance.now();
      await a.put(tag, 'sha256:moved');
      assert.ok(performance.now() - t0 >= KEPT_LEASE_MS, 'a tag moved waits for the replicas to hear of it');
      assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), 'sha256:moved');
      await a.put(tag, 'sha256:moved');
      await a.touch(tag);
      await a.put('repositories/kept/_uploads/u1.info', '{"offset":1}');
      await a.put('repositories/kept/_uploads/u1.info', '{"offset":2}');
      queries = 0;
      assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), 'sha256:moved');
      assert.equal(queries, 0, 'still kept after the same bytes again, a touch and upload records');
      assert.equal((await b.get('repositories/kept/_uploads/u1.info', { since: b.tick() }))?.toString(), '{"offset":2}');
      t0 = performance.now();
      await a.delete('repositories/kept');
      assert.ok(performance.now() - t0 >= KEPT_LEASE_MS, 'a delete waits too');
      assert.equal(await b.get(tag, { since: b.tick() }), undefined);
    } finally {
      await a.close();
      await b.close();
      await other.end();
    }
  });

  test('kept files: a replica with no reads for a second stops checking the count (its listening connection sends nothing); the next read starts the checks again', async () => {
    const url = db.url;
    const b = new PgDriver(db.pool, undefined, { url });
    const tag = 'repositories/idle/_tags/v1';
    // The listening connection of this database (b's alone: no other driver here listens on it).
    const lastQuery = async (): Promise<number> => {
      const r = await db.pool.query<{ t: Date }>('SELECT query_start AS t FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [KEPT_APPLICATION_NAME]);
      assert.equal(r.rowCount, 1);
      return r.rows[0]!.t.getTime();
    };
    try {
      await untilKeeping(b);
      await b.put(tag, 'sha256:one');
      const busy = await lastQuery();
      await new Promise((r) => setTimeout(r, 300));
      assert.ok((await lastQuery()) > busy, 'checks while reads come (and 1 s after the last)');
      await new Promise((r) => setTimeout(r, 1_200));
      const paused = await lastQuery();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await lastQuery(), paused, 'no check after a second without reads');
      // The read that ends the pause asks the database; once the checks run again, reads are kept.
      assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), 'sha256:one');
      await untilKeeping(b);
      assert.ok((await lastQuery()) > paused);
      assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), 'sha256:one');
      // Later tests list the repositories of this database.
      await b.delete('repositories/idle');
    } finally {
      await b.close();
    }
  });

  test('kept files: a replica that loses its listening connection stops answering from memory within the lease, and keeps again once back', async () => {
    const url = db.url;
    const a = new PgDriver(db.pool, undefined, { url });
    const b = new PgDriver(db.pool, undefined, { url });
    const tag = 'repositories/cut/_tags/v1';
    try {
      await untilKeeping(b);
      await a.put(tag, 'sha256:one');
      assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), 'sha256:one');
      // Both listeners go; a's write then has no replica to tell, and b must not serve what it kept.
      await db.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [KEPT_APPLICATION_NAME]);
      await a.put(tag, 'sha256:two');
      assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), 'sha256:two');
      await untilKeeping(b);
      let queries = 0;
      const spy = (db.pool as unknown as { query: (...x: unknown[]) => unknown });
      const real = spy.query;
      spy.query = (...x: unknown[]) => (queries++, real.apply(db.pool, x));
      try {
        await b.get(tag, { since: b.tick() });
        queries = 0;
        assert.equal((await b.get(tag, { since: b.tick() }))?.toString(), 'sha256:two');
        assert.equal(queries, 0, 'kept again once listening');
      } finally {
        spy.query = real;
      }
      await a.delete('repositories/cut');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('the audit journal is read in order, in bounded pieces: at most about 4 MB of lines a read, but always one row', async () => {
    const j = pgJournal(db);
    await db.pool.query('DELETE FROM wharf_audit_journal');
    const big = (c: string): string => `${c.repeat(3 << 20)}\n`;
    await j.append(big('a'), 1);
    await j.append(big('b'), 1);
    await j.append(big('c'), 1);
    await j.append('{"small":1}\n', 1);
    const first = await j.read(undefined, 32);
    assert.deepEqual(first.map((r) => r.lines[0]), ['a', 'b'], 'two rows: the third would pass 4 MB');
    const second = await j.read(first[1]!.pos, 32);
    assert.deepEqual(second.map((r) => r.lines[0]), ['c', '{']);
    assert.deepEqual(await j.read(second[1]!.pos, 32), []);
    await db.pool.query('DELETE FROM wharf_audit_journal');
  });

  test('repository names with LIKE wildcards and a sibling that shares a prefix list apart', async () => {
    const d = new PgDriver(db.pool);
    await d.put('repositories/a_b/_tags/x', '1');
    await d.put('repositories/a%b/_tags/y', '2');
    await d.put('repositories/a/_tags/z', '3');
    await d.put('repositories/a-z/_tags/w', '4');
    assert.deepEqual(await d.list('repositories/a/_tags'), ['z']);
    assert.deepEqual((await d.list('repositories')).sort(), ['a', 'a%b', 'a-z', 'a_b']);
    await d.delete('repositories/a');
    assert.deepEqual((await d.list('repositories')).sort(), ['a%b', 'a-z', 'a_b']);
    await d.delete('repositories');
  });
});

if (skip) describe('PgDriver contract', { skip }, () => undefined);
else {
  let shared: Database | undefined;
  after(async () => {
    await shared?.close();
  });
  driverSuite(
    'PgDriver (PostgreSQL 15)',
    async () => {
      shared ??= await openDatabase({ url: await createDatabase(await pgCluster(), 'suite') });
      // The suite's tests run one after another: each starts from an empty table.
      await shared.pool.query('TRUNCATE wharf_files');
      return { driver: new PgDriver(shared.pool), cleanup: async () => undefined };
    },
    { objectStore: true },
  );
}
