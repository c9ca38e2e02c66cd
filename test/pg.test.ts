/**
 * The real shared-state store of several replicas (issue 22), PostgreSQL 15, through node-postgres
 * (`pg`): the facts the design relies on, proven here so that a change of PostgreSQL or of the
 * client that breaks one fails here first. Advisory locks (migrations, gc: one at a time) end with
 * the session that held them; NOTIFY reaches other sessions at commit; ON CONFLICT DO NOTHING
 * records exactly once; a pool whose server went away fails fast and recovers by itself.
 * Also: test/helpers/pg.ts leaves no postgres process or directory behind, however its process ends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createDatabase, missingPg, startPg, type Pg } from './helpers/pg.js';
import { childWithCluster, gone, processesOf } from './helpers/cluster-checks.js';

/** Settles within ms, or not: for a promise that must still be waiting. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

describe('PostgreSQL 15 through node-postgres', { skip: missingPg() }, () => {
  let cluster: Pg;
  let url: string;
  let pool: pg.Pool;
  const poolErrors: Error[] = [];
  const clients: pg.Client[] = [];

  async function connect(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: url });
    // A client whose connection dies while idle emits 'error'; unhandled, it would end the process.
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
    return c;
  }

  before(async () => {
    const t0 = performance.now();
    cluster = await startPg();
    console.log(`# cluster started in ${Math.round(performance.now() - t0)} ms (${cluster.dir})`);
    url = await createDatabase(cluster, 'pg-test');
    pool = new pg.Pool({ connectionString: url, max: 8, connectionTimeoutMillis: 5000, idleTimeoutMillis: 10_000 });
    // An idle pooled connection that the server ends (halt(), a restart) is reported here and
    // dropped from the pool; without a listener the 'error' event would end the process.
    pool.on('error', (err) => poolErrors.push(err));
  });

  after(async () => {
    for (const c of clients) await c.end().catch(() => {});
    await pool?.end();
    await cluster?.stop();
  });

  test('connects over TCP on 127.0.0.1 with a password, as wharf, to PostgreSQL 15 with fsync on', async () => {
    const u = new URL(cluster.url);
    assert.equal(u.hostname, '127.0.0.1');
    assert.equal(Number(u.port), cluster.port);
    assert.equal(u.username, 'wharf');
    assert.ok(u.password.length >= 16);
    const { rows } = await pool.query<{ v: string; u: string; f: string; addr: string }>(
      `SELECT current_setting('server_version_num') AS v, current_user AS u, current_setting('fsync') AS f, inet_server_addr()::text AS addr`,
    );
    assert.match(rows[0]!.v, /^15\d{4}$/);
    assert.equal(rows[0]!.u, 'wharf');
    assert.equal(rows[0]!.f, 'on');
    assert.equal(rows[0]!.addr, '127.0.0.1/32');
    const wrong = new URL(url);
    wrong.password = 'wrong';
    const bad = new pg.Client({ connectionString: wrong.toString() });
    await assert.rejects(bad.connect(), (err: Error & { code?: string }) => {
      assert.equal(err.code, '28P01', String(err)); // invalid_password
      return true;
    });
  });

  test('a transaction commits all or nothing', async () => {
    await pool.query('CREATE TABLE tx (k text PRIMARY KEY, v int NOT NULL)');
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO tx VALUES ('a', 1)`);
      await assert.rejects(c.query(`INSERT INTO tx VALUES ('a', 2)`), (err: Error & { code?: string }) => err.code === '23505');
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      await c.query(`INSERT INTO tx VALUES ('b', 1)`);
      // Not visible outside the transaction until it commits.
      assert.equal((await pool.query(`SELECT count(*)::int AS n FROM tx`)).rows[0].n, 0);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    assert.deepEqual((await pool.query(`SELECT k, v FROM tx ORDER BY k`)).rows, [{ k: 'b', v: 1 }]);
  });

  for (const how of ['its socket is destroyed', 'pg_terminate_backend ends its backend'] as const) {
    test(`pg_advisory_lock held by one session blocks another, and is released when ${how}`, async () => {
      const holder = await connect();
      const waiter = await connect();
      const key = how.startsWith('its') ? 22_001 : 22_002;
      await holder.query('SELECT pg_advisory_lock($1)', [key]);
      assert.equal((await waiter.query('SELECT pg_try_advisory_lock($1) AS ok', [key])).rows[0].ok, false);
      const t0 = performance.now();
      const waiting = waiter.query('SELECT pg_advisory_lock($1)', [key]);
      assert.equal(await settlesWithin(waiting, 300), false, 'the second session got the lock while the first held it');

      const holderPid = (holder as unknown as { processID: number }).processID;
      if (how === 'its socket is destroyed') {
        // What a replica's kill -9 does to its connections: the kernel closes the socket.
        (holder as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      } else {
        const r = await pool.query('SELECT pg_terminate_backend($1) AS ok', [holderPid]);
        assert.equal(r.rows[0].ok, true);
      }
      await waiting;
      console.log(`# lock passed on ${Math.round(performance.now() - t0 - 300)} ms after ${how}`);
      const held = await pool.query(
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted`,
        [key],
      );
      assert.deepEqual(held.rows.map((r) => r.pid), [(waiter as unknown as { processID: number }).processID]);
      await waiter.query('SELECT pg_advisory_unlock($1)', [key]);
    });
  }

  test('LISTEN/NOTIFY: a notification reaches another connection when its transaction commits, not before', async () => {
    const listener = await connect();
    const got: { channel: string; payload?: string }[] = [];
    listener.on('notification', (n) => got.push({ channel: n.channel, payload: n.payload }));
    await listener.query('LISTEN wharf_events');
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT pg_notify('wharf_events', 'tag:latest')`);
      await sleep(200);
      assert.deepEqual(got, [], 'delivered before commit');
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    await pool.query(`NOTIFY wharf_events, 'second'`);
    const deadline = Date.now() + 2000;
    while (got.length < 2 && Date.now() < deadline) await sleep(10);
    assert.deepEqual(got, [
      { channel: 'wharf_events', payload: 'tag:latest' },
      { channel: 'wharf_events', payload: 'second' },
    ]);
  });

  test('INSERT ... ON CONFLICT DO NOTHING records exactly once among concurrent writers', async () => {
    await pool.query('CREATE TABLE audit (id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
    const results = await Promise.all(
      Array.from({ length: 32 }, () => pool.query(`INSERT INTO audit (id) VALUES ('req-1') ON CONFLICT DO NOTHING RETURNING id`)),
    );
    assert.equal(results.reduce((n, r) => n + (r.rowCount ?? 0), 0), 1);
    assert.equal(results.filter((r) => r.rows.length === 1).length, 1);
    assert.equal((await pool.query(`SELECT count(*)::int AS n FROM audit`)).rows[0].n, 1);
  });

  test('halt(): a query fails fast with a clear error; after resume() the pool recovers by itself', async () => {
    await pool.query('CREATE TABLE durable (k text PRIMARY KEY)');
    await pool.query(`INSERT INTO durable VALUES ('kept')`);
    // Connections idle in the pool while the server goes.
    await Promise.all(Array.from({ length: 4 }, () => pool.query('SELECT pg_sleep(0.05)')));
    const errorsBefore = poolErrors.length;
    const th = performance.now();
    await cluster.halt();
    console.log(`# halt took ${Math.round(performance.now() - th)} ms`);

    const t0 = performance.now();
    await assert.rejects(pool.query('SELECT 1'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ECONNREFUSED', String(err));
      return true;
    });
    const failedIn = performance.now() - t0;
    assert.ok(failedIn < 1000, `took ${failedIn} ms to fail`);
    // The idle connections the server ended were reported (admin_shutdown, 57P01) and dropped.
    assert.ok(poolErrors.length > errorsBefore, 'no pool error for the idle connections the server ended');
    assert.match(String(poolErrors.at(-1)), /terminating connection due to administrator command|Connection terminated/);
    assert.equal(pool.idleCount, 0);

    const tr = performance.now();
    await cluster.resume();
    console.log(`# resume took ${Math.round(performance.now() - tr)} ms; a query failed in ${Math.round(failedIn)} ms`);
    assert.deepEqual((await pool.query('SELECT k FROM durable')).rows, [{ k: 'kept' }]);
  });

  test('a kill -9 of the server loses no committed row, and a restart replays the WAL', async () => {
    await pool.query('CREATE TABLE crash (n int PRIMARY KEY)');
    for (let i = 0; i < 50; i++) await pool.query('INSERT INTO crash VALUES ($1)', [i]);
    const postmaster = Number(readFileSync(`${cluster.dir}/data/postmaster.pid`, 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGKILL');
    const t0 = performance.now();
    await cluster.resume();
    console.log(`# restart after kill -9 took ${Math.round(performance.now() - t0)} ms`);
    // The pool's connections to the killed server fail once, then new ones are made.
    let rows: unknown[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        rows = (await pool.query('SELECT count(*)::int AS n FROM crash')).rows;
        break;
      } catch {
        // a pooled connection to the dead server
      }
    }
    assert.deepEqual(rows, [{ n: 50 }]);
  });
});

describe('test/helpers/pg.ts leaves nothing behind', { skip: missingPg() }, () => {
  test('stop(), an exit without stop(), and a SIGKILL each stop and remove the cluster', { timeout: 60_000 }, async () => {
    const own = await startPg();
    assert.notDeepEqual(processesOf(own.dir), []);
    await own.stop();
    await gone(own.dir, 1000);

    const exits = childWithCluster(new URL('./helpers/pg.ts', import.meta.url), 'startPg', 'exit');
    const exitDir = await exits.dir;
    assert.equal(await exits.exited, 0);
    await gone(exitDir, 1000);

    const killed = childWithCluster(new URL('./helpers/pg.ts', import.meta.url), 'startPg', 'hang');
    const killedDir = await killed.dir;
    assert.notDeepEqual(processesOf(killedDir), []);
    killed.kill();
    await killed.exited;
    await gone(killedDir, 10_000); // pg.sh's watchdog notices within a second, then stops it
  });
});
