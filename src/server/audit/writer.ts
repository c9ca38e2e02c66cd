import { readFileSync, unlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { JournalApplier, Retention } from './journal.js';

/** One batch for the database: a closed journal segment, lines that never reached one, retention. */
export interface Batch {
  segment?: string | undefined;
  lines: string;
  prune?: Retention | undefined;
}

/** Commits batches in order; each promise settles once its batch is committed (or failed). */
export interface BatchWriter {
  write(batch: Batch): Promise<void>;
  close(): Promise<void>;
}

/** Applies a batch and then deletes its segment (a crash in between replays it, harmlessly, at start); returns its records. */
export function applyBatch(applier: JournalApplier, b: Batch): number {
  const text = (b.segment !== undefined ? readFileSync(b.segment, 'utf8') : '') + b.lines;
  const n = applier.apply(text, b.prune);
  if (b.segment === undefined) return n;
  try {
    unlinkSync(b.segment);
  } catch {
    // A segment left behind is replayed (idempotently) at the next start.
  }
  return n;
}

/** The worker's entry module; from TypeScript sources (tests, tsx) it is loaded through tsx. */
function spawnWorker(workerData: unknown): Worker {
  const js = new URL('./worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return new Worker(js, { workerData });
  const ts = new URL('./worker.ts', import.meta.url).href;
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((t) => { t.register(); return import(${JSON.stringify(ts)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

/**
 * The database work on a worker thread: the request thread only appends journal lines and, on
 * each flush, hands over the name of the segment it closed. The worker has its own connection;
 * readers on the main thread see each commit (WAL).
 */
export function workerWriter(dbPath: string, groupWindow: number, onError: (err: Error) => void): BatchWriter {
  const worker = spawnWorker({ dbPath, groupWindow });
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

/** The same on the calling thread (the fallback when the worker fails). */
export function inlineWriter(applier: JournalApplier): BatchWriter {
  return {
    write: async (b) => void applyBatch(applier, b),
    close: async () => undefined,
  };
}
