import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { DigestAlgorithm } from '../spec/index.js';

/** A digest computed as bytes arrive, which can be forked to roll back a failed chunk. */
export interface RunningDigest {
  /** Adds bytes. A promise asks the caller to wait for it before the next update. */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /** An independent digest of the bytes so far. */
  copy(): RunningDigest;
  /** `algorithm:hex` of everything added; the running digest is spent. */
  digest(): Promise<string>;
}

/** Bodies this large or larger are hashed on the digest thread. */
export const OFF_THREAD_MIN = 1 << 20;

/**
 * A running digest for a body of about `sizeHint` bytes. Hashing costs about 0.85 s of CPU per
 * GiB, which on the request thread caps a large push at the speed of that one thread; on a thread
 * of its own it runs beside the socket reads and disk writes. A small body stays on the caller's
 * thread, where it costs less than the round trip.
 */
export function runningDigest(algorithm: DigestAlgorithm, sizeHint = 0): RunningDigest {
  return sizeHint >= OFF_THREAD_MIN ? digestThread.start(algorithm) : new LocalDigest(algorithm, createHash(algorithm));
}

class LocalDigest implements RunningDigest {
  constructor(
    private readonly algorithm: DigestAlgorithm,
    private readonly hash: Hash,
  ) {}
  update(chunk: Uint8Array): undefined {
    this.hash.update(chunk);
  }
  copy(): RunningDigest {
    return new LocalDigest(this.algorithm, this.hash.copy());
  }
  digest(): Promise<string> {
    return Promise.resolve(`${this.algorithm}:${this.hash.digest('hex')}`);
  }
}

/**
 * Bytes are handed to the thread in buffers of this size, moved (not copied) both ways. Each move
 * costs the caller about 80 us of wall time on a busy 2-core machine (the thread it wakes takes
 * its core): at 256 KiB that was a quarter of a cold cache fill's main thread.
 */
const STAGE = 1 << 20;
/**
 * With more digests than WIDE open at once, each stages this much instead: every open digest holds
 * a stage while it fills, and 20 cache fills at once held 20 MiB in stages of 1 MiB.
 */
const SMALL_STAGE = 256 << 10;
const WIDE = 4;
/** Buffers on their way to or in the thread; past this, updates wait (memory stays flat: 4 MiB). */
const IN_FLIGHT = 4;

type ToThread =
  | { op: 'start'; id: number; algorithm: DigestAlgorithm }
  | { op: 'update'; id: number; buf: ArrayBuffer; length: number }
  | { op: 'copy'; id: number; to: number }
  | { op: 'digest'; id: number }
  | { op: 'drop'; id: number };
type FromThread = { op: 'free'; buf: ArrayBuffer } | { op: 'digest'; id: number; hex?: string };

