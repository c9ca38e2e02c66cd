import { randomUUID } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OciError, parseDigest, createDigester, type ByteRange, type Digest, WharfError } from '../../spec/index.js';
import { runningDigest, type RunningDigest } from '../../content/index.js';
import type { DriverWriter, StorageDriver } from '../driver/index.js';
import { bodyBytesConsumed } from '../io/young-gc.js';
import { KeyedLock } from './locks.js';
import { paths, UPLOAD_ID } from './paths.js';

export interface UploadStatus {
  id: string;
  /** Bytes received so far; the next chunk starts here. */
  offset: number;
}

/** An upload session abandoned long enough to be purged. */
export interface StaleUpload {
  repo: string;
  id: string;
  /** Bytes its data file held. */
  bytes: number;
  /** Since its last chunk (ms). */
  idleMs: number;
}

export interface AppendOptions {
  /** The chunk's declared position; it must start at the current offset. */
  contentRange?: ByteRange;
  /** The declared body length; a body of another length is refused and rolled back. */
  contentLength?: number;
  signal?: AbortSignal;
}

/**
 * Waits for every write, then throws the first failure: nothing may still be writing when the
 * request answers (Promise.all would answer at the first failure).
 */
export async function allDone(writes: Array<Promise<unknown> | undefined>): Promise<void> {
  const failed = (await Promise.allSettled(writes)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Commits a writer opened with `ifAbsent` (a blob: the same name is always the same bytes).
 * 'stored'; or 'kept' when the blob was there already, which is then touched (gc's grace period);
 * or 'gone' when it was there but a collection took it before the touch: these bytes are not
 * stored either, and the caller must write them again or fail.
 */
export async function commitOnce(w: DriverWriter, touch: () => Promise<boolean>): Promise<'stored' | 'kept' | 'gone'> {
  try {
    await w.commit();
    return 'stored';
  } catch (err) {
    await w.cancel();
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return (await touch()) ? 'kept' : 'gone';
}

/** Counts and hashes a chunk on its way to disk, and stops it at the first byte over a limit. */
class ChunkMeter extends Transform {
  bytes = 0;
  constructor(
    private readonly hash: RunningDigest | undefined,
    private readonly limit: number,
    private readonly onOver: () => OciError,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return cb(this.onOver());
    bodyBytesConsumed(chunk.length);
    const room = this.hash?.update(chunk);
    if (room) room.then(() => cb(null, chunk), cb);
    else cb(null, chunk);
  }
}

/** An upload session this process started: its repository, acknowledged offset and running hash. */
interface LiveSession {
  repo: string;
  /** Made by the first chunk, whose length decides where it is computed. */
  hash?: RunningDigest;
  offset: number;
  /** An offset record was written (so ending the session must remove it). */
  recorded: boolean;
}

/** Where a session stands: its acknowledged offset, and whether it may have a data object. */
interface SessionAt {
  offset: number;
  data: boolean;
}

/** An offset record as written here; undefined for anything else (never ours: the session is gone). */
function parseRecord(raw: Buffer): SessionAt | undefined {
  try {
    const v = JSON.parse(raw.toString('utf8')) as { offset?: unknown; data?: unknown };
    if (typeof v.offset === 'number' && Number.isSafeInteger(v.offset) && v.offset >= 0) return { offset: v.offset, data: v.offset > 0 || v.data === true };
  } catch {
    // Not JSON.
  }
  return undefined;
}

function unknownSession(id: string): OciError {
  return new OciError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown or has ended`);
}

/**
 * Resumable upload sessions. A session is its data file plus, once a chunk was acknowledged, an
 * `info` record of that offset, written atomically after the chunk's bytes are synced (no record:
 * offset 0). So the offset only ever moves by whole accepted chunks: a chunk cut short by the
 * client, a length lie, or a `kill -9` leaves bytes past the offset that the next write overwrites
 * and cuts off. A session survives a restart with nothing else to recover. The running sha256 is
 * kept in memory as an optimisation; after a restart it is rebuilt from the file at the end.
 * A POST then PUT of a small blob thus makes one file, which becomes the blob: on some file systems
 * each new inode costs more than everything else the request does.
 */
export class Uploads {
  /** Sessions this process started, by id. */
  private readonly live = new Map<string, LiveSession>();
  /** The chunks of one upload must not interleave. */
  private readonly mutex = new KeyedLock();

  constructor(
    private readonly driver: StorageDriver,
    private readonly maxBlobSize: number = Number.MAX_SAFE_INTEGER,
    /** Refreshes a stored blob's mtime for a concurrent gc; false when it is not stored. */
    private readonly touch: (digest: Digest) => Promise<boolean> = async (d) => (await driver.touch(paths.blobData(d))) !== undefined,
    /** RegistryStoreOptions.replicated: the offsets this process holds may be stale. */
    private readonly replicated = false,
  ) {}

  /**
   * Replicated over an object store, a session starts as its record alone (in the database): its
   * data object is made by its first chunk, so that a POST then PUT of a whole blob costs the
   * store one request (the blob) instead of four (an empty object, its stat, the blob, its delete).
   */
  private get lazyData(): boolean {
    return this.replicated && this.driver.objectStore === true;
  }

  async start(repo: string): Promise<UploadStatus> {
    const id = randomUUID();
    // Not synced: a session that holds no bytes is cheap to lose to a power cut (the client starts
    // again); every chunk acknowledged later syncs its bytes and this directory (the offset record).
    if (!this.lazyData) await this.driver.put(paths.uploadData(repo, id), '', { durable: false });
    // Replicated, the records are where the purge looks for sessions (the database): a session
    // abandoned before its first chunk, in a repository with nothing else yet, is found too.
    if (this.replicated) await this.driver.put(paths.uploadInfo(repo, id), JSON.stringify({ offset: 0 }), { durable: false });
    this.live.set(id, { repo, offset: 0, recorded: this.replicated });
    return { id, offset: 0 };
  }

  async status(repo: string, id: string): Promise<UploadStatus> {
    if (!UPLOAD_ID.test(id)) throw new OciError('BLOB_UPLOAD_UNKNOWN', `upload "${id.slice(0, 64)}" is unknown`);
    return { id, offset: await this.offsetOf(repo, id) };
  }

  /** The acknowledged offset of a session; BLOB_UPLOAD_UNKNOWN when there is none. */
  private async offsetOf(repo: string, id: string): Promise<number> {
    return (await this.sessionAt(repo, id)).offset;
  }

  /** offsetOf, and whether the session may have a data object (always, unless lazyData). */
  private async sessionAt(repo: string, id: string): Promise<SessionAt> {
    // Checked before any path is built from it.
    if (!UPLOAD_ID.test(id)) throw new OciError('BLOB_UPLOAD_UNKNOWN', `upload "${id.slice(0, 64)}" is unknown`);
    // A session this process holds has the offset its record says: no need to read the record,
    // unless another replica may have written since.
    const live = this.held(repo, id);
    if (live && !this.replicated) return { offset: live.offset, data: true };
    const at = this.lazyData ? await this.recordedLazily(repo, id) : { offset: await this.recordedOffset(repo, id), data: true };
    // Chunks went through another replica: this process's running digest has not seen them.
    if (live && live.offset !== at.offset) this.live.delete(id);
    return at;
  }

  private async recordedOffset(repo: string, id: string): Promise<number> {
    const [raw, data] = await Promise.all([this.driver.get(paths.uploadInfo(repo, id)), this.driver.stat(paths.uploadData(repo, id))]);
    // A record without its data: the session ended (its data became the blob, or was removed)
    // and a crash came before the record went.
    if (data?.isDir === false) {
      if (!raw) return 0;
      const record = parseRecord(raw);
      if (record) return record.offset;
    }
    throw unknownSession(id);
  }

  /**
   * lazyData's sessions: the record says it all at offset 0 (bytes in a data object past the
   * offset are unacknowledged, and the next chunk overwrites them); past 0, the data object must
   * be there too, or the session ended and a crash came before its record went.
   */
  private async recordedLazily(repo: string, id: string): Promise<SessionAt> {
    const raw = await this.driver.get(paths.uploadInfo(repo, id));
    const record = raw && parseRecord(raw);
    if (!record) throw unknownSession(id);
    if (record.offset === 0) return record;
    if ((await this.driver.stat(paths.uploadData(repo, id)))?.isDir !== false) throw unknownSession(id);
    return { offset: record.offset, data: true };
  }

  /** The state of a session of `repo` that this process started; undefined for any other. */
  private held(repo: string, id: string): LiveSession | undefined {
    const live = this.live.get(id);
    return live?.repo === repo ? live : undefined;
  }

  /** Whether a session may have an offset record: not if this process started it and wrote none. */
  private hasRecord(repo: string, id: string): boolean {
    // Another replica may have written one.
    return this.replicated || (this.held(repo, id)?.recorded ?? true);
  }

  /**
   * Ends a session: the data goes first (`dataGone`: it became the blob already), then the record.
   * A crash in between leaves a record without data, which reads as an ended session; the other
   * order left data without a record, which reads as a session at offset 0, forgetting every
   * acknowledged byte of an upload whose blob was never stored.
   */
  private async end(repo: string, id: string, dataGone = false, hasRecord = this.hasRecord(repo, id)): Promise<void> {
    this.live.delete(id);
    if (!dataGone) await this.driver.delete(paths.uploadData(repo, id));
    if (hasRecord) await this.driver.delete(paths.uploadInfo(repo, id));
  }

  async append(repo: string, id: string, body: Readable, opts: AppendOptions = {}): Promise<UploadStatus> {
    return this.mutex.exclusive(id, () => this.appendLocked(repo, id, body, opts));
  }

  /** The length a chunk declares, once its position and lengths agree; it must start at `offset`. */
  private chunkLength(offset: number, body: Readable, opts: AppendOptions): number | undefined {
    const cr = opts.contentRange;
    if (cr && cr.start !== offset) {
      body.resume();
      throw new WharfError('RANGE_INVALID', `chunk starts at ${cr.start}, but the upload has ${offset} bytes; resume at ${offset}`, { detail: { offset } });
    }
    const expected = cr ? cr.end - cr.start + 1 : opts.contentLength;
    if (cr && opts.contentLength !== undefined && opts.contentLength !== expected) {
      body.resume();
      throw new OciError('SIZE_INVALID', `Content-Range covers ${expected} bytes but Content-Length is ${opts.contentLength}`);
    }
    return expected;
  }

  /** Counts (and hashes) a chunk that may bring the upload from `offset` up to the blob size limit. */
  private meter(offset: number, expected: number | undefined, hash: RunningDigest | undefined): ChunkMeter {
    const limit = Math.min(expected ?? Number.MAX_SAFE_INTEGER, this.maxBlobSize - offset);
    return new ChunkMeter(hash, limit, () =>
      expected !== undefined && expected <= this.maxBlobSize - offset
        ? new OciError('SIZE_INVALID', `chunk is longer than the declared ${expected} bytes`)
        : new OciError('SIZE_INVALID', `blob exceeds the limit of ${this.maxBlobSize} bytes`, { status: 413 }),
    );
  }

  /**
   * `record: false` is for the final PUT: its bytes are committed into the blob store right after,
   * or the session ends, so recording the new offset would only cost two fsyncs. If the server
   * dies in between, the bytes past the recorded offset are cut off like any unacknowledged chunk.
   * `known`: where the session stands, when the caller just read it under the same lock.
   */
  private async appendLocked(repo: string, id: string, body: Readable, opts: AppendOptions, record = true, known?: SessionAt): Promise<UploadStatus> {
    const { offset, data } = known ?? (await this.sessionAt(repo, id));
    const expected = this.chunkLength(offset, body, opts);
    const state = this.held(repo, id);
    const inStep = state !== undefined && state.offset === offset;
    if (inStep) state.hash ??= runningDigest('sha256', expected);
    // hash.copy() lets a failed chunk roll the running digest back with the file.
    const before = inStep ? state.hash?.copy() : undefined;
    const meter = this.meter(offset, expected, inStep ? state.hash : undefined);
    if (!data) {
      // The record says there may be data before the data is made: ending the session deletes it.
      await this.driver.put(paths.uploadInfo(repo, id), JSON.stringify({ offset: 0, data: true }), { durable: false });
      await this.driver.put(paths.uploadData(repo, id), '', { durable: false });
    }
    const w = await this.driver.writer(paths.uploadData(repo, id), { appendAt: offset, size: expected });
    let recording = false;
    try {
      await pipeline(body, meter, w, opts.signal ? { signal: opts.signal } : {});
      if (expected !== undefined && meter.bytes !== expected) {
        throw new OciError('SIZE_INVALID', `chunk has ${meter.bytes} bytes, expected ${expected}`);
      }
      // Bytes first, then the record that acknowledges them.
      await w.commit();
      recording = record;
      if (record) {
        if (state) state.recorded = true;
        await this.driver.put(paths.uploadInfo(repo, id), JSON.stringify({ offset: offset + meter.bytes }));
      }
    } catch (err) {
      await w.cancel();
      // Until the record is written the session's offset stays where it was, so the running hash
      // rolls back with the file; a record that failed may have landed all the same, and then
      // the session is forgotten here and read from its record next time.
      if (before && state && !recording) state.hash = before;
      else this.live.delete(id);
      throw err;
    }
    if (inStep) state.offset = offset + meter.bytes;
    return { id, offset: offset + meter.bytes };
  }

  /**
   * Appends the last chunk (if any), checks the whole upload against `digest`, and moves it into
   * the blob store while `onVerified` runs (the repository's link: the two writes wait on the disk
   * together; a link whose blob a crash lost reads as an unknown blob). Returns the blob's size,
   * and whether these bytes became the stored blob (false when it was stored already). A digest
   * mismatch ends the session, as Distribution does.
   */
  async finish(repo: string, id: string, digest: Digest, body: Readable | undefined, opts: AppendOptions = {}, onVerified?: () => Promise<void>): Promise<{ size: number; stored: boolean; version?: string | undefined }> {
    return this.mutex.exclusive(id, async () => {
      const { offset: at, data } = await this.sessionAt(repo, id);
      if (this.driver.objectStore && at === 0) return this.finishWhole(repo, id, digest, body ?? Readable.from([]), opts, onVerified, !data);
      const { offset } = await this.appendLocked(repo, id, body ?? Readable.from([]), opts, false, { offset: at, data });
      const state = this.held(repo, id);
      const hasRecord = this.hasRecord(repo, id);
      // The running hash is spent and the last offset was not recorded: a retry after a failure
      // below reads the record and hashes the file.
      this.live.delete(id);
      const { algorithm } = parseDigest(digest);
      let got: string;
      if (state?.hash && state.offset === offset && algorithm === 'sha256') got = await state.hash.digest();
      else got = await this.hashFile(paths.uploadData(repo, id), algorithm);
      if (got !== digest) {
        await this.end(repo, id, false, hasRecord);
        throw new OciError('DIGEST_INVALID', `uploaded content has digest ${got}, not ${digest}`, { detail: { digest } });
      }
      // Same content already stored: keep it, and refresh its mtime for a concurrent gc.
      const stored = !(await this.touch(digest));
      // The blob and its link are in place before the session ends: a crash at any point leaves
      // the session with its acknowledged bytes, or the blob (docs/STORAGE.md, "Uploads").
      const move = async (): Promise<void> => (stored ? this.driver.move(paths.uploadData(repo, id), paths.blobData(digest)) : undefined);
      await allDone([move(), onVerified?.()]);
      await this.end(repo, id, stored, hasRecord);
      return { size: offset, stored };
    });
  }

  /**
   * A session whose whole blob comes with its final PUT, on an object store: the bytes go straight
   * to the blob's name, hashed on the way, and the write commits only if the digest matched (the
   * driver holds back the last bytes until then, so nothing is visible before). A session's bytes
   * would otherwise be written once and then copied inside the store.
   */
  private async finishWhole(repo: string, id: string, digest: Digest, body: Readable, opts: AppendOptions, onVerified: (() => Promise<void>) | undefined, noData: boolean): Promise<{ size: number; stored: boolean; version?: string | undefined }> {
    const expected = this.chunkLength(0, body, opts);
    const hasRecord = this.hasRecord(repo, id);
    this.live.delete(id);
    const hash = runningDigest(parseDigest(digest).algorithm, expected);
    const meter = this.meter(0, expected, hash);
    // Written only where the blob is not: the store checks that in the write, with no request of its own.
    const w = await this.driver.writer(paths.blobData(digest), expected === undefined ? { ifAbsent: true } : { size: expected, ifAbsent: true });
    try {
      await pipeline(body, meter, w, opts.signal ? { signal: opts.signal } : {});
      if (expected !== undefined && meter.bytes !== expected) throw new OciError('SIZE_INVALID', `chunk has ${meter.bytes} bytes, expected ${expected}`);
      const got = await hash.digest();
      if (got !== digest) {
        await w.cancel();
        await this.end(repo, id, noData, hasRecord);
        throw new OciError('DIGEST_INVALID', `uploaded content has digest ${got}, not ${digest}`, { detail: { digest } });
      }
      let stored = true;
      const commit = async (): Promise<void> => {
        // Same content already stored: it stays. Gone meanwhile, the bytes sent are not here either.
        const how = await commitOnce(w, () => this.touch(digest));
        stored = how === 'stored';
        if (how === 'gone') throw new OciError('BLOB_UPLOAD_INVALID', `blob ${digest} was being removed by a garbage collection as it arrived; push it again`);
      };
      await allDone([commit(), onVerified?.()]);
      await this.end(repo, id, noData, hasRecord);
      return { size: meter.bytes, stored, version: stored ? w.version : undefined };
    } catch (err) {
      await w.cancel();
      throw err;
    }
  }

  async cancel(repo: string, id: string): Promise<void> {
    await this.status(repo, id);
    await this.mutex.exclusive(id, () => this.end(repo, id));
  }

  private async hashFile(path: string, algorithm: 'sha256' | 'sha512'): Promise<string> {
    const h = createDigester(algorithm);
    for await (const chunk of await this.driver.reader(path)) h.update(chunk as Buffer);
    return `${algorithm}:${h.digest('hex')}`;
  }

  /**
   * Removes sessions untouched for `maxAgeMs` in `repos` (with `dryRun`, only lists them). Returns
   * them with the bytes each held, for gc's report and the audit log.
   */
  async purge(repos: string[], maxAgeMs: number, opts: { now?: number; dryRun?: boolean } = {}): Promise<StaleUpload[]> {
    const now = opts.now ?? Date.now();
    const out: StaleUpload[] = [];
    for (const repo of repos) {
      const names = await this.driver.list(paths.uploads(repo));
      // A record whose data file is gone (a crash while a session ended) goes with its session.
      const ids = new Set(names.map((f) => f.replace(/\.info$/, '')).filter((id) => UPLOAD_ID.test(id)));
      for (const id of ids) {
        const data = await this.driver.stat(paths.uploadData(repo, id));
        // lazyData's sessions have no data until their first chunk: the record's age is theirs.
        const st = data ?? (this.lazyData ? await this.driver.stat(paths.uploadInfo(repo, id)) : undefined);
        if (!st || now - st.mtimeMs > maxAgeMs) {
          if (!opts.dryRun) await this.mutex.exclusive(id, () => this.end(repo, id, data === undefined));
          out.push({ repo, id, bytes: data?.size ?? 0, idleMs: st ? now - st.mtimeMs : 0 });
        }
      }
    }
    return out;
  }
}
