/** What the store keeps in memory: manifests by digest, and which blob files were verified. */

/** A verified manifest body and the media type it names (or its shape implies). */
export interface CachedManifest {
  body: Buffer;
  mediaType: string;
}

/** A byte-bounded LRU of manifests by digest. */
export class ManifestCache {
  private readonly map = new Map<string, CachedManifest>();
  private bytes = 0;
  constructor(private readonly max: number) {}
  get(digest: string): CachedManifest | undefined {
    const m = this.map.get(digest);
    if (m) {
      this.map.delete(digest);
      this.map.set(digest, m);
    }
    return m;
  }
  set(digest: string, m: CachedManifest): void {
    if (m.body.length > this.max || this.map.has(digest)) return;
    this.map.set(digest, m);
    this.bytes += m.body.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.max) break;
      this.map.delete(k);
      this.bytes -= v.body.length;
    }
  }
}

/**
 * Blob files hashed whole with a matching digest, by the driver's version of the file then; each
 * entry is good for `maxAge` ms, after which the next read hashes the file again (bit rot).
 */
export class VerifiedFiles {
  private readonly map = new Map<string, { version: string; at: number }>();
  constructor(private readonly maxAge: number) {}
  has(digest: string, version: string | undefined): boolean {
    const e = this.map.get(digest);
    return version !== undefined && e !== undefined && e.version === version && Date.now() - e.at < this.maxAge;
  }
  /** `fresh: false` keeps the time of the last hashing (a touch is no new verification). */
  add(digest: string, version: string | undefined, fresh = true): void {
    if (version === undefined) return;
    const at = fresh ? Date.now() : (this.map.get(digest)?.at ?? 0);
    this.map.delete(digest);
    this.map.set(digest, { version, at });
    if (this.map.size > 100_000) this.map.delete(this.map.keys().next().value!);
  }
}
