import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import {
  OciError,
  WharfError,
  isWharfError,
  asDigest,
  assertName,
  isDigest,
  isValidTag,
  truncate,
  parseContentRange,
  MediaType,
  type ByteRange,
} from '../../spec/index.js';
import { readAllLimited } from '../../content/index.js';
import type { Listed, Page, RegistryBackend } from '../store/index.js';
import type { RequestContext } from './context.js';
import type { Route } from './route.js';
import { multipartByteranges, requestedRanges } from './ranges.js';
import { sendBody } from './send.js';

export interface V2Options {
  /** Largest page the tags, catalog and referrers lists return (default 1000). */
  pageSize: number;
}

type Query = Record<string, string | undefined>;
type Of<K extends Route['kind']> = Extract<Route, { kind: K }>;

/** Dispatches one /v2 request. Every failure is thrown as an OciError and rendered by the app. */
export async function handleV2(backend: RegistryBackend, ctx: RequestContext, req: FastifyRequest, reply: FastifyReply, opts: V2Options): Promise<void> {
  const route = ctx.route!;
  const method = req.method;
  const q = req.query as Query;
  if ('name' in route) {
    const ns = backend.namespaceOf(route.name);
    if (ns !== undefined) reply.header('oci-namespace', ns);
  }
  switch (route.kind) {
    case 'base':
      allow(method, ['GET', 'HEAD']);
      return void reply.type('application/json').send('{}');
    case 'catalog': {
      allow(method, ['GET']);
      const page = pageOf(q, opts);
      const listed = await backend.listRepositories(page, (r) => ctx.canRead(r));
      return sendList(reply, '/v2/_catalog', page, listed, (r) => r, q, (items) => ({ repositories: items }));
    }
    case 'tags': {
      allow(method, ['GET']);
      const page = pageOf(q, opts);
      const listed = await backend.listTags(route.name, page);
      // The name as the client asked for it (a `?ns=` request names the upstream's repository).
      const name = ctx.asked ?? route.name;
      return sendList(reply, `/v2/${name}/tags/list`, page, listed, (t) => t, q, (items) => ({ name, tags: items }));
    }
    case 'manifest':
      return manifest(backend, route, req, reply);
    case 'blob':
      return blob(backend, route, req, reply);
    case 'upload':
      return upload(backend, ctx, route, req, reply, q);
    case 'referrers': {
      allow(method, ['GET']);
      const digest = asDigest(route.digest);
      const page = pageOf(q, opts);
      const listed = await backend.listReferrers(route.name, digest, page, q.artifactType);
      if (q.artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
      return sendList(reply, `/v2/${route.name}/referrers/${digest}`, page, listed, (d) => d.digest, q, (items) => ({ schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: items }), MediaType.ImageIndex);
    }
  }
}

function allow(method: string, methods: string[]): true {
  if (!methods.includes(method)) throw new OciError('UNSUPPORTED', `method ${method} is not allowed here`);
  return true;
}

/** The page a list request asks for: `n` (at most the page size) items after `last`. */
function pageOf(q: Query, opts: V2Options): Page {
  let n = opts.pageSize;
  if (q.n !== undefined) {
    if (!/^\d+$/.test(q.n)) throw new WharfError('INVALID_ARGUMENT', `n must be a non-negative integer, got "${q.n.slice(0, 20)}"`);
    // An n past the page size (even one too large for a number) gets a full page and a Link, as
    // distribution-spec lets a registry return fewer results when it says where the rest are.
    n = Math.min(Number(q.n), opts.pageSize);
  }
  return q.last === undefined ? { n } : { n, last: q.last };
}

/** A list answer: the page, a Link to the next one when there is more, a cache's Warning. */
function sendList<T>(reply: FastifyReply, path: string, page: Page, listed: Listed<T>, key: (item: T) => string, q: Query, body: (items: T[]) => object, type?: string): void {
  const items = listed.items;
  if (listed.more && items.length > 0) {
    const params = new URLSearchParams({ n: String(page.n), last: key(items[items.length - 1]!) });
    if (q.artifactType !== undefined) params.set('artifactType', q.artifactType);
    reply.header('link', `<${path}?${params}>; rel="next"`);
  }
  if (listed.warning) reply.header('warning', listed.warning);
  const text = JSON.stringify(body(items));
  // An exact media type goes out as given: reply.type() would append "; charset=utf-8" to a string body.
  if (type === undefined) return void reply.type('application/json').send(text);
  const bytes = Buffer.from(text);
  reply.headers({ 'content-type': type, 'content-length': bytes.length }).send(bytes);
}

// ---- manifests

async function manifest(backend: RegistryBackend, route: Of<'manifest'>, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { name, reference } = route;
  switch (req.method) {
    case 'GET':
    case 'HEAD': {
      assertCanExist(name, reference);
      const m = await backend.getManifest(name, reference);
      reply.headers({
        'content-type': m.mediaType,
        'content-length': m.body.length,
        'docker-content-digest': m.digest,
        etag: `"${m.digest}"`,
      });
      if (m.warning) reply.header('warning', m.warning);
      return void reply.send(req.method === 'HEAD' ? undefined : m.body);
    }
    case 'PUT': {
      const limit = backend.maxManifestSize;
      const declared = Number(req.headers['content-length']);
      const tooLarge = (): OciError => new OciError('SIZE_INVALID', `manifest is ${declared > limit ? `${declared} bytes` : 'larger'}, over the limit of ${limit}`, { status: 413 });
      if (declared > limit) {
        // Read and drop the body before answering (up to a bound): a client that writes its whole
        // body before reading (Node's http, many SDKs) would otherwise see EPIPE or a reset.
        if (declared <= limit + DRAIN_MAX) await drain(req.raw);
        throw tooLarge();
      }
      const body = await readAllLimited(detached(req.raw), limit, tooLarge);
      const res = await backend.putManifest(name, reference, body, req.headers['content-type']);
      reply.code(201).headers({ location: `/v2/${name}/manifests/${res.digest}`, 'docker-content-digest': res.digest, 'content-length': 0 });
      if (res.subject) reply.header('oci-subject', res.subject);
      return void reply.send();
    }
    case 'DELETE':
      assertCanExist(name, reference);
      await backend.deleteManifest(name, reference);
      return void reply.code(202).header('content-length', 0).send();
    default:
      allow(req.method, ['GET', 'HEAD', 'PUT', 'DELETE']);
  }
}

/**
 * A read or delete of a reference that is no valid tag (and not digest-shaped) asks for a manifest
 * that cannot exist: 404 MANIFEST_UNKNOWN, as the conformance suite expects, not 400. A PUT of the
 * same reference is still refused with TAG_INVALID.
 */
function assertCanExist(name: string, reference: string): void {
  if (!reference.includes(':') && !isValidTag(reference)) {
    throw new OciError('MANIFEST_UNKNOWN', `manifest "${truncate(reference)}" is unknown to repository ${name}: it is no valid tag`, { detail: { reference: truncate(reference) } });
  }
}

// ---- blobs

async function blob(backend: RegistryBackend, route: Of<'blob'>, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { name } = route;
  const digest = asDigest(route.digest);
  if (req.method === 'DELETE') {
    await backend.deleteBlob(name, digest);
    return void reply.code(202).headers({ 'docker-content-digest': digest, 'content-length': 0 }).send();
  }
  allow(req.method, ['GET', 'HEAD', 'DELETE']);
  const head = req.method === 'HEAD';
  const content = await backend.openBlob(name, digest, !head);
  const size = content.size;
  reply.headers({ 'docker-content-digest': digest, 'accept-ranges': 'bytes', etag: `"${digest}"`, 'cache-control': 'max-age=31536000' });
  // Stored in an object store that hands out URLs: the client fetches (a Range of) it there.
  const location = !head && size > 0 ? await content.url?.() : undefined;
  if (location) return void reply.code(307).headers({ location, 'cache-control': 'no-store', 'content-length': 0 }).send();
  const ranges = requestedRanges(req, reply, size);
  if (ranges && ranges.length > 1) {
    const mp = multipartByteranges(ranges, size, MediaType.OctetStream, (r) => content.stream(r));
    reply.code(206).headers({ 'content-type': `multipart/byteranges; boundary=${mp.boundary}`, 'content-length': mp.length });
    if (head) mp.body.destroy();
    return void reply.send(head ? undefined : mp.body);
  }
  // One send path for stored content and a fill under way, whole or one range.
  const r = ranges?.[0] ?? { start: 0, end: size - 1 };
  if (ranges) reply.code(206).header('content-range', `bytes ${r.start}-${r.end}/${size}`);
  reply.headers({ 'content-type': MediaType.OctetStream, 'content-length': r.end - r.start + 1 });
  if (head || size === 0) return void reply.send();
  return sendBody(reply, (res) => content.send(res, r.start, r.end));
}

// ---- uploads

/** The request body as a stream when there is one, else undefined. */
function bodyOf(req: FastifyRequest): Readable | undefined {
  const len = req.headers['content-length'];
  if ((len !== undefined && Number(len) > 0) || req.headers['transfer-encoding'] !== undefined) return detached(req.raw);
  return undefined;
}

/**
 * The request body as a stream of its own. Storing it may fail midway (a full disk, a blob over
 * the size limit), and the pipeline then destroys its source: were that the request, Node would
 * destroy the connection with it, and the client would see a reset instead of the error. Here
 * the rest of the body is read and dropped, so the error is answered on a connection that stays
 * usable. A client that goes away still fails the stream.
 */
function detached(raw: IncomingMessage): Readable {
  const body = new PassThrough();
  bodies.set(raw, body);
  // Whoever reads the body hears of its errors; one nobody reads (refused before its bytes) must
  // not make an abort an uncaught exception.
  body.on('error', () => undefined);
  raw.pipe(body);
  // Kept for the request's life: the dropped rest of a body can still end in an abort.
  raw.on('error', (err) => body.destroy(err));
  raw.once('close', () => {
    if (!raw.complete) body.destroy(Object.assign(new Error('the client closed the connection before the body was complete'), { code: 'ECONNRESET' }));
  });
  body.once('close', () => {
    if (raw.complete) return;
    raw.unpipe(body);
    raw.resume();
  });
  return body;
}

/** The body stream made of each request that has one (see dropUnreadBody). */
const bodies = new WeakMap<IncomingMessage, PassThrough>();

/**
 * A request that failed before its body was read (the store down when a PATCH began): the body
 * stream goes, so its request's rest is read and dropped (see detached()) and the client, which
 * may still be sending, hears the answer; otherwise it would block on a full socket until the
 * keep-alive timeout reset the connection.
 */
export function dropUnreadBody(raw: IncomingMessage): void {
  const body = bodies.get(raw);
  if (body && !raw.complete && !body.destroyed) body.destroy();
}

/** The most of a refused body read and dropped before answering; past it the connection closes. */
const DRAIN_MAX = 64 << 20;

/** Reads the rest of a request body and drops it; resolves when it ended or the client left. */
function drain(raw: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    if (raw.complete) return resolve();
    raw.once('end', resolve).once('close', resolve).resume();
  });
}

