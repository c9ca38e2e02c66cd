import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AuditDb, downloadParams, recordParams } from './db.js';
import { inlineWriter, workerWriter, type BatchWriter } from './writer.js';
import type { AuditRecord, DownloadRow } from './types.js';

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
  /** Write SQLite on a worker thread (default true). */
  worker?: boolean;
}

interface Group {
  row: DownloadRow;
  /** Blob digest → media type, from the manifest. */
  blobs: Map<string, string | null>;
  done: Set<string>;
}

const SEGMENT = /^journal-(\d+)\.log$/;

/**
 * The audit log. A record reaches SQLite in batches, off the request path; what makes it durable
 * before that is the journal: one JSON line appended with a synchronous write() before the last
 * byte of the response is handed to the socket. A client that has its whole response therefore
 * implies a journal line, which the kernel keeps even if the process is killed (-9) the next
 * instant; on start the journal is replayed into SQLite (idempotently, by record id).
 *
 * Each flush rotates to a new journal segment, re-appends the lines of responses still in flight,
 * commits the batch and only then deletes the old segment.
 */
export class AuditLog {
  readonly db: AuditDb;
  private fd = -1;
  private seg = 0;
  private segPath = '';
  private queue: Array<{ rec: AuditRecord; extra: RecordExtra }> = [];
  /** Records journaled as complete whose response has not closed yet. */
  private readonly inFlight = new Map<number, string>();
  private readonly groups = new Map<string, Group>();
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  private closed = false;
  private writer: BatchWriter;
  /** The batch handed to the writer last: flush() resolves after it. */
  private last: Promise<void> = Promise.resolve();

  private constructor(private readonly opts: AuditLogOptions) {
    this.db = new AuditDb(opts.dbPath);
    this.writer = inlineWriter(this.db);
  }

  static open(opts: AuditLogOptions): AuditLog {
    const a = new AuditLog(opts);
    mkdirSync(opts.journalDir, { recursive: true });
    const n = a.replay();
    if (n > 0) opts.log?.info({ records: n }, 'audit: replayed journal records into the database');
    if (opts.worker !== false) {
      try {
        a.writer = workerWriter(opts.dbPath, (err) => {
          // Batches in its hands stay in their journal segments (replayed at the next start); later
          // ones are written on this thread.
          opts.log?.error({ err }, 'audit: the writer thread failed; writing on the main thread from now on');
          a.writer = inlineWriter(a.db);
        });
      } catch (err) {
        opts.log?.warn({ err }, 'audit: no worker thread; writing on the main thread');
      }
    }
    a.openSegment();
    a.timer = setInterval(() => void a.flush(), opts.flushInterval);
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
    const byId = new Map<number, AuditRecord>();
    for (const s of segs) {
      for (const line of readFileSync(s.path, 'utf8').split('\n')) {
        if (line === '') continue;
        try {
          const r = JSON.parse(line) as AuditRecord;
          if (typeof r.id === 'number') byId.set(r.id, { ...byId.get(r.id), ...r });
        } catch {
          // A line torn by the crash was never complete: its response had not ended.
        }
      }
    }
    // A correction line whose record is gone (it was committed) is nothing to insert.
    const complete = [...byId.values()].filter((r) => typeof r.time === 'number' && typeof r.method === 'string');
    if (complete.length > 0) this.db.write(complete);
    for (const s of segs) unlinkSync(s.path);
    return complete.length;
  }

  private openSegment(): void {
    this.seg++;
    this.segPath = join(this.opts.journalDir, `journal-${this.seg}.log`);
    this.fd = openSync(this.segPath, 'a', 0o600);
  }

  private lastWarn = 0;

  /**
   * Appends to the journal. A failure (a full disk, say) must not cost the client its response:
   * it is logged, at most once a minute, and the record goes on to SQLite without the journal's
   * guarantee. Returns whether the line was written.
   */
  private append(line: string): boolean {
    try {
      writeSync(this.fd, line);
      return true;
    } catch (err) {
      this.warn(err, 'audit: cannot append to the journal; records are not crash-safe until it works again');
      return false;
    }
  }

