import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DigestAlgorithm } from '../spec/index.js';

/**
 * A running digest that hashes large content on another thread. The main thread of a server
 * receives, writes and sends; sha256 at ~1.2 GB/s took a third of its time on a large push or a
 * cold proxy pull. Content up to one batch (1 MiB) is hashed in place when its digest is asked
 * for, so small pushes never wait for a thread hop.
 */
export interface Hasher {
  /**
   * Feeds bytes (copied: the caller may reuse the buffer at once). A promise means the hashing
   * thread is behind: wait for it before feeding more.
   */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /** The hex digest of the bytes fed. The hasher is spent after it. */
  digest(): Promise<string>;
  /** An independent hasher that goes on from the bytes fed so far. */
  copy(): Hasher;
  /** Drops the hasher without a digest. */
  dispose(): void;
}

/** Bytes per message to the hashing thread. */
const BATCH = 1 << 20;
/** Batches a hasher may have waiting on its thread before update() asks the caller to wait. */
const AHEAD = 8;
/** Spare batch buffers kept between uses (the rest are left to the garbage collector). */
const SPARE = 16;

// The worker's whole program: a map of running hashes, fed by messages in order.
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  const h = hashes.get(m.id);
  if (m.op === 'data') {
    h?.update(new Uint8Array(m.buf, 0, m.len));
    parentPort.postMessage({ op: 'ret', id: m.id, buf: m.buf }, [m.buf]);
  } else if (m.op === 'new') hashes.set(m.id, createHash(m.alg));
  else if (m.op === 'copy') { if (h) hashes.set(m.to, h.copy()); }
  else if (m.op === 'end') {
    hashes.delete(m.id);
    parentPort.postMessage({ op: 'digest', id: m.id, hex: h ? h.digest('hex') : undefined });
  } else if (m.op === 'drop') hashes.delete(m.id);
});
`;

/** A digest is undefined when the thread did not know the job: it was restarted meanwhile. */
type FromWorker = { op: 'ret'; id: number; buf: ArrayBuffer } | { op: 'digest'; id: number; hex: string | undefined };

interface Job {
  /** Batches on the thread, not yet returned. */
  ahead: number;
  wake?: () => void;
  done?: { resolve: (hex: string) => void; reject: (err: Error) => void };
}

/** One hashing thread and the jobs it runs. */
class HashThread {
  private worker: Worker | undefined;
  readonly jobs = new Map<number, Job>();

  private get port(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
    w.on('message', (m: FromWorker) => this.onMessage(m));
    const fail = (err: Error): void => {
      if (this.worker !== w) return;
      this.worker = undefined;
      const jobs = [...this.jobs.values()];
      this.jobs.clear();
      for (const j of jobs) {
        j.done?.reject(err);
        j.wake?.();
      }
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the hashing thread exited (code ${code})`)));
    // An idle hashing thread must not keep a process alive (see add and remove). After the
    // listeners: adding a 'message' listener refs the worker again.
    w.unref();
    this.worker = w;
    return w;
  }

  /** Jobs keep the thread referenced: a process waiting for a digest must not exit. */
  add(id: number, job: Job): void {
    if (this.jobs.size === 0) this.worker?.ref();
    this.jobs.set(id, job);
  }

  remove(id: number): void {
    if (this.jobs.delete(id) && this.jobs.size === 0) this.worker?.unref();
  }

  private onMessage(m: FromWorker): void {
    const job = this.jobs.get(m.id);
    if (m.op === 'ret') {
      if (spare.length < SPARE) spare.push(Buffer.from(m.buf));
      if (!job) return;
      job.ahead--;
      const wake = job.wake;
      job.wake = undefined;
      wake?.();
    } else {
      this.remove(m.id);
      if (m.hex !== undefined) job?.done?.resolve(m.hex);
      else job?.done?.reject(new Error('the hashing thread lost this digest (it was restarted)'));
    }
  }

  post(msg: { op: string; id: number; [k: string]: unknown }, transfer?: ArrayBuffer[]): void {
    this.port.postMessage(msg, transfer);
  }
}

const spare: Buffer[] = [];
const takeBatch = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(BATCH);

let threads: HashThread[] | undefined;
let nextId = 1;

/** The thread with the fewest jobs: one per spare core, at most four. */
function pickThread(): HashThread {
  threads ??= Array.from({ length: Math.max(1, Math.min(4, availableParallelism() - 1)) }, () => new HashThread());
  return threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
}

class OffThreadHasher implements Hasher {
  private batch: Buffer | undefined;
  private fill = 0;
  /** Set once the content outgrew one batch and went to a thread. */
  private job: { thread: HashThread; id: number; state: Job } | undefined;
  private spent = false;

  constructor(private readonly algorithm: DigestAlgorithm) {}

  update(chunk: Uint8Array): Promise<void> | undefined {
    if (this.spent) throw new Error('update() after digest()');
    let off = 0;
    while (off < chunk.length) {
      if (this.fill === BATCH) this.send();
      this.batch ??= takeBatch();
      const n = Math.min(chunk.length - off, BATCH - this.fill);
      this.batch.set(chunk.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
    }
    const s = this.job?.state;
    if (!s || s.ahead < AHEAD) return undefined;
    return new Promise((resolve) => (s.wake = resolve));
  }

  private start(): { thread: HashThread; id: number; state: Job } {
    if (this.job) return this.job;
    const thread = pickThread();
    const id = nextId++;
    const state: Job = { ahead: 0 };
    thread.post({ op: 'new', id, alg: this.algorithm });
    thread.add(id, state);
    this.job = { thread, id, state };
    return this.job;
  }

  /** Hands the current batch to the thread. */
  private send(): void {
    const { thread, id, state } = this.start();
    if (this.fill > 0) {
      const buf = this.batch!.buffer as ArrayBuffer;
      state.ahead++;
      thread.post({ op: 'data', id, buf, len: this.fill }, [buf]);
      this.batch = undefined;
      this.fill = 0;
    }
  }

  async digest(): Promise<string> {
    if (this.spent) throw new Error('digest() called twice');
    this.spent = true;
    if (!this.job) {
      const hex = createHash(this.algorithm)
        .update(this.batch?.subarray(0, this.fill) ?? Buffer.alloc(0))
        .digest('hex');
      this.release();
      return hex;
    }
    this.send();
    const { thread, id, state } = this.job;
    const hex = new Promise<string>((resolve, reject) => (state.done = { resolve, reject }));
    thread.post({ op: 'end', id });
    return hex;
  }

  copy(): Hasher {
    const twin = new OffThreadHasher(this.algorithm);
    if (!this.job) {
      if (this.batch) {
        twin.batch = takeBatch();
        twin.batch.set(this.batch.subarray(0, this.fill));
        twin.fill = this.fill;
      }
      return twin;
    }
    this.send();
    const { thread, id } = this.job;
    const to = nextId++;
    const state: Job = { ahead: 0 };
    thread.post({ op: 'copy', id, to });
    thread.add(to, state);
    twin.job = { thread, id: to, state };
    return twin;
  }

  dispose(): void {
    if (this.spent) return;
    this.spent = true;
    this.release();
    if (this.job) {
      this.job.thread.post({ op: 'drop', id: this.job.id });
      this.job.thread.remove(this.job.id);
    }
  }

  private release(): void {
    if (this.batch && spare.length < SPARE) spare.push(this.batch);
    this.batch = undefined;
  }
}

export function createHasher(algorithm: DigestAlgorithm = 'sha256'): Hasher {
  return new OffThreadHasher(algorithm);
}
