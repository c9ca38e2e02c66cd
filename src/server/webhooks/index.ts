import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { AuditRecord } from '../audit/index.js';
import { openSqlite, type SqliteDb, type SqliteStatement } from '../sqlite.js';
import type { WebhookConfig } from './config.js';
import { backoff, endpointsOf, eventOf, post, wants, type Endpoint } from './events.js';

export { WebhookSchema, WEBHOOK_ACTIONS, type WebhookConfig, type WebhookAction } from './config.js';
export { JournalWebhooks, type WebhookLedger } from './shared.js';
export { EVENTS_MEDIA_TYPE, type WebhookEvent } from './events.js';

/**
 * Webhooks with a queue in SQLite: an event is stored, per endpoint, before anything is sent, and
 * is deleted only after a 2xx. A restart or an endpoint that is down loses nothing; failures retry
 * with doubling waits, and after the last attempt the event is kept as failed.
 */
export class Webhooks {
  private readonly db: SqliteDb;
  private readonly endpoints: Endpoint[];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly inflight = new Set<Promise<void>>();
  /** Records whose events were queued before their response completed. */
  private readonly journaled = new Set<number>();
  private readonly insert: SqliteStatement;

  constructor(path: string, configs: WebhookConfig[], private readonly opts: { source: string; log?: Logger; tick?: number } = { source: '' }) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = openSqlite(path);
    this.db.exec('PRAGMA journal_mode = WAL');
    this.db.exec('PRAGMA synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS queue (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL, payload TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, failed INTEGER NOT NULL DEFAULT 0, last_error TEXT)`);
    this.db.exec('CREATE INDEX IF NOT EXISTS queue_due ON queue(endpoint, failed, seq)');
    const cols = this.db.prepare('PRAGMA table_info(queue)').all() as Array<{ name: string }>;
    if (!cols.some((c) => c.name === 'record_id')) this.db.exec('ALTER TABLE queue ADD COLUMN record_id INTEGER');
    this.insert = this.db.prepare('INSERT INTO queue (endpoint, payload, next_at, record_id) VALUES (?, ?, 0, ?)');
    this.endpoints = endpointsOf(configs);
    this.timer = setInterval(() => this.pump(), opts.tick ?? 100);
    this.timer.unref();
  }

  /**
   * Queues the events of a response about to complete, before its last byte leaves: an event
   * survives the process being killed right after, like the audit record.
   */
  journal(rec: AuditRecord): void {
    if (this.enqueue(rec)) this.journaled.add(rec.id);
  }

  /** A response closed: a download the client stopped early is no pull; anything not journaled is queued now. */
  complete(rec: AuditRecord): void {
    if (this.journaled.delete(rec.id)) {
      if (rec.outcome === 'aborted' && !this.closed) this.db.prepare('DELETE FROM queue WHERE record_id = ? AND attempts = 0').run(rec.id);
      return;
    }
    this.enqueue(rec);
  }

  /** Stores the events of `rec` for the endpoints whose filters match; whether any was. */
  private enqueue(rec: AuditRecord): boolean {
    if (this.closed) return false;
    const ev = eventOf(rec, this.opts.source);
    if (!ev) return false;
    let any = false;
    for (const e of this.endpoints) {
      if (!wants(e, rec)) continue;
      this.insert.run(e.cfg.name, JSON.stringify(ev), rec.id);
      any = true;
    }
    return any;
  }

  /** Events waiting (or failed for good) per endpoint. */
  pending(): Array<{ endpoint: string; waiting: number; failed: number; attempts: number }> {
    return this.db.prepare('SELECT endpoint, SUM(failed = 0) AS waiting, SUM(failed) AS failed, MAX(attempts) AS attempts FROM queue GROUP BY endpoint').all() as Array<{ endpoint: string; waiting: number; failed: number; attempts: number }>;
  }

  private pump(): void {
    try {
      this.pumpOnce();
    } catch (err) {
      this.opts.log?.error({ err }, 'webhook queue read failed');
    }
  }

  private pumpOnce(): void {
    if (this.closed) return;
    for (const e of this.endpoints) {
      if (e.busy) continue;
      // Oldest first, one batch at a time per endpoint: events arrive in order.
      const rows = this.db.prepare('SELECT seq, payload, attempts, next_at FROM queue WHERE endpoint = ? AND failed = 0 ORDER BY seq LIMIT 20').all(e.cfg.name) as Array<{ seq: number; payload: string; attempts: number; next_at: number }>;
      if (rows.length === 0 || rows[0]!.next_at > Date.now()) continue;
      e.busy = true;
      const p = this.deliver(e, rows).finally(() => {
        e.busy = false;
        this.inflight.delete(p);
      });
      this.inflight.add(p);
    }
  }

  private async deliver(e: Endpoint, rows: Array<{ seq: number; payload: string; attempts: number }>): Promise<void> {
    const error = await post(e.cfg, rows.map((r) => r.payload));
    if (this.closed) return;
    try {
      this.settle(e, rows, error);
    } catch (err) {
      // The queue could not be updated (a full disk): the rows stay and are sent again.
      this.opts.log?.error({ err, endpoint: e.cfg.name }, 'webhook queue update failed');
    }
  }

  private settle(e: Endpoint, rows: Array<{ seq: number; attempts: number }>, error: string | undefined): void {
    const seqs = rows.map((r) => r.seq);
    const inList = `(${seqs.map(() => '?').join(',')})`;
    if (error === undefined) {
      this.db.prepare(`DELETE FROM queue WHERE seq IN ${inList}`).run(...seqs);
      return;
    }
    const attempts = rows[0]!.attempts + 1;
    const wait = backoff(e.cfg, attempts);
    const failed = attempts >= e.cfg.attempts ? 1 : 0;
    this.db.prepare(`UPDATE queue SET attempts = ?, next_at = ?, failed = ?, last_error = ? WHERE seq IN ${inList}`).run(attempts, Date.now() + wait, failed, error.slice(0, 500), ...seqs);
    this.opts.log?.warn({ endpoint: e.cfg.name, attempts, error, gaveUp: failed === 1 }, 'webhook delivery failed');
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
    this.db.close();
  }
}
