import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import {
  OciError,
  asDigest,
  assertName,
  isDigest,
  isValidTag,
  truncate,
  parseContentRange,
  parseRangeHeader,
  MediaType,
  type ByteRange,
} from '../../spec/index.js';
import { readAllLimited } from '../../content/index.js';
import type { RegistryStore } from '../store/index.js';
import type { Route } from './route.js';
import { multipartByteranges } from './ranges.js';
import { sendFile } from './send.js';

export interface V2Options {
  /** Largest page the tags, catalog and referrers lists return (default 1000). */
  pageSize: number;
}

type Query = Record<string, string | undefined>;

/** Dispatches one /v2 request. Every failure is thrown as an OciError and rendered by the app. */
export async function handleV2(store: RegistryStore, route: Route, req: FastifyRequest, reply: FastifyReply, opts: V2Options): Promise<void> {
  const method = req.method;
  const q = req.query as Query;
  switch (route.kind) {
    case 'base':
      allow(method, ['GET', 'HEAD']);
      return void reply.type('application/json').send('{}');
    case 'catalog':
      allow(method, ['GET']);
      return listPage(reply, '/v2/_catalog', 'repositories', await store.catalog(), q, opts, {});
    case 'tags':
      allow(method, ['GET']);
      return listPage(reply, `/v2/${route.name}/tags/list`, 'tags', await store.tags(route.name), q, opts, { name: route.name });
    case 'manifest':
      return manifest(store, route, req, reply);
    case 'blob':
      return blob(store, route, req, reply);
    case 'upload':
      return upload(store, route, req, reply, q);
    case 'referrers':
      allow(method, ['GET']);
      return referrers(store, route, reply, q, opts);
  }
}

function allow(method: string, methods: string[]): true {
  if (!methods.includes(method)) throw new OciError('UNSUPPORTED', `method ${method} is not allowed here`);
  return true;
}