function appendOptions(req: FastifyRequest): { contentRange?: ByteRange; contentLength?: number } {
  const o: { contentRange?: ByteRange; contentLength?: number } = {};
  const cr = req.headers['content-range'];
  if (cr !== undefined) o.contentRange = parseContentRange(cr);
  const len = req.headers['content-length'];
  if (len !== undefined) {
    if (!/^\d+$/.test(len)) throw new OciError('SIZE_INVALID', `invalid Content-Length "${len.slice(0, 20)}"`);
    o.contentLength = Number(len);
  }
  return o;
}

function uploadHeaders(reply: FastifyReply, name: string, id: string, offset: number): FastifyReply {
  // distribution-spec writes the received range inclusively, and "0-0" for an empty session.
  return reply.headers({
    location: `/v2/${name}/blobs/uploads/${id}`,
    range: `0-${Math.max(0, offset - 1)}`,
    'docker-upload-uuid': id,
    'content-length': 0,
  });
}

function created(reply: FastifyReply, name: string, digest: string): void {
  reply.code(201).headers({ location: `/v2/${name}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': 0 }).send();
}

async function upload(backend: RegistryBackend, ctx: RequestContext, route: Of<'upload'>, req: FastifyRequest, reply: FastifyReply, q: Query): Promise<void> {
  const { name, id } = route;
  if (id === '') {
    allow(req.method, ['POST']);
    if (q.mount !== undefined && isDigest(q.mount)) {
      // A mount takes the blob only from a repository the caller may read: `from` as named, or,
      // without it, one that holds the blob (automatic mount, the conformance suite's
      // OCI_AUTOMATIC_CROSSMOUNT=1; `uploads.automaticMount: false` turns it off). Otherwise the
      // client gets an ordinary upload session, as the spec allows, which says nothing about
      // any other repository.
      if (q.from !== undefined) assertName(q.from);
      const from = q.from !== undefined ? (ctx.canRead(q.from) ? q.from : undefined) : await backend.blobHolder(q.mount, (r) => ctx.canRead(r));
      if (from !== undefined && (await backend.mountBlob(name, from, q.mount)) !== undefined) return created(reply, name, q.mount);
    }
    if (q.digest !== undefined) {
      const digest = asDigest(q.digest);
      const opts = appendOptions(req);
      const s = await backend.startUpload(name);
      try {
        await backend.finishUpload(name, s.id, digest, bodyOf(req) ?? emptyBody(), opts);
      } catch (err) {
        await backend.cancelUpload(name, s.id).catch(() => undefined);
        throw err;
      }
      return created(reply, name, digest);
    }
    const s = await backend.startUpload(name);
    return void uploadHeaders(reply.code(202), name, s.id, 0).send();
  }
  try {
    switch (req.method) {
      case 'GET': {
        const s = await backend.uploadStatus(name, id);
        return void uploadHeaders(reply.code(204), name, id, s.offset).send();
      }
      case 'PATCH': {
        const s = await backend.appendUpload(name, id, bodyOf(req) ?? emptyBody(), appendOptions(req));
        return void uploadHeaders(reply.code(202), name, id, s.offset).send();
      }
      case 'PUT': {
        if (q.digest === undefined) throw new OciError('DIGEST_INVALID', 'the final PUT of an upload needs ?digest=');
        const digest = asDigest(q.digest);
        await backend.finishUpload(name, id, digest, bodyOf(req), appendOptions(req));
        return created(reply, name, digest);
      }
      case 'DELETE':
        await backend.cancelUpload(name, id);
        return void reply.code(204).header('content-length', 0).send();
      default:
        allow(req.method, ['GET', 'PATCH', 'PUT', 'DELETE']);
    }
  } catch (err) {
    // A refused chunk tells the client where to resume (distribution-spec "Resuming an upload").
    if (isWharfError(err, 'RANGE_INVALID')) {
      const s = await backend.uploadStatus(name, id).catch(() => undefined);
      if (s) uploadHeaders(reply, name, id, s.offset);
    }
    throw err;
  }
}

function emptyBody(): Readable {
  return Readable.from([]);
}
