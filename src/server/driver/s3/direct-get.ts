import { connect, type Socket } from 'node:net';

/*
 * Ranged GETs of an object sent over plain sockets of our own, whose bodies the kernel copies
 * straight into the buffers the reader fills. Through node:http (the SDK's handler, or undici),
 * every read of the socket is a new 64 KiB buffer outside the JavaScript heap: ~16,000 per GiB
 * pulled, which only collections free, and a parser that handles each. Here a socket reads into
 * the caller's buffer (net.Socket's `onread`), or into one scratch buffer per connection while no
 * read waits (the head, the first bytes of a body), so a pull allocates nothing per chunk.
 *
 * Only the plain case is taken: an http endpoint, a 206 whose body has a Content-Length. Anything
 * else (an error status, a chunked body, a dead store) is left to the SDK, which makes the GET
 * again and says what went wrong as it always did (a missing key ENOENT, the store down 503).
 */

/** The bytes of one GET's body, read in order into buffers the caller gives. */
export interface BodySource {
  /** Fills `into` whole, or less only where the body ends. Fills queue in the order called. */
  fill(into: Uint8Array): Promise<number>;
  /** Gives the body up (what was not read is dropped with its connection). */
  destroy(): void;
}

/** Per connection: the response head must fit, and a body's first bytes land here. */
const SCRATCH = 64 * 1024;
/** Idle connections kept per endpoint. */
const MAX_IDLE = 16;

type Mode = 'connecting' | 'head' | 'body' | 'idle' | 'dead';

interface Target {
  buf: Uint8Array;
  n: number;
  resolve(n: number): void;
  reject(err: Error): void;
}

interface Head {
  status: number;
  headers: Map<string, string>;
}

