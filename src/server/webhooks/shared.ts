import type { Logger } from 'pino';
import type { AuditRecord } from '../audit/index.js';
import { backoff, endpointsOf, eventOf, post, wants, type Endpoint } from './events.js';
import type { WebhookConfig } from './config.js';

/** Where each endpoint is in the shared journal, and whose turn it is to deliver (src/server/db/journal.ts). */
export interface WebhookLedger {
  /** Gives a new endpoint its position: the present (events from now on, not the past). */
  start(endpoint: string): Promise<void>;
  /** The endpoint's turn for `ttlMs`, unless another replica has it or a retry is not due. */
  claim(endpoint: string, ttlMs: number): Promise<{ after: string; attempts: number } | undefined>;
  /** Delivered up to `to`; the turn ends. */
  advance(endpoint: string, to: string): Promise<void>;
  retry(endpoint: string, attempts: number, waitMs: number, error: string): Promise<void>;
  /** The last attempt failed: the events are kept as failed and the position moves past them. */
  giveUp(endpoint: string, to: string, payloads: string[], error: string): Promise<void>;
  /** Deletes the journal's rows that every one of `endpoints` has passed. */
  pruneBehind(endpoints: string[]): Promise<number>;
}

export interface JournalReader {
  read(after: string | undefined, limit: number): Promise<Array<{ pos: string; lines: string }>>;
}

/** Journal rows read per turn, and events sent in one POST at most (a row is never split). */
const ROWS = 50;
const EVENTS = 100;
const LEASE_MARGIN_MS = 5_000;

/**
 * Webhooks for replicas that share a journal (PostgreSQL): no queue of their own. Every finished
 * request is already a line of the journal, committed before its response ended, so an event
 * survives the replica that served it. Each endpoint keeps a position in the journal; any replica
 * may take the endpoint's turn (a lease), send the events after that position, and move it on a
 * 2xx. A replica that dies mid-send leaves the position where it was, and when the lease runs out
 * another sends the same events again: every event is delivered at least once, in journal order.
 */
export class JournalWebhooks {
  private readonly endpoints: Endpoint[];
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private readonly inflight = new Set<Promise<void>>();

  /** Starts delivery once every endpoint has its position, so that no request made after this resolves is missed. */
  static async start(journal: JournalReader, ledger: WebhookLedger, configs: WebhookConfig[], opts: JournalWebhooks['opts']): Promise<JournalWebhooks> {
    for (const c of configs) await ledger.start(c.name);
    return new JournalWebhooks(journal, ledger, configs, opts);
  }

  private constructor(
    private readonly journal: JournalReader,
    private readonly ledger: WebhookLedger,
    configs: WebhookConfig[],
    private readonly opts: { source: string; log?: Logger | undefined; tick?: number | undefined; pruneDelivered?: boolean | undefined },
  ) {
    this.endpoints = endpointsOf(configs);
    this.timer = setInterval(() => this.pump(), opts.tick ?? 500);
    this.timer.unref();
  }

  private lastPrune = Date.now();

  /**
   * With the audit log off, nothing else reads the journal: the rows every endpoint has passed
   * go, once a minute, or the table would grow for ever.
   */
  private prune(): void {
    if (!this.opts.pruneDelivered || Date.now() - this.lastPrune < 60_000) return;
    this.lastPrune = Date.now();
    this.ledger.pruneBehind(this.endpoints.map((e) => e.cfg.name)).catch((err: unknown) => this.opts.log?.warn({ err }, 'webhook: cannot prune the delivered journal'));
  }

  private pump(): void {
    if (this.closed) return;
    this.prune();
    for (const e of this.endpoints) {
      if (e.busy) continue;
      e.busy = true;
      const p = this.turn(e)
        .catch((err: unknown) => this.opts.log?.warn({ err, endpoint: e.cfg.name }, 'webhook: a delivery turn failed; it is tried again'))
        .finally(() => {
          e.busy = false;
          this.inflight.delete(p);
        });
      this.inflight.add(p);
    }
  }

  private async turn(e: Endpoint): Promise<void> {
    const name = e.cfg.name;
    // Longer than a POST may take (it is aborted at the timeout), with room for the answer to be
    // recorded: the lease does not run out while this replica still sends, and a replica that
    // died mid-send holds the endpoint no longer than that.
    const turn = await this.ledger.claim(name, e.cfg.timeout + LEASE_MARGIN_MS);
    if (!turn) return;
    const rows = await this.journal.read(turn.after, ROWS);
    const payloads: string[] = [];
    let to = turn.after;
    for (const row of rows) {
      for (const rec of finishedRecords(row.lines)) {
        const ev = wants(e, rec) ? eventOf(rec, this.opts.source) : undefined;
        if (ev) payloads.push(JSON.stringify(ev));
      }
      to = row.pos;
      if (payloads.length >= EVENTS) break;
    }
    if (payloads.length === 0) return this.ledger.advance(name, to);
    const error = await post(e.cfg, payloads);
    if (error === undefined) return this.ledger.advance(name, to);
    const attempts = turn.attempts + 1;
    this.opts.log?.warn({ endpoint: name, attempts, error, gaveUp: attempts >= e.cfg.attempts }, 'webhook delivery failed');
    if (attempts >= e.cfg.attempts) return this.ledger.giveUp(name, to, payloads, error);
    return this.ledger.retry(name, attempts, backoff(e.cfg, attempts), error.slice(0, 500));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
  }
}

/**
 * The records of journal lines (manifest lines skipped), with the corrections among them applied:
 * a pull whose client left before the end is no pull. A correction that lands in a later row than
 * its record comes too late to hold the event back.
 */
function finishedRecords(text: string): AuditRecord[] {
  const records = new Map<number, AuditRecord>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let v: Partial<AuditRecord>;
    try {
      v = JSON.parse(line) as Partial<AuditRecord>;
    } catch {
      continue;
    }
    if (typeof v.id !== 'number') continue;
    if (typeof v.method === 'string') records.set(v.id, v as AuditRecord);
    else if (v.outcome === 'aborted') records.delete(v.id);
  }
  return [...records.values()];
}
