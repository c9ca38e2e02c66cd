import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import { NOW_MS, ownConnection } from './connection.js';
import type { Database } from './index.js';

/**
 * A place in the shared journal: just after the row `txid:seq`. Readers keep it as an opaque
 * string (in their own index, or in wharf_webhook_cursors).
 */
export type JournalPosition = string;

export interface JournalBatch {
  /** This row's position: reading after it returns the rows that follow. */
  pos: JournalPosition;
  lines: string;
}

/** The audit journal in PostgreSQL (audit's SharedJournal). */
export interface PgJournal {
  append(lines: string, records: number): Promise<void>;
  read(after: JournalPosition | undefined, limit: number): Promise<JournalBatch[]>;
  prune(opts: { maxAge?: number | undefined; maxRows?: number | undefined }): Promise<number>;
}

const START = '0:0';
/** The lines one read of the journal returns at most (but one row, whatever its size). */
const READ_BYTES = 4 << 20;

function split(pos: JournalPosition | undefined): [string, string] {
  const [txid = '0', seq = '0'] = (pos ?? START).split(':');
  return [txid, seq];
}

/**
 * Rows are ordered by the id of the transaction that wrote them. Ids are handed out in the order
 * transactions begin, not commit, so a reader takes only rows below the oldest transaction still
 * open (the snapshot's xmin): no row can appear later before those. Every reader therefore sees
 * every row once, in one order, whichever replica wrote it; and a row written before a response
 * ended precedes any row a request made after that response can write.
 */
export function pgJournal(db: Database): PgJournal {
  return {
    async append(lines, records) {
      await db.pool.query('INSERT INTO wharf_audit_journal (time_ms, records, lines) VALUES ($1, $2, $3)', [Date.now(), records, lines]);
    },
    async read(after, limit) {
      const [txid, seq] = split(after);
      // At most `limit` rows and about READ_BYTES of lines (always one row): a reader's memory stays
      // bounded however large the batches that busy replicas wrote.
      const r = await db.pool.query<{ txid: string; seq: string; lines: string }>(
        `SELECT txid, seq, lines FROM (
           SELECT txid::text AS txid, seq::text AS seq, lines, sum(length(lines)) OVER (ORDER BY txid, seq) - length(lines) AS before
           FROM wharf_audit_journal
           WHERE (txid, seq) > ($1::xid8, $2::bigint) AND txid < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY txid, seq LIMIT $3
         ) x WHERE before < $4 ORDER BY x.txid::xid8, x.seq::bigint`,
        [txid, seq, limit, READ_BYTES],
      );
      return r.rows.map((row) => ({ pos: `${row.txid}:${row.seq}`, lines: row.lines }));
    },
    async prune(opts) {
      let n = 0;
      if (opts.maxAge !== undefined) n += (await db.pool.query('DELETE FROM wharf_audit_journal WHERE time_ms < $1', [Date.now() - opts.maxAge])).rowCount ?? 0;
      if (opts.maxRows !== undefined) {
        // Rows hold batches: a batch goes once all the records it holds are beyond the newest maxRows.
        n += (
          await db.pool.query(
            `DELETE FROM wharf_audit_journal j USING (
               SELECT txid, seq FROM (
                 SELECT txid, seq, records, sum(records) OVER (ORDER BY txid DESC, seq DESC) AS upto FROM wharf_audit_journal
               ) x WHERE upto - records >= $1
             ) d WHERE j.txid = d.txid AND j.seq = d.seq`,
            [opts.maxRows],
          )
        ).rowCount ?? 0;
      }
      return n;
    },
  };
}

/** An endpoint's turn to deliver: where it is in the journal, and how many attempts failed there. */
export interface WebhookTurn {
  after: JournalPosition;
  attempts: number;
}

/**
 * Where each webhook endpoint is in the journal, and which replica delivers it (webhooks'
 * WebhookLedger). A replica takes an endpoint's turn with a lease; if it dies mid-delivery, the
 * lease runs out and another replica delivers the same events again: at least once.
 */
export interface PgWebhookLedger {
  start(endpoint: string): Promise<void>;
  claim(endpoint: string, ttlMs: number): Promise<WebhookTurn | undefined>;
  advance(endpoint: string, to: JournalPosition): Promise<void>;
  retry(endpoint: string, attempts: number, waitMs: number, error: string): Promise<void>;
  giveUp(endpoint: string, to: JournalPosition, payloads: string[], error: string): Promise<void>;
  pruneBehind(endpoints: string[]): Promise<number>;
}

