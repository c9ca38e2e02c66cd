import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { AbortMultipartUploadCommand } from '@aws-sdk/client-s3';
import { isNoSuchUpload } from './client.js';
import { collect, type Head } from './files.js';
import { Multipart, type Bucket } from './outputs.js';
import { APPENDABLE, bytesInParts, partsKey, tailPrefix, tailsOf, type SessionState } from './session.js';

/** The object calls the records need, as the driver makes them (with its cache and its errors). */
export interface Objects {
  readonly b: Bucket;
  readonly prefix: string;
  getObject(key: string, range?: { start: number; end: number }): Promise<Readable>;
  putObject(key: string, body: Buffer, extra?: Record<string, string>): Promise<void>;
  deleteKey(key: string): Promise<void>;
  copyKey(from: string, to: string, size: number, metadata?: Record<string, string>): Promise<unknown>;
}

/**
 * Upload sessions' records (session.ts, SessionState) in the bucket: reading and writing them,
 * sealing a session's multipart upload into one readable object, reading a session's bytes, and
 * removing all a session holds.
 */
export class SessionRecords {
  constructor(private readonly o: Objects) {}

  async read(key: string): Promise<SessionState> {
    const raw = await collect(await this.o.getObject(key));
    return JSON.parse(raw.toString('utf8')) as SessionState;
  }

  async write(key: string, s: SessionState): Promise<void> {
    await this.o.putObject(key, Buffer.from(JSON.stringify(s)), { [APPENDABLE]: String(s.size) });
  }

  /**
   * Writes a session's new record, then removes the tails that the records it replaces referred
   * to and it does not (the new record keeps the one before it, and that one's tail).
   */
  async replace(key: string, old: SessionState[], next: SessionState): Promise<void> {
    await this.write(key, next);
    const keep = new Set(tailsOf(next));
    const stale = new Set(old.flatMap(tailsOf).filter((k) => !keep.has(k)));
    await Promise.all([...stale].map((k) => this.o.deleteKey(k).catch(() => undefined)));
  }

  /** The session at `key` as an appendable record, making one of a plain file (its bytes become the tail or part 1). */
  async of(key: string, head: Head): Promise<SessionState> {
    if (head.appendable) return this.read(key);
    if (head.size === 0) return { size: 0, parts: [] };
    // A plain file that now grows: its bytes move to where a session keeps them.
    const tail = `${tailPrefix(this.o.prefix, key)}${randomUUID()}`;
    await this.o.copyKey(key, tail, head.size);
    return { size: head.size, parts: [], tail: { key: tail, size: head.size } };
  }

  /**
   * Completes a session's upload into one object at partsKey (its tail the last part), so that
   * its bytes can be read or copied. Returns the record that says so (written by the caller).
   */
  async seal(key: string, s: SessionState): Promise<SessionState> {
    if (s.sealed || !s.uploadId) return s;
    const mp = new Multipart(this.o.b, partsKey(this.o.prefix, key), s.uploadId);
    const parts = [...s.parts];
    if (s.tail) parts.push(await mp.copy(parts.reduce((m, p) => Math.max(m, p.n), 0) + 1, s.tail.key, s.tail.size));
    await mp.complete(parts);
    const { prev: _older, ...prev } = s;
    return { size: s.size, parts: [], sealed: true, prev };
  }

  /** Where a session's bytes can be read: one object, after sealing it if needed. */
  private async source(key: string): Promise<{ key: string; size: number; state: SessionState } | { empty: true; state: SessionState }> {
    let s = await this.read(key);
    if (s.uploadId && !s.sealed) {
      const open = s;
      s = await this.seal(key, s);
      await this.replace(key, [open], s);
    }
    if (s.size === 0) return { empty: true, state: s };
    if (s.sealed && !s.tail) return { key: partsKey(this.o.prefix, key), size: s.size, state: s };
    if (!s.sealed && s.tail) return { key: s.tail.key, size: s.size, state: s };
    // Sealed bytes then a tail: two objects, which reads stitch (rare: a read after a restart that
    // was followed by appends).
    return { key: '', size: s.size, state: s };
  }

  /** The byte range [start, end] of a session, from its one or two objects. */
  async readRange(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const src = await this.source(key);
    if ('empty' in src) return Readable.from([]);
    const r = range ?? { start: 0, end: src.size - 1 };
    if (src.key) return this.o.getObject(src.key, r);
    const inParts = bytesInParts(src.state);
    const tail = src.state.tail!;
    const pieces: Array<() => Promise<Readable>> = [];
    if (r.start < inParts) pieces.push(() => this.o.getObject(partsKey(this.o.prefix, key), { start: r.start, end: Math.min(r.end, inParts - 1) }));
    if (r.end >= inParts) pieces.push(() => this.o.getObject(tail.key, { start: Math.max(0, r.start - inParts), end: r.end - inParts }));
    return Readable.from(
      (async function* () {
        for (const p of pieces) yield* await p();
      })(),
    );
  }

  /** Removes every object a session holds, and its record. */
  async drop(key: string, s: SessionState): Promise<void> {
    const uploads = [s.uploadId, s.prev?.uploadId].filter((u): u is string => u !== undefined);
    for (const UploadId of new Set(uploads)) {
      await this.o.b
        .call('abort multipart upload', key, (signal) => this.o.b.s3.send(new AbortMultipartUploadCommand({ Bucket: this.o.b.name, Key: partsKey(this.o.prefix, key), UploadId }), { abortSignal: signal }))
        .catch((err: unknown) => {
          if (!isNoSuchUpload(err) && !(err as NodeJS.ErrnoException).code) throw err;
        });
    }
    const keys = [...tailsOf(s)];
    if (s.sealed || s.prev?.sealed) keys.push(partsKey(this.o.prefix, key));
    await Promise.all(keys.map((k) => this.o.deleteKey(k)));
    await this.o.deleteKey(key);
  }

  /** A tail-only session (or a plain small file) cut back to `at` bytes: a new tail of its first bytes. */
  async cutTail(key: string, s: SessionState, at: number): Promise<SessionState> {
    const { prev: _older, ...prev } = s;
    if (at === 0 || !s.tail) return { size: 0, parts: [], prev };
    const tail = `${tailPrefix(this.o.prefix, key)}${randomUUID()}`;
    const bytes = await collect(await this.o.getObject(s.tail.key, { start: 0, end: at - 1 }));
    await this.o.putObject(tail, bytes);
    return { size: at, parts: [], tail: { key: tail, size: at }, prev };
  }
}