function pageSize(q: Query, opts: V2Options): number {
  if (q.n === undefined) return opts.pageSize;
  if (!/^\d+$/.test(q.n)) throw new OciError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer, got "${q.n.slice(0, 20)}"`);
  // An n past the page size (even one too large for a number) gets a full page and a Link, as
  // distribution-spec lets a registry return fewer results when it says where the rest are.
  return Math.min(Number(q.n), opts.pageSize);
}

function listPage(reply: FastifyReply, path: string, key: string, all: string[], q: Query, opts: V2Options, extra: Record<string, string>): void {
  const n = pageSize(q, opts);
  const after = q.last === undefined ? all : all.filter((x) => x > q.last!);
  const page = after.slice(0, n);
  if (after.length > n && page.length > 0) {
    reply.header('Link', `<${path}?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}>; rel="next"`);
  }
  reply.type('application/json').send(JSON.stringify({ ...extra, [key]: page }));
}

// ---- manifests

async function manifest(store: RegistryStore, route: Extract<Route, { kind: 'manifest' }>, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { name, reference } = route;
  switch (req.method) {
    case 'GET':
    case 'HEAD': {
      assertCanExist(name, reference);
      const m = await store.getManifest(name, reference);
      reply.headers({
        'content-type': m.mediaType,
        'content-length': m.body.length,
        'docker-content-digest': m.digest,
        etag: `"${m.digest}"`,
      });
      return void reply.send(req.method === 'HEAD' ? undefined : m.body);
    }
    case 'PUT': {
      const limit = store.maxManifestSize;
      const declared = Number(req.headers['content-length']);
      const tooLarge = (): OciError => new OciError('SIZE_INVALID', `manifest is ${declared > limit ? `${declared} bytes` : 'larger'}, over the limit of ${limit}`, { status: 413 });
      if (declared > limit) {
        // Read and drop the body before answering (up to a bound): a client that writes its whole
        // body before reading (Node's http, many SDKs) would otherwise see EPIPE or a reset.
        if (declared <= limit + DRAIN_MAX) await drain(req.raw);
        throw tooLarge();
      }
      const body = await readAllLimited(detached(req.raw), limit, tooLarge);
      const res = await store.putManifest(name, reference, body, req.headers['content-type']);
      reply.code(201).headers({ location: `/v2/${name}/manifests/${res.digest}`, 'docker-content-digest': res.digest, 'content-length': 0 });
      if (res.subject) reply.header('oci-subject', res.subject);
      return void reply.send();
    }
    case 'DELETE':
      assertCanExist(name, reference);
      await store.deleteManifest(name, reference);
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

async function blob(store: RegistryStore, route: Extract<Route, { kind: 'blob' }>, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { name } = route;
  const digest = asDigest(route.digest);
  if (req.method === 'DELETE') {
    await store.deleteBlob(name, digest);
    return void reply.code(202).headers({ 'docker-content-digest': digest, 'content-length': 0 }).send();
  }
  allow(req.method, ['GET', 'HEAD', 'DELETE']);
  const size = await store.statBlob(name, digest);
  reply.headers({ 'docker-content-digest': digest, 'accept-ranges': 'bytes', etag: `"${digest}"`, 'cache-control': 'max-age=31536000' });
  let ranges: ByteRange[] | undefined;
  try {
    ranges = parseRangeHeader(req.headers.range, size);
  } catch (err) {
    if (err instanceof OciError) reply.header('content-range', `bytes */${size}`);
    throw err;
  }
  const head = req.method === 'HEAD';
  if (!ranges) {
    reply.headers({ 'content-type': MediaType.OctetStream, 'content-length': size });
    if (head) return void reply.send();
    const { file, check } = await store.openBlobFile(name, digest);
    return sendFile(reply, file, 0, size - 1, check);
  }
  reply.code(206);
  if (ranges.length === 1) {
    const r = ranges[0]!;
    reply.headers({ 'content-type': MediaType.OctetStream, 'content-length': r.end - r.start + 1, 'content-range': `bytes ${r.start}-${r.end}/${size}` });
    if (head) return void reply.send();
    return sendFile(reply, (await store.openBlobFile(name, digest, false)).file, r.start, r.end);
  }
  const mp = multipartByteranges(ranges, size, MediaType.OctetStream, (r) => store.openBlob(name, digest, r));
  reply.headers({ 'content-type': `multipart/byteranges; boundary=${mp.boundary}`, 'content-length': mp.length });
  if (head) mp.body.destroy();
  return void reply.send(head ? undefined : mp.body);
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

async function upload(store: RegistryStore, route: Extract<Route, { kind: 'upload' }>, req: FastifyRequest, reply: FastifyReply, q: Query): Promise<void> {
  const { name, id } = route;
  if (id === '') {
    allow(req.method, ['POST']);
    if (q.mount !== undefined && isDigest(q.mount)) {
      // Without `from`, the blob is looked for in every repository (automatic mount, the
      // conformance suite's OCI_AUTOMATIC_CROSSMOUNT=1). Under access rules the access hook has
      // already chosen a `from` the caller may pull, or dropped the mount (http/access.ts).
      const from = q.from ?? (await store.blobHolder(q.mount));
      if (from !== undefined) {
        assertName(from);
        if ((await store.mountBlob(name, from, q.mount)) !== undefined) return created(reply, name, q.mount);
      }
    }
    if (q.digest !== undefined) {
      const digest = asDigest(q.digest);
      const opts = appendOptions(req);
      const s = await store.uploads.start(name);
      try {
        await store.finishUpload(name, s.id, digest, bodyOf(req) ?? emptyBody(), opts);
      } catch (err) {
        await store.uploads.cancel(name, s.id).catch(() => undefined);
        throw err;
      }
      return created(reply, name, digest);
    }
    const s = await store.uploads.start(name);
    return void uploadHeaders(reply.code(202), name, s.id, 0).send();
  }
  try {
    switch (req.method) {
      case 'GET': {
        const s = await store.uploads.status(name, id);
        return void uploadHeaders(reply.code(204), name, id, s.offset).send();
      }
      case 'PATCH': {
        const s = await store.uploads.append(name, id, bodyOf(req) ?? emptyBody(), appendOptions(req));
        return void uploadHeaders(reply.code(202), name, id, s.offset).send();
      }
      case 'PUT': {
        if (q.digest === undefined) throw new OciError('DIGEST_INVALID', 'the final PUT of an upload needs ?digest=');
        const digest = asDigest(q.digest);
        await store.finishUpload(name, id, digest, bodyOf(req), appendOptions(req));
        return created(reply, name, digest);
      }
      case 'DELETE':
        await store.uploads.cancel(name, id);
        return void reply.code(204).header('content-length', 0).send();
      default:
        allow(req.method, ['GET', 'PATCH', 'PUT', 'DELETE']);
    }
  } catch (err) {
    // A refused chunk tells the client where to resume (distribution-spec "Resuming an upload").
    if (err instanceof OciError && err.status === 416) {
      const s = await store.uploads.status(name, id).catch(() => undefined);
      if (s) uploadHeaders(reply, name, id, s.offset);
    }
    throw err;
  }
}

function emptyBody(): Readable {
  return Readable.from([]);
}

// ---- referrers

async function referrers(store: RegistryStore, route: Extract<Route, { kind: 'referrers' }>, reply: FastifyReply, q: Query, opts: V2Options): Promise<void> {
  const digest = asDigest(route.digest);
  const all = await store.referrers(route.name, digest, q.artifactType);
  const n = pageSize(q, opts);
  const after = q.last === undefined ? all : all.filter((d) => d.digest > q.last!);
  const page = after.slice(0, n);
  if (q.artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
  if (after.length > n && page.length > 0) {
    const params = new URLSearchParams({ n: String(n), last: page[page.length - 1]!.digest });
    if (q.artifactType !== undefined) params.set('artifactType', q.artifactType);
    reply.header('link', `</v2/${route.name}/referrers/${digest}?${params}>; rel="next"`);
  }
  // Exactly the index media type: reply.type() would append "; charset=utf-8" to a string body.
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: page }));
  reply.headers({ 'content-type': MediaType.ImageIndex, 'content-length': body.length }).send(body);
}
