import { mkdtemp, rename, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { type Descriptor, WharfError, isWharfError } from '../../spec/index.js';
import type { OpOptions, Target, ReferrerLister, TagLister, Deleter } from '../../content/index.js';
import { LayoutStore, LAYOUT_FILE, INDEX_FILE } from './dir.js';

/**
 * An OCI image layout packed as a `.tar` (what `skopeo copy ... oci-archive:` reads and writes).
 * The archive is unpacked into a private temp directory and served from there by a LayoutStore;
 * `close()` packs it back (temp file, then rename over the archive) when anything was written, and
 * removes the temp directory either way.
 */
export class LayoutTarStore implements Target, ReferrerLister, TagLister, Deleter {
  readonly file: string;
  private readonly work: string;
  private readonly store: LayoutStore;
  private dirty = false;

  private constructor(file: string, work: string, store: LayoutStore) {
    this.file = file;
    this.work = work;
    this.store = store;
  }

  static async open(file: string, opts: { create?: boolean } = {}): Promise<LayoutTarStore> {
    let exists = true;
    try {
      await stat(file);
    } catch {
      exists = false;
    }
    if (!exists && opts.create === false) throw new WharfError('NOT_FOUND', `${file} does not exist`);
    const work = await mkdtemp(join(tmpdir(), 'wharf-layout-'));
    try {
      // node-tar refuses absolute and `..` paths by default, so an archive cannot write outside `work`.
      if (exists) {
        const tar = await import('tar'); // loaded when used: most commands that import this never open a tar
        await tar.x({ file, cwd: work, strict: true }).catch((err: unknown) => {
          throw new WharfError('INVALID_ARGUMENT', `${file} is not a readable tar archive: ${err instanceof Error ? err.message.replace(/^TAR_\w+: /, '') : String(err)}`);
        });
      }
      const store = await LayoutStore.open(work, { create: !exists }).catch((err: unknown) => {
        throw isWharfError(err, 'NOT_FOUND') ? new WharfError('NOT_FOUND', `${file} is not an OCI image layout archive (no oci-layout file)`) : err;
      });
      const t = new LayoutTarStore(file, work, store);
      if (!exists) t.dirty = true;
      return t;
    } catch (err) {
      await rm(work, { recursive: true, force: true });
      throw err;
    }
  }

  fetch(desc: Descriptor): Promise<Readable> {
    return this.store.fetch(desc);
  }
  statBlob(digest: Descriptor['digest']): Promise<Descriptor> {
    return this.store.statBlob(digest);
  }
  exists(desc: Descriptor): Promise<boolean> {
    return this.store.exists(desc);
  }
  resolve(reference: string): Promise<Descriptor> {
    return this.store.resolve(reference);
  }
  async push(desc: Descriptor, content: Readable, opts?: OpOptions): Promise<void> {
    this.dirty = true;
    await this.store.push(desc, content, opts);
  }
  async tag(desc: Descriptor, reference: string): Promise<void> {
    this.dirty = true;
    await this.store.tag(desc, reference);
  }
  tags(opts?: { last?: string; n?: number }): Promise<string[]> {
    return this.store.tags(opts);
  }
  referrers(subject: Descriptor, opts?: { artifactType?: string }): Promise<Descriptor[]> {
    return this.store.referrers(subject, opts);
  }
  async delete(desc: Descriptor): Promise<void> {
    this.dirty = true;
    await this.store.delete(desc);
  }
  indexManifests(): Promise<Descriptor[]> {
    return this.store.indexManifests();
  }

  /** Writes the archive if it changed, then drops the temp directory. */
  async close(opts: { discard?: boolean } = {}): Promise<void> {
    try {
      if (this.dirty && !opts.discard) {
        const tmp = join(dirname(this.file), `.${basename(this.file)}.${randomUUID()}.tmp`);
        try {
          const tar = await import('tar');
          await tar.c({ file: tmp, cwd: this.work, portable: true, noDirRecurse: false, filter: (p) => !/(^|\/)\.tmp-|\.tmp$/.test(p) }, [LAYOUT_FILE, INDEX_FILE, 'blobs']);
          await rename(tmp, this.file);
        } catch (err) {
          await unlink(tmp).catch(() => undefined);
          throw err;
        }
      }
    } finally {
      await rm(this.work, { recursive: true, force: true });
    }
  }
}
