/** The audit writer thread (see writer.ts): applies journal batches to SQLite, in order. */
import { parentPort, workerData } from 'node:worker_threads';
import { AuditDb } from './db.js';
import { JournalApplier } from './journal.js';
import { applyBatch, type Batch } from './writer.js';

const { dbPath, groupWindow } = workerData as { dbPath: string; groupWindow: number };
const db = new AuditDb(dbPath);
const applier = new JournalApplier(db, groupWindow);

parentPort!.on('message', (m: { close?: boolean; seq?: number; batch?: Batch }) => {
  if (m.close) {
    db.close();
    parentPort!.postMessage({ closed: true });
    return;
  }
  try {
    applyBatch(applier, m.batch!);
    parentPort!.postMessage({ seq: m.seq });
  } catch (err) {
    parentPort!.postMessage({ seq: m.seq, error: err instanceof Error ? err.message : String(err) });
  }
});