function failure(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * One keep-alive connection to the store, one request at a time. Its socket reads (net's `onread`)
 * into the buffer `next()` hands out: the scratch buffer for a head, else the unfilled part of the
 * oldest waiting fill. It reads only while something can take the bytes: a head being awaited, a
 * fill waiting; otherwise the socket is paused, so the body waits in the kernel (and in the
 * store), as a paused stream's would.
 */
class Conn {
  readonly socket: Socket;
  private readonly scratch = Buffer.allocUnsafe(SCRATCH);
  /** Bytes in scratch not yet taken: [stashAt, stashEnd). */
  private stashAt = 0;
  private stashEnd = 0;
  private mode: Mode = 'connecting';
  private paused = false;
  private waitingHead: { resolve(h: Head): void; reject(err: Error): void } | undefined;
  private readonly targets: Target[] = [];
  /** Body bytes not yet read from the socket. */
  private wire = 0;
  private closeAfter = false;
  private error: Error | undefined;
  /** Some byte of a response came: a failure is no longer a stale connection's. */
  answered = false;

  constructor(
    host: string,
    port: number,
    private readonly timeoutMs: number,
    private readonly released: (c: Conn) => void,
  ) {
    this.socket = connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: () => this.next(),
        callback: (n: number, buf: Uint8Array) => this.onRead(n, buf),
      },
    });
    this.socket.on('error', (err) => {
      this.error ??= err;
    });
    this.socket.on('close', () => this.fail(this.error ?? failure('the object store closed the connection', 'ECONNRESET')));
    this.socket.on('timeout', () => {
      // Only a wait for the store counts; a body paused while the client is slow does not.
      if (this.mode === 'body' && this.targets.length > 0) {
        this.socket.destroy(failure(`the object store sent nothing for ${this.timeoutMs / 1000} s`, 'ETIMEDOUT'));
      } else if (this.mode === 'body') this.socket.setTimeout(this.timeoutMs);
    });
  }

  get dead(): boolean {
    return this.mode === 'dead';
  }

  /** Sends a request head and resolves with the response's head; its body waits for body(). */
  request(head: string, signal?: AbortSignal): Promise<Head> {
    this.mode = 'head';
    this.answered = false;
    this.socket.ref();
    // The wait for the head is the caller's signal's, so that it fails as the SDK's GET would.
    this.socket.setTimeout(0);
    return new Promise<Head>((resolve, reject) => {
      const abort = (): void => this.destroy(signal!.reason instanceof Error ? signal!.reason : failure('aborted', 'ABORT_ERR'));
      if (signal?.aborted) return abort();
      signal?.addEventListener('abort', abort, { once: true });
      this.waitingHead = {
        resolve: (h) => {
          signal?.removeEventListener('abort', abort);
          resolve(h);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', abort);
          reject(err);
        },
      };
      this.socket.write(head);
      this.resume();
    });
  }

  /** The response's body of `length` bytes; the connection goes back to the pool once it is read. */
  body(length: number, close: boolean): BodySource {
    const stashed = this.stashEnd - this.stashAt;
    if (stashed > length) {
      this.destroy(failure('the object store sent more than the Content-Length', 'EPROTO'));
    } else {
      this.mode = 'body';
      this.wire = length - stashed;
      this.closeAfter = close;
      this.socket.setTimeout(this.timeoutMs);
      this.settle();
    }
    return {
      fill: (into) => this.fill(into),
      destroy: () => {
        if (this.mode === 'body') this.destroy(failure('the body was given up', 'ABORT_ERR'));
      },
    };
  }

  private fill(into: Uint8Array): Promise<number> {
    if (this.mode === 'dead') return Promise.reject(this.error ?? failure('the connection is closed', 'ECONNRESET'));
    if (this.mode !== 'body' || into.length === 0) return Promise.resolve(0);
    return new Promise<number>((resolve, reject) => {
      this.targets.push({ buf: into, n: 0, resolve, reject });
      this.settle();
    });
  }

  /** Moves stashed bytes into waiting fills, ends the body when it is all read, and reads on if a fill waits. */
  private settle(): void {
    while (this.targets.length > 0 && this.stashEnd > this.stashAt) {
      const t = this.targets[0]!;
      const take = Math.min(t.buf.length - t.n, this.stashEnd - this.stashAt);
      t.buf.set(this.scratch.subarray(this.stashAt, this.stashAt + take), t.n);
      t.n += take;
      this.stashAt += take;
      if (t.n === t.buf.length) {
        this.targets.shift();
        t.resolve(t.n);
      }
    }
    if (this.stashAt === this.stashEnd) this.stashAt = this.stashEnd = 0;
    if (this.mode !== 'body') return;
    if (this.wire === 0 && this.stashEnd === 0) return this.finish();
    if (this.targets.length > 0 && this.stashEnd === 0) this.resume();
  }

  /** The body is all read: short fills end there, and the connection is free. */
  private finish(): void {
    for (const t of this.targets.splice(0)) t.resolve(t.n);
    if (this.closeAfter) return this.destroy();
    this.mode = 'idle';
    this.socket.setTimeout(0);
    // An idle socket reads on, so that the store closing it (or sending what it should not) is seen.
    this.resume();
    this.socket.unref();
    this.released(this);
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // The buffer handed out when the socket paused may be stale: a fill came since.
    this.socket.resume();
  }

  /** The buffer the socket's next read goes into. */
  private next(): Uint8Array {
    const t = this.targets[0];
    if (this.mode === 'body' && t && this.stashEnd === 0 && this.wire > 0) {
      return t.buf.subarray(t.n, t.n + Math.min(t.buf.length - t.n, this.wire));
    }
    // In a body the socket reads into scratch only once the stash is empty (it is paused while
    // not), so from its start; never past the body's end (the next response's bytes, or a store's
    // mistake). Never an empty view: libuv would fail the read (ENOBUFS).
    if (this.mode === 'body') return this.scratch.subarray(0, Math.max(1, Math.min(SCRATCH, this.wire)));
    return this.scratch.subarray(this.stashEnd, Math.max(this.stashEnd + 1, SCRATCH));
  }

  /** `n` bytes came into `buf`; false pauses the socket. */
  private onRead(n: number, buf: Uint8Array): boolean {
    this.answered = true;
    if (this.mode === 'idle' || this.mode === 'connecting') {
      this.destroy(failure('the object store sent bytes outside a response', 'EPROTO'));
      return false;
    }
    if (this.mode === 'dead') return false;
    if (buf.buffer === this.scratch.buffer) {
      // A view handed out before a pause may start past where the stash ends now (it emptied since).
      const at = buf.byteOffset - this.scratch.byteOffset;
      if (at !== this.stashEnd) this.scratch.copyWithin(this.stashEnd, at, at + n);
      this.stashEnd += n;
      if (this.mode === 'head') return this.parseHead();
      this.wire -= n;
    } else {
      const t = this.targets[0]!;
      t.n += n;
      this.wire -= n;
      if (t.n === t.buf.length) {
        this.targets.shift();
        t.resolve(t.n);
      }
    }
    this.settle();
    // settle() may have ended the body (idle: the socket reads on) or the connection.
    const mode = this.mode as Mode;
    if (mode !== 'body') return mode === 'idle';
    const more = this.wire > 0 && this.targets.length > 0 && this.stashEnd === 0;
    // Resumed by settle() when a fill comes.
    if (!more) this.paused = true;
    return more;
  }

  private parseHead(): boolean {
    const end = this.scratch.subarray(0, this.stashEnd).indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.stashEnd === SCRATCH) this.destroy(failure('the response head is too large', 'EPROTO'));
      return this.mode === 'head';
    }
    const lines = this.scratch.toString('latin1', 0, end).split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
    if (!status) {
      this.destroy(failure('the object store sent a bad status line', 'EPROTO'));
      return false;
    }
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    this.stashAt = end + 4;
    // Nothing is read until the caller says what the body is.
    this.mode = 'body';
    this.wire = 0;
    this.paused = true;
    const waiting = this.waitingHead!;
    this.waitingHead = undefined;
    waiting.resolve({ status: Number(status[1]), headers });
    return false;
  }

  destroy(err?: Error): void {
    if (err) this.error ??= err;
    this.socket.destroy();
    this.fail(this.error ?? failure('the connection is closed', 'ECONNRESET'));
  }

  private fail(err: Error): void {
    if (this.mode === 'dead') return;
    const wasBody = this.mode === 'body';
    this.mode = 'dead';
    this.waitingHead?.reject(err);
    this.waitingHead = undefined;
    const short = wasBody && this.wire > 0 ? Object.assign(new Error(`the object store's response ended ${this.wire} bytes short of its body: ${err.message}`), { code: (err as NodeJS.ErrnoException).code, cause: err }) : err;
    for (const t of this.targets.splice(0)) t.reject(short);
    this.socket.destroy();
  }
}