// CommonJS evaluated in the worker, so that it loads the same way from sources (tsx) and builds.
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'start') hashes.set(m.id, createHash(m.algorithm));
  else if (m.op === 'update') {
    hashes.get(m.id)?.update(new Uint8Array(m.buf, 0, m.length));
    parentPort.postMessage({ op: 'free', buf: m.buf }, [m.buf]);
  } else if (m.op === 'copy') {
    const h = hashes.get(m.id);
    if (h) hashes.set(m.to, h.copy());
  } else if (m.op === 'digest') {
    const h = hashes.get(m.id);
    hashes.delete(m.id);
    parentPort.postMessage({ op: 'digest', id: m.id, hex: h?.digest('hex') });
  } else if (m.op === 'drop') hashes.delete(m.id);
});
`;

/**
 * One worker thread that keeps the state of every off-thread digest, by id. Messages arrive in
 * the order they were posted, so updates, copies and digests apply in the caller's order. The
 * thread starts on first use and does not keep the process alive.
 */
class DigestThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private inFlight = 0;
  private readonly spare: ArrayBuffer[] = [];
  /** Digests started and not yet read or dropped. */
  private open = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly pending = new Map<number, { resolve: (hex: string) => void; reject: (err: Error) => void }>();
  /** A digest dropped without being read frees its state in the thread. */
  private readonly forgotten = new FinalizationRegistry<number>((id) => {
    this.open--;
    this.worker?.postMessage({ op: 'drop', id } satisfies ToThread);
  });

  start(algorithm: DigestAlgorithm): RunningDigest {
    const id = this.nextId++;
    this.thread().postMessage({ op: 'start', id, algorithm } satisfies ToThread);
    return this.track(algorithm, id);
  }

  /** A new digest in the thread, a copy of digest `from`. */
  fork(algorithm: DigestAlgorithm, from: number): RunningDigest {
    const id = this.nextId++;
    this.thread().postMessage({ op: 'copy', id: from, to: id } satisfies ToThread);
    return this.track(algorithm, id);
  }

  private track(algorithm: DigestAlgorithm, id: number): ThreadDigest {
    const d = new ThreadDigest(this, algorithm, id);
    this.forgotten.register(d, id, d);
    this.open++;
    return d;
  }

  /** A buffer to fill; give it back through `send`. */
  buffer(): ArrayBuffer {
    const size = this.stageSize();
    const i = this.spare.findIndex((b) => b.byteLength === size);
    return i >= 0 ? this.spare.splice(i, 1)[0]! : new ArrayBuffer(size);
  }

  private stageSize(): number {
    return this.open > WIDE ? SMALL_STAGE : STAGE;
  }

  /** Moves `length` bytes of `buf` to the thread; resolves when there is room for more. */
  send(id: number, buf: ArrayBuffer, length: number): Promise<void> | undefined {
    this.inFlight++;
    this.busy();
    this.thread().postMessage({ op: 'update', id, buf, length } satisfies ToThread, [buf]);
    return this.inFlight < IN_FLIGHT ? undefined : new Promise((resolve) => this.waiting.push(resolve));
  }

  digest(d: ThreadDigest): Promise<string> {
    if (this.forgotten.unregister(d)) this.open--;
    return new Promise((resolve, reject) => {
      this.pending.set(d.id, { resolve, reject });
      this.busy();
      this.thread().postMessage({ op: 'digest', id: d.id } satisfies ToThread);
    });
  }

  /** Work in the thread keeps the process alive; an idle thread does not. */
  private busy(): void {
    this.worker?.ref();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    // Without the parent's flags: --input-type=module, say, would make the source ES module code.
    const w = new Worker(THREAD_SOURCE, { eval: true, execArgv: [] });
    w.on('message', (m: FromThread) => {
      if (m.op === 'free') {
        this.inFlight--;
        if (this.spare.length < IN_FLIGHT && m.buf.byteLength === this.stageSize()) this.spare.push(m.buf);
        this.waiting.shift()?.();
      } else {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.hex === undefined) p?.reject(new Error('the digest thread lost this digest'));
        else p?.resolve(m.hex);
      }
      if (this.inFlight === 0 && this.pending.size === 0) w.unref();
    });
    // The state of every digest went with the thread: those being read fail, and so will the
    // rest when they are read; writers that wait for room go on. The next digest starts a thread.
    const lost = (err: Error): void => {
      if (this.worker !== w) return;
      this.worker = undefined;
      this.inFlight = 0;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      for (const wake of this.waiting.splice(0)) wake();
    };
    w.once('online', () => threadStarted?.());
    w.on('error', lost);
    w.on('exit', (code) => lost(new Error(`the digest thread exited with code ${code}`)));
    w.unref();
    this.worker = w;
    return w;
  }
}

const digestThread = new DigestThread();

let threadStarted: (() => void) | undefined;

/**
 * `fn` runs each time the digest thread has started. A worker thread's start undoes the V8 flag
 * that wharf serve's young generation cap sets at run time, so serve sets it again here.
 */
export function onDigestThreadStart(fn: () => void): void {
  threadStarted = fn;
}

class ThreadDigest implements RunningDigest {
  private stage: ArrayBuffer | undefined;
  private filled = 0;
  constructor(
    private readonly thread: DigestThread,
    private readonly algorithm: DigestAlgorithm,
    readonly id: number,
  ) {}

  update(chunk: Uint8Array): Promise<void> | undefined {
    let wait: Promise<void> | undefined;
    for (let at = 0; at < chunk.length; ) {
      const stage = (this.stage ??= this.thread.buffer());
      const n = Math.min(chunk.length - at, stage.byteLength - this.filled);
      new Uint8Array(stage, this.filled, n).set(chunk.subarray(at, at + n));
      this.filled += n;
      at += n;
      if (this.filled === stage.byteLength) wait = this.flush() ?? wait;
    }
    return wait;
  }

  copy(): RunningDigest {
    void this.flush();
    return this.thread.fork(this.algorithm, this.id);
  }

  async digest(): Promise<string> {
    void this.flush();
    return `${this.algorithm}:${await this.thread.digest(this)}`;
  }

  private flush(): Promise<void> | undefined {
    const stage = this.stage;
    if (!stage || this.filled === 0) return undefined;
    this.stage = undefined;
    const n = this.filled;
    this.filled = 0;
    return this.thread.send(this.id, stage, n);
  }
}
