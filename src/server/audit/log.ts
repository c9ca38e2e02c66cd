import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AuditDb } from './db.js';
import { applyBatch, JournalApplier, manifestLine, readShared, type Retention } from './journal.js';
import type { AuditRecord, SharedJournal } from './types.js';

/** What the HTTP layer knows beyond the record: the route kind and a pulled manifest's bytes. */
export interface RecordExtra {
  kind: string;
  manifest?: Buffer | undefined;
}

export interface AuditLogOptions {
  dbPath: string;
  /** Directory of the journal segments; default beside the database. */
  journalDir: string;
  flushInterval: number;
  groupWindow: number;
  retention: { maxAge?: number | undefined; maxRows?: number | undefined };
  log?: Logger;
  /**
   * A journal that several replicas share (PostgreSQL): lines go there, and the database becomes
   * an index of it, which every replica keeps up to date by reading it back.
   */
  shared?: SharedJournal;
  /** Shared mode: false when nothing reads this database (webhooks without the audit log): the journal is only written. */
  index?: boolean;
}

const SEGMENT = /^journal-(\d+)\.log$/;

/**
 * The audit log. What makes a record durable is the journal: one JSON line appended with a
 * synchronous write() before the last byte of the response is handed to the socket. A client that
 * has its whole response therefore implies a journal line, which the kernel keeps even if the
 * process is killed (-9) the next instant; on start the journal is replayed into SQLite.
 *
 * That line is all a request does. Each flush (every flushInterval) closes the current segment,
 * parses it, groups blob pulls into artifact downloads, commits it to SQLite in one transaction and
 * deletes it. A client that leaves after its record was written adds a correction line, applied in
 * whichever batch it lands. (The batches once went to a worker thread: measured with the auth
 * bench, manifest GETs were no faster that way, and the thread cost 13 MiB of RSS.)
 *
 * With a `shared` journal (replicas over PostgreSQL), the same lines are committed there instead,
 * one INSERT per batch with one in flight at a time, and the final bytes of a response wait for
 * that commit: a replica killed the next instant loses nothing, even if its disk goes with it. A
 * batch the database refuses falls back to the local journal and is sent on a later flush. The
 * flush then reads the shared journal, every replica's lines in one order, into this database.
 */
/**
 * A segment this long is committed without waiting for the timer. At 20,000 manifest GETs a
 * second, a 250 ms batch was 5,000 records: read back as one 2 MB string and parsed at once, they
 * outlived the young generation's collections, and each batch's garbage went to the old one
 * (measured: 8 MiB of large objects and RSS 151 MiB at the s3 bench's manifest loads).
 */
const BATCH_LINES = 256;

export class AuditLog {
  readonly db: AuditDb;
  private fd = -1;
  private seg = 0;
  private segPath = '';
  /** Lines in the current segment. */
  private pending = 0;
  /** Lines the journal could not take (a full disk): they go to the database with the next batch. */
  private unjournaled: string[] = [];
  /** Records journaled whose response has not closed yet. */
  private readonly inFlight = new Set<number>();
  /** Manifests whose blobs the journal has described since the start. */
  private readonly described = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  private closed = false;
  private readonly applier: JournalApplier;

  private constructor(private readonly opts: AuditLogOptions) {
    this.db = new AuditDb(opts.dbPath);
    this.applier = new JournalApplier(this.db, opts.groupWindow);
  }

  static open(opts: AuditLogOptions): AuditLog {
    const a = new AuditLog(opts);
    mkdirSync(opts.journalDir, { recursive: true });
    if (opts.shared) {
      // Segments left from a time the database was unreachable go to it with the first flush.
      const segs = a.segments();
      a.seg = segs.length ? segs[segs.length - 1]!.n : 0;
    } else {
      const n = a.replay();
      if (n > 0) opts.log?.info({ records: n }, 'audit: replayed journal records into the database');
    }
    a.openSegment();
    a.timer = setInterval(() => void a.catchUp(), opts.flushInterval);
    a.timer.unref();
    return a;
  }