export interface DirectGetOptions {
  /** `http://host:port` of the store. */
  endpoint: URL;
  /** A presigned GET URL of the key (its host must be the endpoint's). */
  presign: (key: string) => Promise<string>;
  /** Bounds a wait for the store between two reads of a body (a head's is bounded by the caller's signal). */
  timeoutMs: number;
  /** Connections at once; a GET past them goes through the SDK. */
  maxSockets: number;
}

/** Ranged GETs over a pool of connections to one endpoint (see the top of this file). */
export class DirectGet {
  private readonly idle: Conn[] = [];
  private open = 0;
  private closed = false;

  constructor(private readonly o: DirectGetOptions) {}

  /**
   * The body of bytes [start, end] of `key` (shorter if the object is), or undefined if the SDK
   * should make this GET: the store answered anything but a plain 206, or could not be reached.
   */
  async get(key: string, range: { start: number; end: number }, signal?: AbortSignal): Promise<BodySource | undefined> {
    if (this.closed || this.open >= this.o.maxSockets) return undefined;
    const url = new URL(await this.o.presign(key));
    if (url.host !== this.o.endpoint.host) return undefined;
    const head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nRange: bytes=${range.start}-${range.end}\r\n\r\n`;
    for (let fresh = false; ; fresh = true) {
      const pooled = fresh ? undefined : this.take();
      const conn = pooled ?? this.dial();
      let res: Head;
      try {
        res = await conn.request(head, signal);
      } catch (err) {
        conn.destroy();
        if (signal?.aborted) throw err;
        // A kept connection the store had closed: once more on a new one, as nothing was read.
        if (pooled && !conn.answered) continue;
        return undefined;
      }
      const length = Number(res.headers.get('content-length'));
      const at = /^bytes (\d+)-(\d+)\//.exec(res.headers.get('content-range') ?? '');
      const plain =
        res.status === 206 &&
        !res.headers.has('transfer-encoding') &&
        Number.isSafeInteger(length) &&
        at !== null &&
        Number(at[1]) === range.start &&
        Number(at[2]) - Number(at[1]) + 1 === length &&
        length <= range.end - range.start + 1;
      if (!plain) {
        conn.destroy();
        return undefined;
      }
      return conn.body(length, /\bclose\b/i.test(res.headers.get('connection') ?? ''));
    }
  }

  private take(): Conn | undefined {
    for (let c = this.idle.pop(); c; c = this.idle.pop()) if (!c.dead) return c;
    return undefined;
  }

  private dial(): Conn {
    this.open++;
    const c = new Conn(this.o.endpoint.hostname, Number(this.o.endpoint.port || 80), this.o.timeoutMs, (done) => {
      if (this.closed || this.idle.length >= MAX_IDLE) done.destroy();
      else this.idle.push(done);
    });
    c.socket.once('close', () => {
      this.open--;
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return c;
  }

  /** Closes the idle connections; those in use close when their bodies are read. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }
}
