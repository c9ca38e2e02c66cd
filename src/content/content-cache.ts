import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { once } from 'node:events';
import { isDigest, parseDigest, type Descriptor } from '../spec/index.js';
import { verifyReader } from './verify.js';
import { fileReader } from './files.js';

/**
 * A local content-addressed cache of blobs and manifests (`WHARF_CACHE`), shared by every
 * registry: content is immutable by digest, so a second pull of the same digest needs no network.
 * Entries are written to a temp file while they stream to the caller, and renamed into place only
 * once the whole stream has been verified; every read from the cache is verified again, and a
 * damaged entry is dropped. Tags are never cached: they move.
 */
export class ContentCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  private path(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, hex);
  }

  private descriptorPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'descriptors', algorithm, `${hex}.json`);
  }

  async has(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    try {
      return (await stat(this.path(desc.digest))).size === desc.size;
    } catch {
      return false;
    }
  }

  /**
   * The cached content, or undefined on a miss. The entry is hashed before it is handed out, so a
   * damaged entry is dropped and reads as a miss (the caller refetches) instead of failing the
   * caller halfway through; the stream is verified again as it is read.
   */
  async open(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable | undefined> {
    if (!(await this.has(desc))) return undefined;
    const p = this.path(desc.digest);
    const { algorithm, hex } = parseDigest(desc.digest);
    const hash = createHash(algorithm);
    try {
      for await (const chunk of fileReader(p)) hash.update(chunk as Buffer);
    } catch {
      return undefined;
    }
    if (hash.digest('hex') !== hex) {
      await rm(p, { force: true });
      return undefined;
    }
    const now = new Date();
    await utimes(p, now, now).catch(() => undefined); // last use, for pruning by age
    const r = verifyReader(fileReader(p), desc);
    r.once('error', () => void rm(p, { force: true }));
    return r;
  }

  /**
   * Passes `src` (already verified by its store) through to the caller while writing it to the
   * cache; the entry appears only when the stream ended cleanly. A failure of the cache itself
   * (disk full) never fails the caller's read.
   */
  tee(desc: Pick<Descriptor, 'digest' | 'size'>, src: Readable): Readable {
    const final = this.path(desc.digest);
    const tmp = join(this.dir, 'tmp', `${Date.now()}-${randomBytes(6).toString('hex')}`);
    let file: ReturnType<typeof createWriteStream> | undefined;
    let broken = false;
    const ready = mkdir(join(this.dir, 'tmp'), { recursive: true }).then(
      () => {
        file = createWriteStream(tmp);
        file.on('error', () => (broken = true));
      },
      () => (broken = true),
    );
    const drop = (): void => {
      broken = true;
      file?.destroy();
      void rm(tmp, { force: true });
    };
    const t = new Transform({
      transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
        ready.then(async () => {
          if (!broken && file && !file.write(chunk)) await once(file, 'drain').catch(() => (broken = true));
          cb(null, chunk);
        }, cb);
      },
      flush(cb: TransformCallback) {
        ready
          .then(async () => {
            if (broken || !file) return;
            file.end();
            await once(file, 'finish');
            await mkdir(join(final, '..'), { recursive: true });
            await rename(tmp, final);
          })
          .catch(drop)
          .finally(() => cb());
      },
    });
    src.on('error', (err) => {
      drop();
      t.destroy(err);
    });
    t.on('close', () => {
      if (!t.writableFinished) drop();
    });
    return src.pipe(t);
  }

  /** Remembers the descriptor of a manifest digest, so that resolving it needs no network. */
  async rememberDescriptor(desc: Descriptor): Promise<void> {
    if (!isDigest(desc.digest)) return;
    const p = this.descriptorPath(desc.digest);
    try {
      await mkdir(join(p, '..'), { recursive: true });
      const tmp = `${p}.${randomBytes(4).toString('hex')}`;
      await writeFile(tmp, JSON.stringify({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size }));
      await rename(tmp, p);
    } catch {
      // A cache that cannot write is only slower.
    }
  }

  async descriptor(digest: string): Promise<Descriptor | undefined> {
    if (!isDigest(digest)) return undefined;
    try {
      const d = JSON.parse(await readFile(this.descriptorPath(digest), 'utf8')) as Descriptor;
      return d.digest === digest && typeof d.mediaType === 'string' && Number.isSafeInteger(d.size) ? d : undefined;
    } catch {
      return undefined;
    }
  }
}
