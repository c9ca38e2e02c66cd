import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciError, MediaType, MANIFEST_MEDIA_TYPES, assertName, isDigest, isOciError, isManifestMediaType, parseManifest, parseContentRange, digestOf, type Descriptor, type ImageIndex, WharfError, isWharfError } from '../../spec/index.js';
import {
  verifyChunks,
  markVerifying,
  readAllVerified,
  MAX_MANIFEST_SIZE,
  type ContentCache,
  type OpOptions,
  type Target,
  type ReferrerLister,
  type TagLister,
  type Deleter,
  type Ingester,
  type IngestSource,
} from '../../content/index.js';
import { Transport, responseError, isTransientNetworkError, backoff, type SendResponse, type Method } from './http.js';
import { BlobUploader, type SendOptions } from './upload.js';
import type { UploadSessions } from './sessions.js';

/** How the repository lists referrers: the API, or the `sha256-<hex>` tag schema (distribution-spec v1.1). */
export type ReferrersMode = 'auto' | 'api' | 'tag';

export interface RepositoryOptions {
  /** Upload in PATCH chunks of this many bytes (for proxies that cap bodies); default monolithic. */
  chunkSize?: number;
  /** Referrers discovery and maintenance (`--distribution-spec`); default auto-detect. */
  referrers?: ReferrersMode;
  /** Delete the superseded referrers index when updating the tag schema (default true). */
  deleteOldReferrersIndex?: boolean;
  /** A local cache of content by digest (`WHARF_CACHE`): repeated pulls need no network. */
  cache?: ContentCache;
  /** Where chunked uploads remember their sessions, so that an interrupted push resumes (UploadSessionFile). */
  sessions?: UploadSessions;
}

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

/** The tag under which the referrers tag schema keeps a subject's referrers index. */
export function referrersTag(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `${alg}-${hex}`.slice(0, 128);
}

/**
 * One repository of a registry as a Target: blobs and manifests by digest, tags, referrers,
 * deletion and cross-repository mounts. Every fetched byte is checked against its descriptor;
 * blob downloads that break resume with a Range request; uploads are one streamed PUT or
 * chunked PATCHes that resume from the registry's reported offset.
 */
export class RemoteRepository implements Target, ReferrerLister, TagLister, Deleter, Ingester {
  readonly host: string;
  readonly name: string;
  readonly transport: Transport;
  private readonly opts: RepositoryOptions;
  /** Learnt on first use when mode is auto. */
  private referrersSupport: boolean | undefined;
  private readonly uploads: BlobUploader;

  constructor(transport: Transport, host: string, name: string, opts: RepositoryOptions = {}) {
    this.transport = transport;
    this.host = host;
    this.name = assertName(name);
    this.opts = opts;
    if (opts.referrers === 'api') this.referrersSupport = true;
    if (opts.referrers === 'tag') this.referrersSupport = false;
    this.uploads = new BlobUploader({
      name: this.name,
      transport,
      chunkSize: opts.chunkSize && opts.chunkSize > 0 ? opts.chunkSize : 0,
      host,
      ...(opts.sessions ? { sessions: opts.sessions } : {}),
      send: (method, url, actions, o) => this.send(method, url, actions, o),
      url: (path, query) => this.url(path, query),
    });
  }