export function pgWebhookLedger(db: Database): PgWebhookLedger {
  const owner = randomUUID();
  const release = `owner = NULL, lease_ms = 0`;
  return {
    async start(endpoint) {
      // A new endpoint starts at the present: it is sent what happens from now on, not the past.
      await db.pool.query(
        `INSERT INTO wharf_webhook_cursors (endpoint, txid, seq) VALUES ($1, pg_snapshot_xmin(pg_current_snapshot()), 0) ON CONFLICT (endpoint) DO NOTHING`,
        [endpoint],
      );
    },
    async claim(endpoint, ttlMs) {
      const r = await db.pool.query<{ txid: string; seq: string; attempts: number }>(
        `UPDATE wharf_webhook_cursors SET owner = $2, lease_ms = ${NOW_MS} + $3::bigint
         WHERE endpoint = $1 AND lease_ms < ${NOW_MS} AND next_ms <= ${NOW_MS}
         RETURNING txid::text AS txid, seq::text AS seq, attempts`,
        [endpoint, owner, ttlMs],
      );
      const row = r.rows[0];
      return row ? { after: `${row.txid}:${row.seq}`, attempts: row.attempts } : undefined;
    },
    async advance(endpoint, to) {
      const [txid, seq] = split(to);
      await db.pool.query(
        `UPDATE wharf_webhook_cursors SET txid = $2::xid8, seq = $3::bigint, attempts = 0, next_ms = 0, last_error = NULL, ${release} WHERE endpoint = $1 AND owner = $4`,
        [endpoint, txid, seq, owner],
      );
    },
    async retry(endpoint, attempts, waitMs, error) {
      await db.pool.query(`UPDATE wharf_webhook_cursors SET attempts = $2, next_ms = ${NOW_MS} + $3::bigint, last_error = $4, ${release} WHERE endpoint = $1 AND owner = $5`, [
        endpoint,
        attempts,
        waitMs,
        error,
        owner,
      ]);
    },
    async giveUp(endpoint, to, payloads, error) {
      const [txid, seq] = split(to);
      // One statement: the events are kept as failed exactly when the position moves past them.
      await db.pool.query(
        `WITH moved AS (
           UPDATE wharf_webhook_cursors SET txid = $2::xid8, seq = $3::bigint, attempts = 0, next_ms = 0, last_error = $5, ${release}
           WHERE endpoint = $1 AND owner = $6 RETURNING endpoint
         )
         INSERT INTO wharf_webhook_failed (endpoint, payload, error) SELECT moved.endpoint, p, $5 FROM moved, unnest($4::text[]) AS p`,
        [endpoint, txid, seq, payloads, error, owner],
      );
    },
    async pruneBehind(endpoints) {
      const r = await db.pool.query(
        `DELETE FROM wharf_audit_journal WHERE (txid, seq) <= (
           SELECT txid, seq FROM wharf_webhook_cursors WHERE endpoint = ANY($1::text[]) ORDER BY txid, seq LIMIT 1
         ) AND (SELECT count(*) FROM wharf_webhook_cursors WHERE endpoint = ANY($1::text[])) = cardinality($1::text[])`,
        [endpoints],
      );
      return r.rowCount ?? 0;
    },
  };
}

/**
 * A slot among `slots` that no other live replica holds, for audit record ids (audit's
 * setAuditIdSlot). It is a session advisory lock on a connection kept for it: a replica that dies
 * frees its slot with its connection, so no lease needs renewing. If that connection breaks (the
 * server restarted), the slot is taken again, or another one, and `onSlot` hears which.
 */
export async function claimSlot(db: Database, slots: number, opts: { onSlot(slot: number): void; log?: Pick<Logger, 'warn'> }): Promise<{ slot: number; release(): Promise<void> }> {
  let closed = false;
  let held: pg.Client | undefined;
  let slot = -1;
  const take = async (): Promise<number> => {
    // Held for the life of the replica, outside the pool.
    const c = ownConnection(db.url);
    c.on('error', (err) => {
      if (held !== c) return;
      opts.log?.warn({ err }, 'database: the connection that holds the audit id slot failed; taking one again');
      held = undefined;
      void c.end().catch(() => undefined);
      void again();
    });
    try {
      await c.connect();
      for (let s = 0; s < slots; s++) {
        const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [SLOT_LOCK, s]);
        if (!r.rows[0]!.ok) continue;
        held = c;
        return s;
      }
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    await c.end().catch(() => undefined);
    throw new Error(`all ${slots} audit id slots are held by live replicas: at most ${slots} replicas share one database`);
  };
  const again = async (): Promise<void> => {
    while (!closed && held === undefined) {
      try {
        slot = await take();
        opts.onSlot(slot);
      } catch {
        // Until it works, ids go on in the old slot: only a replica that started meanwhile could share it.
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  };
  slot = await take();
  opts.onSlot(slot);
  return {
    get slot() {
      return slot;
    },
    release: async () => {
      closed = true;
      const c = held;
      held = undefined;
      // Ending the session frees its advisory locks.
      await c?.end().catch(() => undefined);
    },
  };
}

/** The first key of the slots' two-key advisory locks ("waud" in ASCII). */
const SLOT_LOCK = 0x77617564;