  private warn(err: unknown, msg: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 60_000) return;
    this.lastWarn = now;
    this.opts.log?.error({ err }, msg);
  }

  /** Called just before the final bytes go out: the durable promise of the record. */
  journal(rec: AuditRecord): void {
    if (this.closed) return;
    const line = `${JSON.stringify(rec)}\n`;
    this.append(line);
    this.inFlight.set(rec.id, line);
  }

  /** Called when the response closed, with the final figures. */
  complete(rec: AuditRecord, extra: RecordExtra): void {
    if (this.closed) return;
    const journaled = this.inFlight.get(rec.id);
    this.inFlight.delete(rec.id);
    // The journal said completed; a client that left before the end corrects it.
    if (journaled !== undefined && rec.outcome === 'aborted') this.append(`${JSON.stringify({ id: rec.id, outcome: 'aborted', bytes: rec.bytes })}\n`);
    this.queue.push({ rec, extra });
  }

  /**
   * Hands the queued records to the writer as one transaction; runs on a timer, and resolves once
   * everything completed so far is committed. The old journal segment is deleted only then.
   */
  flush(): Promise<void> {
    if (this.fd < 0 || this.queue.length === 0) return this.last;
    const batch = this.queue;
    this.queue = [];
    const old = { fd: this.fd, path: this.segPath };
    // The old segment may go once the batch is committed only if every line still needed (those
    // of responses in flight) made it into the new one.
    let dropOld = true;
    try {
      this.openSegment();
      for (const line of this.inFlight.values()) dropOld = this.append(line) && dropOld;
    } catch (err) {
      this.warn(err, 'audit: cannot start a new journal segment; keeping the old one');
      if (this.fd !== old.fd) {
        try {
          closeSync(this.fd);
        } catch {
          // nothing more to do
        }
      }
      this.fd = old.fd;
      this.segPath = old.path;
      dropOld = false;
    }
    if (this.fd !== old.fd) {
      try {
        closeSync(old.fd);
      } catch {
        // a descriptor that was already bad
      }
    }
    const { records, downloads } = this.group(batch);
    const now = Date.now();
    let prune: { maxAge?: number | undefined; maxRows?: number | undefined; now: number } | undefined;
    if ((this.opts.retention.maxAge !== undefined || this.opts.retention.maxRows !== undefined) && now - this.lastPrune > 60_000) {
      this.lastPrune = now;
      prune = { ...this.opts.retention, now };
    }
    const p = this.writer.write({ records: records.map(recordParams), downloads: downloads.map(downloadParams), prune }).then(
      () => {
        if (dropOld) unlinkQuietly(old.path);
      },
      // Keep the old segment: the next start replays it.
      (err: unknown) => this.opts.log?.error({ err }, 'audit: writing to the database failed; the journal keeps the records'),
    );
    this.last = p;
    return p;
  }

  /** Joins blob pulls to the manifest pull they follow: one "artifact download" row. */
  private group(batch: Array<{ rec: AuditRecord; extra: RecordExtra }>): { records: Array<AuditRecord & { downloadId?: number | null }>; downloads: DownloadRow[] } {
    const touched = new Map<number, DownloadRow>();
    const records = batch.map(({ rec, extra }) => {
      const out: AuditRecord & { downloadId?: number | null } = { ...rec };
      if (rec.action !== 'pull' || rec.repo === null || rec.status >= 300) return out;
      const key = `${rec.user ?? ''}|${rec.ip}|${rec.repo}`;
      if (extra.kind === 'manifest' && extra.manifest && rec.digest) {
        const g = startGroup(rec, extra.manifest);
        if (g) {
          this.groups.set(key, g);
          touched.set(g.row.id, g.row);
          out.downloadId = g.row.id;
          out.artifactType = g.row.artifactType;
          if (this.groups.size > 10_000) this.groups.delete(this.groups.keys().next().value!);
        }
        return out;
      }
      if (extra.kind === 'blob' && rec.digest) {
        const g = this.groups.get(key);
        if (!g || !g.blobs.has(rec.digest) || rec.time - g.row.lastTime > this.opts.groupWindow) return out;
        out.downloadId = g.row.id;
        out.mediaType = g.blobs.get(rec.digest) ?? rec.mediaType;
        out.artifactType = g.row.artifactType;
        g.row.bytes += rec.bytes;
        g.row.lastTime = rec.time;
        if (rec.outcome === 'completed') g.done.add(rec.digest);
        g.row.blobsDone = g.done.size;
        g.row.completed = g.row.blobsTotal === 0 || g.row.blobsDone >= g.row.blobsTotal;
        touched.set(g.row.id, { ...g.row });
      }
      return out;
    });
    return { records, downloads: [...touched.values()] };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await this.flush();
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
    this.fd = -1;
    // Nothing is in flight any more: an empty last segment can go.
    if (this.inFlight.size === 0) unlinkQuietly(this.segPath);
    await this.writer.close();
    this.db.close();
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // A segment left behind is replayed (idempotently) at the next start.
  }
}

interface Desc {
  digest?: unknown;
  mediaType?: unknown;
  size?: unknown;
}

function startGroup(rec: AuditRecord, body: Buffer): Group | undefined {
  let m: { mediaType?: unknown; artifactType?: unknown; config?: Desc; layers?: Desc[]; manifests?: Desc[] };
  try {
    m = JSON.parse(body.toString('utf8')) as typeof m;
  } catch {
    return undefined;
  }
  const blobs = new Map<string, string | null>();
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  // Blobs a puller fetches: the layers, and the config unless it is the empty descriptor.
  for (const l of Array.isArray(m.layers) ? m.layers : []) if (typeof l?.digest === 'string') blobs.set(l.digest, str(l.mediaType));
  if (typeof m.config?.digest === 'string' && m.config.size !== 2) blobs.set(m.config.digest, str(m.config.mediaType));
  const artifactType = str(m.artifactType) ?? (m.config ? str(m.config.mediaType) : null);
  return {
    row: {
      id: rec.id,
      time: rec.time,
      lastTime: rec.time,
      user: rec.user,
      ip: rec.ip,
      repo: rec.repo!,
      reference: rec.reference,
      digest: rec.digest!,
      artifactType,
      blobsTotal: blobs.size,
      blobsDone: 0,
      bytes: rec.bytes,
      completed: blobs.size === 0,
    },
    blobs,
    done: new Set(),
  };
}
