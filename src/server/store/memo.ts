/** What the store keeps in memory: manifests by digest, and which blob files were verified. */

/** A verified manifest body and the media type it names (or its shape implies). */
export interface CachedManifest {
  body: Buffer;
  mediaType: string;
}

/**
 * What an entry costs besides its body and key, in bytes: the Buffer object and its ArrayBuffer,
 * the entry object, its media type string and the Map's slot. Measured with Node 20 (heapUsed and
 * arrayBuffers after a full collection, 50,000 manifests of 395 bytes): 438 bytes of heap and
 * the body's own bytes outside it. Counting the body alone, the cache's 64 MiB of small manifests
 * held 3x that: 364 bytes of heap and 910 of pooled buffer per 395-byte body.
 */
const MANIFEST_OVERHEAD = 450;

/** A heap string's size: a 16-byte header, then one byte per char (digests and versions are ASCII). */
const stringBytes = (s: string): number => 16 + s.length;

/** A byte-bounded LRU of manifests by digest; bytes are what entries hold in memory, not their bodies alone. */
export class ManifestCache {
  private readonly map = new Map<string, CachedManifest>();
  private bytes = 0;
  constructor(private readonly max: number) {}
  get size(): { entries: number; bytes: number } {
    return { entries: this.map.size, bytes: this.bytes };
  }
  get(digest: string): CachedManifest | undefined {
    const m = this.map.get(digest);
    if (m) {
      this.map.delete(digest);
      this.map.set(digest, m);
    }
    return m;
  }
  set(digest: string, m: CachedManifest): void {
    const cost = costOf(digest, m.body);
    if (cost > this.max || this.map.has(digest)) return;
    this.map.set(digest, { body: ownBytes(m.body), mediaType: m.mediaType });
    this.bytes += cost;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.max) break;
      this.map.delete(k);
      this.bytes -= costOf(k, v.body);
    }
  }
}

const costOf = (digest: string, body: Buffer): number => body.length + stringBytes(digest) + MANIFEST_OVERHEAD;

/**
 * The body in memory of its own. A small body read from a request is a view into an 8 KiB pool
 * that Buffer.allocUnsafe shares among allocations (Buffer.concat uses it), and a body read from
 * disk may be a view into a larger buffer: kept as it is, one cached manifest holds all of it.
 */
function ownBytes(body: Buffer): Buffer {
  if (body.byteOffset === 0 && body.buffer.byteLength === body.length) return body;
  const own = Buffer.allocUnsafeSlow(body.length);
  body.copy(own);
  return own;
}

/**
 * What a VerifiedFiles entry costs besides its key and version strings: the entry object, its
 * time and the Map's slot. Measured with Node 20: 292 bytes of heap per entry in all.
 */
const VERIFIED_OVERHEAD = 110;

/**
 * Blob files hashed whole with a matching digest, by the driver's version of the file then; each
 * entry is good for `maxAge` ms, after which the next read hashes the file again (bit rot). At most
 * `maxBytes` of memory (4 MiB: some 13,000 files), the least recently read, verified or touched
 * first to go: a forgotten file is hashed again on its next whole read, no more.
 */
export class VerifiedFiles {
  private readonly map = new Map<string, { version: string; at: number }>();
  private bytes = 0;
  constructor(
    private readonly maxAge: number,
    private readonly maxBytes = 4 << 20,
  ) {}
  get size(): { entries: number; bytes: number } {
    return { entries: this.map.size, bytes: this.bytes };
  }
  has(digest: string, version: string | undefined): boolean {
    const e = this.map.get(digest);
    const ok = version !== undefined && e !== undefined && e.version === version && Date.now() - e.at < this.maxAge;
    if (ok) {
      // A file read often stays; a stream of pushes evicts those nobody reads.
      this.map.delete(digest);
      this.map.set(digest, e);
    }
    return ok;
  }
  /** `fresh: false` keeps the time of the last hashing (a touch is no new verification). */
  add(digest: string, version: string | undefined, fresh = true): void {
    if (version === undefined) return;
    const old = this.map.get(digest);
    const at = fresh ? Date.now() : (old?.at ?? 0);
    if (old) {
      this.map.delete(digest);
      this.bytes -= verifiedCost(digest, old.version);
    }
    this.map.set(digest, { version, at });
    this.bytes += verifiedCost(digest, version);
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= verifiedCost(k, v.version);
    }
  }
}

const verifiedCost = (digest: string, version: string): number => stringBytes(digest) + stringBytes(version) + VERIFIED_OVERHEAD;
