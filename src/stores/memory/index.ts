import type { Readable } from 'node:stream';
import { Readable as R } from 'node:stream';
import { OciError, isDigest, type Descriptor, parseManifest, isManifestMediaType, referrerDescriptor, WharfError } from '../../spec/index.js';
import { readAllVerified, type OpOptions, type Target, type ReferrerLister, type TagLister, type Deleter } from '../../content/index.js';

/** A Map-backed Target: the reference implementation of the content interfaces, and a test double. */
export class MemoryStore implements Target, ReferrerLister, TagLister, Deleter {
  private readonly blobs = new Map<string, { desc: Descriptor; data: Buffer }>();
  private readonly tagMap = new Map<string, Descriptor>();

  async fetch(desc: Descriptor): Promise<Readable> {
    const e = this.blobs.get(desc.digest);
    if (!e) throw new OciError(isManifestMediaType(desc.mediaType) ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `${desc.digest} not found`);
    return R.from([e.data]);
  }

  async push(desc: Descriptor, content: Readable, opts: OpOptions = {}): Promise<void> {
    const data = await readAllVerified(content, desc, Number.MAX_SAFE_INTEGER);
    opts.signal?.throwIfAborted();
    this.blobs.set(desc.digest, { desc, data });
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.blobs.has(desc.digest);
  }

  async resolve(reference: string): Promise<Descriptor> {
    const d = isDigest(reference) ? this.blobs.get(reference)?.desc : this.tagMap.get(reference);
    if (!d) throw new OciError('MANIFEST_UNKNOWN', `${reference} not found`);
    return d;
  }

  async tag(desc: Descriptor, reference: string): Promise<void> {
    if (!this.blobs.has(desc.digest)) throw new OciError('MANIFEST_UNKNOWN', `${desc.digest} not found`);
    this.tagMap.set(reference, desc);
  }

  async tags(opts: { last?: string; n?: number } = {}): Promise<string[]> {
    const all = [...this.tagMap.keys()].sort().filter((t) => opts.last === undefined || t > opts.last);
    return opts.n === undefined ? all : all.slice(0, opts.n);
  }

  async referrers(subject: Descriptor, opts: { artifactType?: string } = {}): Promise<Descriptor[]> {
    const out: Descriptor[] = [];
    for (const { desc, data } of this.blobs.values()) {
      if (!isManifestMediaType(desc.mediaType)) continue;
      const info = parseManifest(data, desc.mediaType);
      if (info.subject?.digest !== subject.digest) continue;
      const r = referrerDescriptor(info, desc.digest, desc.size);
      if (!opts.artifactType || r.artifactType === opts.artifactType) out.push(r);
    }
    return out;
  }

  async delete(desc: Descriptor): Promise<void> {
    if (!this.blobs.delete(desc.digest)) throw new WharfError('NOT_FOUND', `${desc.digest} not found`);
    for (const [t, d] of this.tagMap) if (d.digest === desc.digest) this.tagMap.delete(t);
  }
}
