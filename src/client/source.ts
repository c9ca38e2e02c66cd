import { Readable, Transform } from 'node:stream';
import { OciError, isManifestMediaType, type Descriptor } from '../spec/index.js';
import { fileReader, verifyReader, type OpOptions, type ReadOnlyStorage, type ReadOnlyTarget } from '../content/index.js';

/**
 * Local content about to be pushed: files on disk and small in-memory documents (manifests,
 * configs) by digest. Pushing is then one `copyGraph(source, destination, manifest)`, the same
 * engine as every other copy, with its skipping of present blobs and its parallelism.
 */
export class LocalSource implements ReadOnlyTarget {
  private readonly items = new Map<string, { desc: Descriptor; path?: string; data?: Buffer }>();

  addFile(desc: Descriptor, path: string): void {
    this.items.set(desc.digest, { desc, path });
  }

  addBytes(desc: Descriptor, data: Buffer): void {
    this.items.set(desc.digest, { desc, data });
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.items.has(desc.digest);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const it = this.items.get(desc.digest);
    if (!it) throw new OciError(isManifestMediaType(desc.mediaType) ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `${desc.digest} is not part of this push`);
    // Files are verified again as they are read: a file changed since it was hashed is an error.
    return verifyReader(it.path ? fileReader(it.path) : Readable.from([it.data!]), desc);
  }

  async resolve(reference: string): Promise<Descriptor> {
    const it = this.items.get(reference);
    if (!it) throw new OciError('MANIFEST_UNKNOWN', `${reference} not found`);
    return it.desc;
  }
}

/** Progress of a transfer, by descriptor. */
export interface ProgressListener {
  /** A node is about to be transferred. */
  start?(desc: Descriptor): void;
  /** `n` more bytes of `desc` went through. */
  bytes?(desc: Descriptor, n: number): void;
  done?(desc: Descriptor): void;
  /** Already present at the destination (or mounted): nothing was sent. */
  skipped?(desc: Descriptor): void;
  /**
   * A transfer started under a stand-in descriptor (a file uploaded as it is hashed) now has its
   * digest: calls after this one name `desc`.
   */
  identified?(pending: Descriptor, desc: Descriptor): void;
}

/** Wraps a source so that the bytes read from it are reported to `listener`. */
export function withProgress<T extends ReadOnlyStorage>(src: T, listener: ProgressListener | undefined): ReadOnlyStorage {
  if (!listener?.bytes) return src;
  return {
    exists: (d: Descriptor, o?: OpOptions) => src.exists(d, o),
    fetch: async (d: Descriptor, o?: OpOptions) => {
      const r = await src.fetch(d, o);
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          listener.bytes!(d, chunk.length);
          cb(null, chunk);
        },
      });
      r.on('error', (err) => counter.destroy(err));
      return r.pipe(counter);
    },
  };
}
