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
export interface DriverWriter extends Writable {
  commit(): Promise<void>;
  cancel(): Promise<void>;
}

/** A file open for reads at any position: large content is sent through a few reused buffers. */
export interface FileReader {
  /** Reads up to `into.length` bytes at `position`; 0 at the end of the file. */
  read(into: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
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

/**
 * The storage driver: a dumb, path-keyed store of bytes, as Distribution's StorageDriver. Paths
 * are relative, '/'-separated, and built only by the registry store from validated names; drivers
 * still refuse any path that could leave their root. The registry logic makes no filesystem calls
 * of its own, so an S3 driver only has to implement this.
 */
export interface StorageDriver {
  stat(path: string): Promise<FileInfo | undefined>;
  /** A small file, whole. Undefined when it does not exist. */
  get(path: string): Promise<Buffer | undefined>;
  /**
   * Atomically replaces `path` with `data` (temp, fsync, rename). `durable: false` skips the
   * syncs: the file still survives the process, but not a power cut (an upload session that holds
   * no bytes yet, which a client that finds it gone simply starts again).
   */
  put(path: string, data: Uint8Array | string, opts?: PutOptions): Promise<void>;
  /**
   * Opens a file for positional reads; fails when it does not exist. `sequential`: the whole file
   * will be read once, start to end, in chunks of up to 1 MiB, so the driver may read around its
   * cache.
   */
  open(path: string, opts?: { sequential?: boolean }): Promise<FileReader>;
  /** Streams a file, or the inclusive byte range [start, end] of it. */
  reader(path: string, range?: { start: number; end: number }): Promise<Readable>;
  /**
   * A writer for a new file, or one that writes an existing file from `appendAt` on: on commit the
   * file ends where the written bytes end; on cancel it is cut back to `appendAt`. `size`, the
   * bytes the caller expects to write, lets a driver pick how to write them.
   */
  writer(path: string, opts?: { appendAt?: number; size?: number }): Promise<DriverWriter>;
  /** Names of the entries of a directory; [] when it does not exist. */
  list(path: string): Promise<string[]>;
  /** Atomic rename; creates the destination's parents. Fails if `from` does not exist. */
  move(from: string, to: string): Promise<void>;
  /** Removes a file or a whole directory; no error when it is already gone. */
  delete(path: string): Promise<void>;
  /** Marks a file as recently used (garbage collection's grace period). False when it is gone. */
  touch(path: string): Promise<boolean>;
}