  private segments(): Array<{ n: number; path: string }> {
    return readdirSync(this.opts.journalDir)
      .map((f) => SEGMENT.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ n: Number(m[1]), path: join(this.opts.journalDir, m[0]) }))
      .sort((a, b) => a.n - b.n);
  }

  /** Moves every journaled record into SQLite and removes the segments; returns how many. */
  private replay(): number {
    const segs = this.segments();
    this.seg = segs.length ? segs[segs.length - 1]!.n : 0;
    let n = 0;
    for (const s of segs) n += applyBatch(this.applier, { segment: s.path, lines: '' });
    return n;
  }

  private openSegment(): void {
    this.seg++;
    this.segPath = join(this.opts.journalDir, `journal-${this.seg}.log`);
    this.fd = openSync(this.segPath, 'a', 0o600);
    this.pending = 0;
  }

  private lastWarn = 0;

  /** Lines waiting for the next write, and what waits for them to be written. */
  private buffered: string[] = [];
  private settling: Array<() => void> = [];
  private scheduled = false;
  /** A flush for a full batch is on its way. */
  private flushing = false;

  /**
   * Queues a line. Lines are written together once per turn of the event loop (setImmediate):
   * with many responses ending at once, one write() carries all their lines.
   */
  private append(line: string): void {
    this.buffered.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.release());
    }
  }

  private release(): void {
    this.scheduled = false;
    if (this.opts.shared) return this.ship();
    this.sync();
    const waiting = this.settling;
    this.settling = [];
    for (const fn of waiting) fn();
  }

  /** Shared mode: until when batches go to the local journal, after the shared one failed. */
  private localUntil = 0;

  /** Shared mode: what waits for the batch in flight to commit. */
  private flight: Array<() => void> | undefined;

  /** Shared mode: commits the queued lines, one batch in flight at a time; lines queued meanwhile make the next. */
  private ship(): void {
    if (this.flight || this.buffered.length === 0) return;
    const shared = this.opts.shared!;
    const lines = this.buffered;
    const text = lines.join('');
    const waiting = (this.flight = this.settling);
    this.buffered = [];
    this.settling = [];
    // Shortly after a failure the database is not asked again for every batch (a partition
    // would hold each response for a connection timeout): the lines go to this disk, and the
    // flush sends them once the database answers.
    const sent = Date.now() < this.localUntil ? Promise.reject(new Error('the shared journal failed a moment ago')) : shared.append(text, lines.length);
    sent
      .catch((err: unknown) => {
        // Kept on this disk instead; a later flush sends it. The response need not fail for it.
        if (Date.now() >= this.localUntil) this.warn(err, 'audit: cannot write to the shared journal; keeping records in the local journal until it works');
        this.localUntil = Math.max(this.localUntil, Date.now() + LOCAL_FOR_MS);
        this.writeLocal(text, lines.length);
      })
      .finally(() => {
        this.flight = undefined;
        for (const fn of waiting) fn();
        this.ship();
      });
  }

  /**
   * Writes the queued lines now. A failure (a full disk, say) must not cost the client its
   * response: it is logged, at most once a minute, and the lines go to the database with the next
   * batch, without the journal's guarantee.
   */
  sync(): void {
    // Shared mode commits asynchronously, and settle() waits for that.
    if (this.opts.shared || this.buffered.length === 0) return;
    const text = this.buffered.length === 1 ? this.buffered[0]! : this.buffered.join('');
    const n = this.buffered.length;
    this.buffered = [];
    this.writeLocal(text, n);
  }

  private writeLocal(text: string, n: number): void {
    try {
      writeSync(this.fd, text);
      this.pending += n;
      if (!this.opts.shared && this.pending >= BATCH_LINES && !this.flushing) {
        this.flushing = true;
        setImmediate(() => {
          this.flushing = false;
          this.flush();
        });
      }
    } catch (err) {
      this.warn(err, 'audit: cannot append to the journal; records are not crash-safe until it works again');
      this.unjournaled.push(text);
    }
  }

  /** Runs `then` once every line queued so far is written: the final bytes of a response wait for it. */
  settle(then: () => void): void {
    if (this.buffered.length > 0) this.settling.push(then);
    // Shared mode: the line may be in the batch on its way.
    else if (this.flight) this.flight.push(then);
    else then();
  }

  private warn(err: unknown, msg: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 60_000) return;
    this.lastWarn = now;
    this.opts.log?.error({ err }, msg);
  }

  /** The record's line, preceded by its manifest's blobs the first time that manifest is pulled. */
  private line(rec: AuditRecord, extra: RecordExtra): string {
    const json = JSON.stringify(rec);
    const line = `{"kind":${JSON.stringify(extra.kind)},${json.slice(1)}\n`;
    if (extra.kind !== 'manifest' || !extra.manifest || rec.action !== 'pull' || rec.status >= 300 || !rec.digest || this.described.has(rec.digest)) return line;
    if (this.described.size >= 10_000) this.described.clear();
    this.described.add(rec.digest);
    const m = manifestLine(rec.digest, extra.manifest);
    return m ? `${JSON.stringify(m)}\n${line}` : line;
  }

  /** Called just before the final bytes go out: the durable promise of the record, once settled (settle, sync). */
  journal(rec: AuditRecord, extra: RecordExtra): void {
    if (this.closed) return;
    this.append(this.line(rec, extra));
    this.inFlight.add(rec.id);
  }

  /** Called when the response closed, with the final figures. */
  complete(rec: AuditRecord, extra: RecordExtra): void {
    if (this.closed) return;
    if (!this.inFlight.delete(rec.id)) this.append(this.line(rec, extra));
    // The journal said completed; a client that left before the end corrects it.
    else if (rec.outcome === 'aborted') this.append(`${JSON.stringify({ id: rec.id, outcome: 'aborted', bytes: rec.bytes })}\n`);
  }

  /**
   * Starts a new segment and returns the one it closes, if that holds lines. Without lines (appends
   * failed, the descriptor may be bad) a fresh segment lets the journal work again.
   */
  private rotate(): string | undefined {
    const old = { fd: this.fd, path: this.segPath, pending: this.pending };
    try {
      this.openSegment();
      closeQuietly(old.fd);
      return old.pending > 0 ? old.path : undefined;
    } catch (err) {
      // Keep appending to the old segment; it goes with a later flush (or the next start).
      if (old.pending > 0) this.warn(err, 'audit: cannot start a new journal segment; keeping the old one');
      this.fd = old.fd;
      this.segPath = old.path;
      this.pending = old.pending;
      return undefined;
    }
  }

  /** Retention, at most once a minute. */
  private retention(): Retention | undefined {
    const now = Date.now();
    if (this.opts.retention.maxAge === undefined && this.opts.retention.maxRows === undefined) return undefined;
    if (now - this.lastPrune <= 60_000) return undefined;
    this.lastPrune = now;
    return { ...this.opts.retention, now };
  }

  /**
   * Closes the current segment and commits it to the database; runs on a timer, and before a query
   * of the log, so that the query sees everything journaled so far. (Shared mode: catchUp.)
   */
  flush(): void {
    if (this.opts.shared) return;
    this.sync();
    if (this.fd < 0 || (this.pending === 0 && this.unjournaled.length === 0)) return;
    const lines = this.unjournaled.join('');
    this.unjournaled = [];
    const segment = this.rotate();
    try {
      applyBatch(this.applier, { segment, lines, prune: this.retention() });
    } catch (err) {
      // The segment stays: the next start replays it.
      this.opts.log?.error({ err }, 'audit: writing to the database failed; the journal keeps the records');
    }
  }

  private catching: Promise<void> | undefined;
  private nextCatch: Promise<void> | undefined;

  /**
   * Brings the database up to date before a query: a flush, or in shared mode a read of what every
   * replica has committed. It never fails: a query answers from what the database holds.
   */
  async catchUp(): Promise<void> {
    if (!this.opts.shared) return this.flush();
    // One read at a time; a caller that comes during one waits for the next, which sees its lines.
    if (this.catching) return (this.nextCatch ??= this.catching.then(() => ((this.nextCatch = undefined), this.catchUp())));
    this.catching = this.pull()
      .catch((err: unknown) => this.warn(err, 'audit: cannot read the shared journal; the log shows what it had'))
      .finally(() => (this.catching = undefined));
    return this.catching;
  }

  /** Shared mode: sends what the local journal kept, then reads the shared journal into the database. */
  private async pull(): Promise<void> {
    const shared = this.opts.shared!;
    if (this.closed) return;
    await this.sendLocal(shared);
    const prune = this.retention();
    if (prune) await shared.prune(this.opts.retention);
    if (this.opts.index === false) return;
    await readShared(this.applier, this.db, shared, { prune, stop: () => this.closed });
  }

  /** Shared mode: lines kept on this disk while the shared journal was out of reach. */
  private async sendLocal(shared: SharedJournal): Promise<void> {
    if (this.pending > 0) this.rotate();
    let sent = false;
    for (const seg of this.segments()) {
      if (seg.path === this.segPath) continue;
      const text = readFileSync(seg.path, 'utf8');
      // A line torn by a crash was never complete; the reader skips it.
      if (text !== '') await shared.append(text, lineCount(text));
      unlinkQuietly(seg.path);
      sent = true;
    }
    if (this.unjournaled.length > 0) {
      const text = this.unjournaled.join('');
      this.unjournaled = [];
      await shared.append(text, lineCount(text)).catch((err: unknown) => {
        this.unjournaled.unshift(text);
        throw err;
      });
      sent = true;
    }
    // The database took what was kept here: batches go to it again.
    if (sent) this.localUntil = 0;
  }

  /** Commits what is journaled and closes the journal and the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    if (this.opts.shared) {
      // The last batches, then what the local journal kept: all of it waits for no timer.
      while (this.flight || this.buffered.length > 0) {
        this.ship();
        await new Promise<void>((r) => this.settle(r));
      }
      await this.catching;
      await this.sendLocal(this.opts.shared).catch((err: unknown) => this.warn(err, 'audit: cannot send the local journal; the next start sends it'));
    } else this.flush();
    this.closed = true;
    this.release();
    closeQuietly(this.fd);
    this.fd = -1;
    // The last segment is empty: everything went with the flush.
    if (this.pending === 0) unlinkQuietly(this.segPath);
    this.db.close();
  }
}

/** How long batches go to the local journal after the shared one failed; the flush ends it sooner once the database answers. */
const LOCAL_FOR_MS = 5_000;

function lineCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // a descriptor that was already bad
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // A segment left behind is replayed (idempotently) at the next start.
  }
}