  private url(path: string, query?: Record<string, string | undefined>): URL {
    const u = new URL(`${this.transport.origin(this.host)}/v2/${this.name}/${path}`);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, v);
    return u;
  }

  private scope(actions: string): string[] {
    return [`repository:${this.name}:${actions}`];
  }

  private send(method: Method, url: URL, actions: string, opts: SendOptions = {}): Promise<SendResponse> {
    return this.transport.send({
      retry: opts.retry,
      method,
      url,
      host: this.host,
      scopes: opts.scopes ?? this.scope(actions),
      headers: opts.headers,
      body: opts.body,
      signal: opts.signal,
    });
  }

  private kind(desc: Pick<Descriptor, 'mediaType'>): 'manifests' | 'blobs' {
    return isManifestMediaType(desc.mediaType) ? 'manifests' : 'blobs';
  }

  // ---------------------------------------------------------------- read

  async resolve(reference: string, opts: OpOptions = {}): Promise<Descriptor> {
    const cached = isDigest(reference) ? await this.opts.cache?.descriptor(reference) : undefined;
    if (cached) return cached;
    const desc = await this.resolveRemote(reference, opts);
    await this.opts.cache?.rememberDescriptor(desc);
    return desc;
  }

  private async resolveRemote(reference: string, opts: OpOptions): Promise<Descriptor> {
    const url = this.url(`manifests/${reference}`);
    const res = await this.send('HEAD', url, 'pull', { ...opts, headers: { accept: MANIFEST_ACCEPT } });
    await res.body.dump();
    if (res.status === 404) throw new OciError('MANIFEST_UNKNOWN', `${this.host}/${this.name}:${reference} not found`);
    if (res.status !== 200) {
      // A HEAD answer has no body to explain a failure: one GET, not retried (HEAD was), asks
      // again so that the registry's error body can say why.
      const get = await this.send('GET', url, 'pull', { ...opts, headers: { accept: MANIFEST_ACCEPT }, retry: false });
      if (get.status === 200) await get.body.dump();
      throw await responseError(get.status === 200 ? res : get, `resolve ${this.name}:${reference}`);
    }
    const mediaType = res.headers['content-type']?.split(';')[0]?.trim();
    const size = Number(res.headers['content-length']);
    const digest = res.headers['docker-content-digest'];
    if (!mediaType || !isManifestMediaType(mediaType) || !Number.isSafeInteger(size) || !digest || !isDigest(digest)) {
      // Some registries omit headers on HEAD; the body settles it.
      return this.resolveByGet(reference, opts);
    }
    if (isDigest(reference) && digest !== reference) throw new OciError('DIGEST_INVALID', `registry answered ${digest} for ${reference}`);
    return { mediaType, digest, size };
  }

  private async resolveByGet(reference: string, opts: OpOptions): Promise<Descriptor> {
    const { desc } = await this.fetchReference(reference, opts);
    return desc;
  }

  /** Fetches a manifest by tag or digest, whole and checked (digest references against the body). */
  async fetchReference(reference: string, opts: OpOptions = {}): Promise<{ desc: Descriptor; body: Buffer }> {
    const res = await this.send('GET', this.url(`manifests/${reference}`), 'pull', { ...opts, headers: { accept: MANIFEST_ACCEPT } });
    if (res.status === 404) {
      await res.body.dump();
      throw new OciError('MANIFEST_UNKNOWN', `${this.host}/${this.name}:${reference} not found`);
    }
    if (res.status !== 200) throw await responseError(res, `fetch manifest ${this.name}:${reference}`);
    const len = Number(res.headers['content-length'] ?? NaN);
    if (len > MAX_MANIFEST_SIZE) {
      res.body.destroy();
      throw new OciError('SIZE_INVALID', `manifest ${reference} is ${len} bytes, over the ${MAX_MANIFEST_SIZE}-byte limit`);
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > MAX_MANIFEST_SIZE) {
        res.body.destroy();
        throw new OciError('SIZE_INVALID', `manifest ${reference} is over the ${MAX_MANIFEST_SIZE}-byte limit`);
      }
      chunks.push(c);
    }
    const body = Buffer.concat(chunks);
    const digest = isDigest(reference) ? reference : digestOf(body);
    if (isDigest(reference)) await readAllVerified(Readable.from([body]), { digest, size: body.length });
    const header = res.headers['docker-content-digest'];
    if (!isDigest(reference) && header && isDigest(header) && header !== digest) {
      throw new OciError('DIGEST_INVALID', `registry says ${reference} is ${header} but its content is ${digest}`);
    }
    const ct = res.headers['content-type']?.split(';')[0]?.trim();
    const info = parseManifest(body, ct);
    return { desc: { mediaType: info.mediaType, digest, size: body.length }, body };
  }

  async exists(desc: Descriptor, opts: OpOptions = {}): Promise<boolean> {
    const res = await this.send('HEAD', this.url(`${this.kind(desc)}/${desc.digest}`), 'pull', {
      ...opts,
      headers: this.kind(desc) === 'manifests' ? { accept: MANIFEST_ACCEPT } : {},
    });
    await res.body.dump();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await responseError(res, `check ${desc.digest}`);
  }

  /** A blob's descriptor from a HEAD: its size as the registry reports it. */
  async statBlob(digest: Descriptor['digest'], opts: OpOptions = {}): Promise<Descriptor> {
    const res = await this.send('HEAD', this.url(`blobs/${digest}`), 'pull', opts);
    await res.body.dump();
    if (res.status === 404) throw new OciError('BLOB_UNKNOWN', `${digest} not found in ${this.host}/${this.name}`);
    if (res.status !== 200) throw await responseError(res, `check ${digest}`);
    const size = Number(res.headers['content-length']);
    if (!Number.isSafeInteger(size)) throw new OciError('UNAVAILABLE', `registry sent no size for ${digest}`);
    return { mediaType: 'application/octet-stream', digest, size };
  }

  /**
   * Streams content, verified against `desc`. A blob whose connection drops mid-way is resumed
   * with `Range: bytes=<received>-`; the verifier sees one continuous stream either way.
   */
  async fetch(desc: Descriptor, opts: OpOptions = {}): Promise<Readable> {
    const cache = this.opts.cache;
    if (!cache) return this.fetchRemote(desc, opts);
    const hit = await cache.open(desc);
    if (hit) {
      this.transport.debug(`fetch ${desc.digest}: from the local cache`);
      return hit;
    }
    return cache.tee(desc, await this.fetchRemote(desc, opts));
  }

  private async fetchRemote(desc: Descriptor, opts: OpOptions): Promise<Readable> {
    const kind = this.kind(desc);
    const url = this.url(`${kind}/${desc.digest}`);
    const headers: Record<string, string> = kind === 'manifests' ? { accept: MANIFEST_ACCEPT } : {};
    const first = await this.send('GET', url, 'pull', { ...opts, headers });
    if (first.status === 404) {
      await first.body.dump();
      throw new OciError(kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `${desc.digest} not found in ${this.host}/${this.name}`);
    }
    if (first.status !== 200) throw await responseError(first, `fetch ${desc.digest}`);
    return markVerifying(Readable.from(verifyChunks(this.resumingBody(first, url, headers, desc, opts), desc)), desc);
  }

  /** A blob from byte `offset` on, unverified (RangeFetcher: a download resumed by another run). */
  async fetchFrom(desc: Descriptor, offset: number, opts: OpOptions = {}): Promise<Readable> {
    const kind = this.kind(desc);
    const headers: Record<string, string> = kind === 'manifests' ? { accept: MANIFEST_ACCEPT } : {};
    return Readable.from(this.resumingBody(undefined, this.url(`${kind}/${desc.digest}`), headers, desc, opts, offset));
  }

  /** `first`: the answer to a GET of the whole content; without it, a ranged GET from `from`. */
  private async *resumingBody(first: SendResponse | undefined, url: URL, headers: Record<string, string>, desc: Descriptor, opts: OpOptions, from = 0): AsyncGenerator<Buffer> {
    const { attempts, baseDelayMs, maxDelayMs } = this.transport.retryOptions;
    let offset = from;
    let res: SendResponse | undefined = first;
    let failures = 0;
    for (;;) {
      if (!res) {
        res = await this.send('GET', url, 'pull', { ...opts, headers: { ...headers, range: `bytes=${offset}-` } });
        if (res.status === 206) {
          const cr = res.headers['content-range'];
          const start = cr ? parseContentRange(cr).start : -1;
          if (start !== offset) {
            res.body.destroy();
            throw new WharfError('RANGE_INVALID', `resuming ${desc.digest}: registry answered range ${cr ?? '(none)'} for bytes=${offset}-`);
          }
        } else if (res.status === 200) {
          // No range support: skip what we already have.
          res = { ...res, body: res.body };
          let skip = offset;
          try {
            for await (const c of res.body as AsyncIterable<Buffer>) {
              if (skip >= c.length) {
                skip -= c.length;
                continue;
              }
              const part = skip > 0 ? c.subarray(skip) : c;
              skip = 0;
              offset += part.length;
              yield part;
            }
            return;
          } catch (err) {
            if (!isTransientNetworkError(err) || ++failures >= attempts) throw err;
            res = undefined;
            await sleep(backoff(failures, baseDelayMs, maxDelayMs), undefined, { signal: opts.signal });
            continue;
          }
        } else throw await responseError(res, `resume ${desc.digest}`);
      }
      try {
        for await (const c of res.body as AsyncIterable<Buffer>) {
          offset += c.length;
          yield c;
        }
        if (offset >= desc.size) return;
        // A body that ends early without an error is also a broken transfer.
        throw Object.assign(new Error(`connection closed after ${offset} of ${desc.size} bytes`), { code: 'ECONNRESET' });
      } catch (err) {
        if (!isTransientNetworkError(err) || ++failures >= attempts || offset >= desc.size) throw err;
        this.transport.debug(`fetch ${desc.digest}: ${(err as Error).message} at byte ${offset}; resuming`);
        res = undefined;
        await sleep(backoff(failures, baseDelayMs, maxDelayMs), undefined, { signal: opts.signal });
      }
    }
  }

  // ---------------------------------------------------------------- write

  async push(desc: Descriptor, content: Readable, opts: OpOptions = {}): Promise<void> {
    if (isManifestMediaType(desc.mediaType)) {
      const body = await readAllVerified(content, desc, MAX_MANIFEST_SIZE);
      await this.pushManifest(desc, body, desc.digest, opts);
      return;
    }
    await this.pushBlob(desc, content, opts);
  }

  /** Pushes a manifest under a tag or its digest; maintains the referrers tag schema for a subject. */
  async pushManifest(desc: Descriptor, body: Buffer, reference: string = desc.digest, opts: OpOptions = {}): Promise<void> {
    const info = parseManifest(body, desc.mediaType);
    const res = await this.send('PUT', this.url(`manifests/${reference}`), 'pull,push', {
      ...opts,
      headers: { 'content-type': desc.mediaType },
      body,
    });
    if (res.status !== 201 && res.status !== 200) throw await responseError(res, `push manifest ${this.name}:${reference}`);
    const subjectHeader = res.headers['oci-subject'];
    await res.body.dump();
    if (info.subject) {
      if (subjectHeader) this.referrersSupport = true;
      else if (this.referrersSupport !== true) await this.addToReferrersIndex(info.subject, { ...desc, mediaType: info.mediaType, ...(info.artifactType ? { artifactType: info.artifactType } : {}), ...(info.annotations ? { annotations: info.annotations } : {}) }, opts);
    }
  }

  /** Uploads a blob unless the registry already has it. */
  async pushBlob(desc: Descriptor, content: Readable, opts: OpOptions = {}): Promise<void> {
    if (await this.exists(desc, opts)) {
      content.resume();
      content.destroy();
      return;
    }
    await this.uploads.upload(desc, content, opts);
  }

  /** Uploads content whose digest is learnt on the way, reading it once (see BlobUploader.ingest). */
  ingest(mediaType: string, src: IngestSource, opts: OpOptions = {}): Promise<Descriptor> {
    return this.uploads.ingest(mediaType, src, opts);
  }

  /**
   * Asks the registry to link a blob from another repository of the same registry. Returns false
   * when it would not (then the caller uploads); an upload session it opened instead is cancelled.
   */
  async mount(desc: Descriptor, fromRepository: string, opts: OpOptions = {}): Promise<boolean> {
    const res = await this.uploads.post(opts, { mount: desc.digest, from: fromRepository }, [
      `repository:${this.name}:pull,push`,
      `repository:${fromRepository}:pull`,
    ]);
    await res.body.dump();
    if (res.status === 201) return true;
    if (res.status === 202 && res.headers.location) {
      const del = await this.send('DELETE', new URL(res.headers.location, res.url), 'pull,push', opts).catch(() => undefined);
      await del?.body.dump();
      return false;
    }
    return false;
  }

  async tag(desc: Descriptor, reference: string, opts: OpOptions = {}): Promise<void> {
    const { body } = await this.fetchReference(desc.digest, opts);
    const res = await this.send('PUT', this.url(`manifests/${reference}`), 'pull,push', { ...opts, headers: { 'content-type': desc.mediaType }, body });
    if (res.status !== 201 && res.status !== 200) throw await responseError(res, `tag ${this.name}:${reference}`);
    await res.body.dump();
  }

  async delete(desc: Descriptor, opts: OpOptions = {}): Promise<void> {
    const res = await this.send('DELETE', this.url(`${this.kind(desc)}/${desc.digest}`), 'delete', opts);
    if (res.status === 404) {
      await res.body.dump();
      throw new OciError(this.kind(desc) === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', `${desc.digest} not found in ${this.host}/${this.name}`);
    }
    if (res.status !== 202 && res.status !== 200) throw await responseError(res, `delete ${desc.digest}`);
    await res.body.dump();
  }

  /**
   * Removes one tag with the spec's DELETE of a manifest by tag. A registry that does not offer it
   * (it answers 400, 405 or UNSUPPORTED) gets an UNSUPPORTED error that says so: deleting the
   * manifest instead would take every other tag of it too.
   */
  async untag(tag: string, opts: OpOptions = {}): Promise<void> {
    const res = await this.send('DELETE', this.url(`manifests/${tag}`), 'delete', opts);
    if (res.status === 202 || res.status === 200) return void (await res.body.dump());
    if (res.status === 404) {
      await res.body.dump();
      throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} not found in ${this.host}/${this.name}`);
    }
    const err = await responseError(res, `untag ${this.name}:${tag}`);
    if (res.status === 400 || res.status === 405 || (err instanceof OciError && err.code === 'UNSUPPORTED')) {
      throw new OciError('UNSUPPORTED', `${this.host} does not delete a tag alone (it answered ${res.status}: ${err.message}); retag elsewhere, or delete the whole manifest with wharf manifest delete`);
    }
    throw err;
  }

  // ---------------------------------------------------------------- listings

  /** One page of tags (`n`, `last`), or all of them following `Link` when `n` is absent. */
  async tags(opts: OpOptions & { last?: string; n?: number } = {}): Promise<string[]> {
    const out: string[] = [];
    let url: URL | undefined = this.url('tags/list', { n: opts.n?.toString(), last: opts.last });
    while (url) {
      const res = await this.send('GET', url, 'pull', opts);
      if (res.status === 404) {
        await res.body.dump();
        throw new OciError('NAME_UNKNOWN', `repository ${this.host}/${this.name} not found`);
      }
      if (res.status !== 200) throw await responseError(res, `list tags of ${this.name}`);
      const doc = (await res.body.json()) as { tags?: string[] | null };
      out.push(...(doc.tags ?? []));
      const next = opts.n === undefined ? nextLink(res.headers.link, res.url) : undefined;
      url = next;
    }
    // Registries that ignore `n`/`last` (Distribution 2.x) still get the spec's answer: tags are in
    // lexical order, so the page is a filter and a slice.
    const page = opts.last === undefined ? out : out.filter((t) => t > opts.last!);
    return opts.n === undefined ? page : page.slice(0, opts.n);
  }

  async referrers(subject: Descriptor, opts: OpOptions & { artifactType?: string } = {}): Promise<Descriptor[]> {
    if (this.referrersSupport !== false) {
      const got = await this.referrersApi(subject, opts);
      if (got) {
        this.referrersSupport = true;
        return got;
      }
      this.referrersSupport = false;
    }
    const idx = await this.referrersIndex(subject, opts);
    const list = idx?.index.manifests ?? [];
    return opts.artifactType ? list.filter((d) => d.artifactType === opts.artifactType) : list;
  }

  /** The referrers API; undefined when the registry does not implement it. */
  private async referrersApi(subject: Descriptor, opts: OpOptions & { artifactType?: string }): Promise<Descriptor[] | undefined> {
    const out: Descriptor[] = [];
    let url: URL | undefined = this.url(`referrers/${subject.digest}`, { artifactType: opts.artifactType });
    let filtered = false;
    while (url) {
      const res = await this.send('GET', url, 'pull', { ...opts, headers: { accept: MediaType.ImageIndex } });
      const ct = res.headers['content-type']?.split(';')[0]?.trim();
      if (res.status === 404 || (res.status === 200 && ct !== MediaType.ImageIndex)) {
        // distribution-spec: a registry without the API answers 404 (or something that is not an index).
        await res.body.dump();
        if (out.length === 0) return undefined;
        break;
      }
      if (res.status === 400 || res.status === 405) {
        await res.body.dump();
        return undefined;
      }
      if (res.status !== 200) throw await responseError(res, `list referrers of ${subject.digest}`);
      filtered ||= Boolean(res.headers['oci-filters-applied']?.includes('artifactType'));
      const doc = (await res.body.json()) as ImageIndex;
      out.push(...(doc.manifests ?? []));
      url = nextLink(res.headers.link, res.url);
    }
    return opts.artifactType && !filtered ? out.filter((d) => d.artifactType === opts.artifactType) : out;
  }

  private async referrersIndex(subject: Descriptor, opts: OpOptions): Promise<{ desc: Descriptor; index: ImageIndex } | undefined> {
    try {
      const { desc, body } = await this.fetchReference(referrersTag(subject.digest), opts);
      const index = JSON.parse(body.toString('utf8')) as ImageIndex;
      return { desc, index };
    } catch (err) {
      if (isOciError(err, 'MANIFEST_UNKNOWN') || isWharfError(err, 'NOT_FOUND') || isOciError(err, 'NAME_UNKNOWN')) return undefined;
      throw err;
    }
  }

  /** The referrers tag schema: add `referrer` to the index tagged `<alg>-<hex>` of the subject. */
  private async addToReferrersIndex(subject: Descriptor, referrer: Descriptor, opts: OpOptions): Promise<void> {
    const old = await this.referrersIndex(subject, opts);
    const manifests = (old?.index.manifests ?? []).filter((d) => d.digest !== referrer.digest);
    if (old && manifests.length !== old.index.manifests.length) return; // already listed
    const entry: Descriptor = { mediaType: referrer.mediaType, digest: referrer.digest, size: referrer.size };
    if (referrer.artifactType) entry.artifactType = referrer.artifactType;
    if (referrer.annotations) entry.annotations = referrer.annotations;
    manifests.push(entry);
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests };
    const body = Buffer.from(JSON.stringify(index));
    const desc: Descriptor = { mediaType: MediaType.ImageIndex, digest: digestOf(body), size: body.length };
    await this.pushManifest(desc, body, referrersTag(subject.digest), opts);
    if (old && this.opts.deleteOldReferrersIndex !== false) {
      // Best effort, as oras-go: a registry that forbids deletes keeps an untagged index around.
      await this.delete(old.desc, opts).catch(() => undefined);
    }
  }
}

/** RFC 8288 `Link: <url>; rel="next"`, resolved against the request URL. */
export function nextLink(link: string | undefined, base: URL): URL | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(part);
    if (m) return new URL(m[1]!, base);
  }
  return undefined;
}

