import type { Readable, Writable } from 'node:stream';

export interface FileInfo {
  size: number;
  mtimeMs: number;
  isDir: boolean;
  /**
   * Changes whenever the file's content may have changed (a local file: device, inode, size,
   * mtime and ctime in ns; ctime moves on every write and cannot be set back). Absent when the
   * driver cannot tell: then nothing is taken as unchanged.
   */
  version?: string;
}

/**
 * A writer that makes nothing visible until `commit()`. For a new file the bytes go to a temporary
 * key that commit renames into place; for an append, cancel() cuts the file back to where it was.
 */
export interface WriterOptions {
  /** Writes an existing file from this offset on, instead of a new file. */
  appendAt?: number;
  /** The bytes the caller expects to write: lets a driver pick how to write them. */
  size?: number;
  /**
   * A new file only where none is: commit() fails with EEXIST, and leaves the file as it was, if
   * the path exists by then. An object store checks it in the write itself (a conditional PUT),
   * which spares the request that would ask first.
   */
  ifAbsent?: boolean;
}

export interface DriverWriter extends Writable {
  commit(): Promise<void>;
  /** After commit(): the file's version (FileInfo.version) when the write's answer gave it, as an object store's does; else stat() tells. */
  readonly version?: string | undefined;
  cancel(): Promise<void>;
}

/** A file open for reads at any position: large content is sent through a few reused buffers. */
export interface FileReader {
  /** Reads up to `into.length` bytes at `position`; 0 at the end of the file. */
  read(into: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Bytes on their way into the store under no name yet (a pull-through cache fill): appended as
 * they arrive, readable while they grow, then renamed into place whole or dropped. Reads keep
 * working after commit() or cancel() until close(), so readers that follow a fill can finish.
 */
export interface Staged {
  /** Takes bytes to append (the caller hands its buffers over); resolves when it may append more. */
  append(bufs: Buffer[]): Promise<void>;
  /** Bytes from the start that read() sees. */
  readonly written: number;
  /** Reads up to `into.length` bytes at `position` of what was written; 0 past its end. */
  read(into: Uint8Array, position: number): Promise<number>;
  /** Writes out all that was appended, makes it durable and atomically names it `path`. */
  commit(path: string): Promise<void>;
  /** Drops the bytes: nothing is left under any name. */
  cancel(): Promise<void>;
  /** Releases what reads hold; call once after commit() or cancel() when no reader needs it. */
  close(): Promise<void>;
}

export interface StageOptions {
  /** The bytes the caller expects (a Content-Length), so the driver can pick how to write them. */
  size?: number;
  /** Called whenever `written` has grown. */
  onWritten?: () => void;
}

export interface PutOptions {
  durable?: boolean;
  /**
   * Writes this put must not overtake: the bytes are written and synced meanwhile, but the file
   * takes its name only once `after` has resolved (a tag once its manifest is on disk). When it
   * rejects, nothing is written and put rejects with its reason.
   */
  after?: Promise<unknown>;
}

/** A file's stat from before a touch; `touched`: its version after, when the touch's answer gave it (an object store's copy). */
export interface Touched extends FileInfo {
  touched?: string | undefined;
}

/** What a driver that keeps small files in memory holds (PgDriver), and how its reads were answered. */
export interface KeptStats {
  entries: number;
  bytes: number;
  /** Reads answered from memory, and reads that asked the database. */
  fromMemory: number;
  fromDatabase: number;
}

/**
 * The storage driver: a dumb, path-keyed store of bytes, as Distribution's StorageDriver. Paths
 * are relative, '/'-separated, and built only by the registry store from validated names; drivers
 * still refuse any path that could leave their root. Nothing outside src/server/driver touches
 * stored content any other way, so a new backend (memory, S3) only has to implement this; one
 * contract suite (src/testkit/driver-suite.ts) runs against every driver.
 */
export interface StorageDriver {
  /**
   * An object store (S3): a move copies inside the store, an append is emulated, and a new file
   * is written whole only when its length is known. The registry then writes a blob that comes in
   * one request straight to its final name.
   */
  readonly objectStore?: boolean;
  stat(path: string): Promise<FileInfo | undefined>;
  /**
   * A small file, whole. Undefined when it does not exist. `since`, a mark from tick() taken when
   * a request started: a driver that keeps files in memory (PostgreSQL) may answer from them, but
   * never with a state older than what was acknowledged before that start.
   */
  get(path: string, opts?: { since?: number | undefined }): Promise<Buffer | undefined>;
  /** A mark for get()'s `since`; only a driver that keeps files has it. */
  tick?(): number;
  /** What a driver that keeps files holds, and how its reads of them were answered since it started (/metrics). */
  keptStats?(): KeptStats;
  /** Requests sent to an object store since the driver started, by operation (put, get, stat, copy...: /metrics). */
  storeRequests?(): ReadonlyMap<string, number>;
  /**
   * Atomically replaces `path` with `data` (temp, fsync, rename). `durable: false` skips the
   * syncs: the file still survives the process, but not a power cut (an upload session that holds
   * no bytes yet, which a client that finds it gone simply starts again).
   */
  put(path: string, data: Uint8Array | string, opts?: PutOptions): Promise<void>;
  /**
   * Opens a file for positional reads; fails when it does not exist. `sequential`: the whole file,
   * or a large range of it, will be read once, in order, in chunks of up to 1 MiB at page-aligned
   * positions (4 KiB), so the driver may read around its cache. `size`: the caller stat'ed the
   * file just before, so a driver for which a check is a round trip (S3) may skip it; a file gone
   * since then fails its first read instead.
   */
  open(path: string, opts?: { sequential?: boolean; size?: number }): Promise<FileReader>;
  /** Streams a file, or the inclusive byte range [start, end] of it. */
  reader(path: string, range?: { start: number; end: number }): Promise<Readable>;
  /**
   * A writer for a new file, or one that writes an existing file from `appendAt` on: on commit the
   * file ends where the written bytes end; on cancel it is cut back to `appendAt`.
   */
  writer(path: string, opts?: WriterOptions): Promise<DriverWriter>;
  /** Names of the entries of a directory; [] when it does not exist. */
  list(path: string): Promise<string[]>;
  /** Atomic rename; creates the destination's parents. Fails if `from` does not exist. */
  move(from: string, to: string): Promise<void>;
  /** Removes a file or a whole directory; no error when it is already gone. */
  delete(path: string): Promise<void>;
  /**
   * Marks a file as recently used (garbage collection's grace period). Returns its stat from
   * before the touch (so that a caller needs no stat of its own: one round trip less on an
   * object store), or undefined when it is gone.
   */
  touch(path: string): Promise<Touched | undefined>;
  /** Starts bytes that take a name only when complete (see Staged). */
  stage(opts?: StageOptions): Promise<Staged>;
  /**
   * Removes what writes a crash interrupted left behind (temporary files, staged bytes) once
   * older than `maxAgeMs`; returns how many went.
   */
  sweepTemp(maxAgeMs: number): Promise<number>;
  /**
   * A URL from which a client can GET the file itself for a while (an object store's presigned
   * URL), when the driver is set up to hand them out; undefined otherwise.
   */
  urlFor?(path: string): Promise<string | undefined>;
  /**
   * Throws, naming what failed, when what the driver keeps does not answer (an object store's
   * bucket, a database): /healthz asks. Absent where there is nothing to ask (a local disk).
   */
  ping?(): Promise<void>;
  /** Releases what the driver holds open (an object store's connections); the last call made. */
  close?(): Promise<void>;
}
