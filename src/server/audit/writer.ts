import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { AuditDb, INSERT_RECORD_SQL, PRUNE_SQL, UPSERT_DOWNLOAD_SQL, type DownloadParams, type RecordParams } from './db.js';

/** One batch for the database: rows to insert, download rows to upsert, or a retention pass. */
export interface Batch {
  records: RecordParams[];
  downloads: DownloadParams[];
  prune?: { maxAge?: number | undefined; maxRows?: number | undefined; now: number } | undefined;
}

/** Commits batches in order; each promise settles once its batch is committed (or failed). */
export interface BatchWriter {
  write(batch: Batch): Promise<void>;
  close(): Promise<void>;
}

// Plain JavaScript, run as an eval worker, so that it needs no TypeScript loader under tsx.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
const ins = db.prepare(workerData.sql.insert);
const up = db.prepare(workerData.sql.upsert);
const P = workerData.sql.prune;
const tx = db.transaction((b) => {
  for (const r of b.records) ins.run(...r);
  for (const d of b.downloads) up.run(...d);
  if (b.prune) {
    if (b.prune.maxAge != null) { db.prepare(P.ageRequests).run(b.prune.now - b.prune.maxAge); db.prepare(P.ageDownloads).run(b.prune.now - b.prune.maxAge); }
    if (b.prune.maxRows != null) { db.prepare(P.rowsRequests).run(b.prune.maxRows); db.prepare(P.rowsDownloads).run(b.prune.maxRows); }
  }
});
parentPort.on('message', (m) => {
  if (m.close) { db.close(); parentPort.postMessage({ closed: true }); return; }
  try { tx(m.batch); parentPort.postMessage({ seq: m.seq }); }
  catch (e) { parentPort.postMessage({ seq: m.seq, error: String((e && e.message) || e) }); }
});
`;

/**
 * SQLite writes on a worker thread: the request thread only appends journal lines and hands over
 * batches. The worker has its own connection; readers on the main thread see each commit (WAL).
 */
export function workerWriter(path: string, onError: (err: Error) => void): BatchWriter {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { path, sqlite: createRequire(import.meta.url).resolve('better-sqlite3'), sql: { insert: INSERT_RECORD_SQL, upsert: UPSERT_DOWNLOAD_SQL, prune: PRUNE_SQL } },
  });
  worker.unref();
  let seq = 0;
  const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  let closed: (() => void) | undefined;
  worker.on('message', (m: { seq?: number; error?: string; closed?: boolean }) => {
    if (m.closed) return closed?.();
    const w = waiting.get(m.seq!);
    waiting.delete(m.seq!);
    if (m.error !== undefined) w?.reject(new Error(m.error));
    else w?.resolve();
  });
  let dead: Error | undefined;
  const fail = (err: Error): void => {
    if (dead) return;
    dead = err;
    onError(err);
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => {
    if (!closed) fail(new Error(`the audit writer thread exited (${code})`));
  });
  return {
    write: (batch) =>
      new Promise<void>((resolve, reject) => {
        if (dead) return reject(dead);
        const n = ++seq;
        waiting.set(n, { resolve, reject });
        worker.postMessage({ seq: n, batch });
      }),
    close: async () => {
      if (dead) return;
      await new Promise<void>((resolve) => {
        closed = resolve;
        worker.postMessage({ close: true });
        setTimeout(resolve, 5000).unref();
      });
      await worker.terminate();
    },
  };
}

/** The same on the calling thread (a fallback, and for tools). */
export function inlineWriter(db: AuditDb): BatchWriter {
  return {
    write: async (b) => {
      db.writeParams(b.records, b.downloads);
      if (b.prune) db.prune(b.prune, b.prune.now);
    },
    close: async () => undefined,
  };
}
