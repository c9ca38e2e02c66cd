import type { ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { verifyReader } from '../../content/index.js';
import { Annotation, OciError, isWharfError, type ByteRange, type Descriptor } from '../../spec/index.js';
import { nextAuditId, type AuditRecord } from '../audit/index.js';
import { requestedRanges } from '../http/ranges.js';
import { sendBody } from '../http/send.js';
import { drained } from '../io/index.js';
import type { WebDeps } from './deps.js';
import { TOC_DIGEST_ANNOTATION, cleanName } from '../../estargz/index.js';
import { checkPath, openLayer, plainTarEntries, sniffFormat, tarEntries, type OpenedLayer, type PlainEntry } from './layers.js';
import { parseManifest, readRepo, readDigest, readRef, resolveName, type ParsedManifest } from './artifact-params.js';
import { viewerOf, requireAccess, type Viewer } from './viewer.js';

/**
 * GET /api/v1/download: one file of an artifact, or the whole artifact as a tar, for a browser.
 * Access-checked as a /v2 pull, recorded in the audit log as one (with `file` set), streamed
 * (nothing is held in memory but one chunk), with a safe `Content-Disposition` and Range support
 * where the bytes are a whole layer or a file in a tar, tar.gz or eStargz layer.
 *
 * - `?repo=&ref=&layer=`: a layer whole, named by its title in the manifest at `ref`.
 * - `?repo=&layer=`: a layer whole, named by its digest.
 * - `?repo=&layer=&path=`: one file inside a tar, tar.gz(, tar.zst) or eStargz layer. In eStargz only
 *   the chunks holding it are read, each checked against the TOC's digest; in a tar or tar.gz the
 *   layer is read up to the file's end (the whole layer's digest is not checked then: that would
 *   mean reading all of it).
 * - `?repo=&ref=&archive=tar`: the titled layers of the manifest at `ref`, as one tar.
 */

// ---- names

/** RFC 5987 attr-char: what may stand unescaped in `filename*`. */
const ATTR_CHAR = /[A-Za-z0-9!#$&+\-.^_`|~]/;

/** A file name fit for a download: a base name with no control characters, separators or dot-only names. */
export function safeBaseName(name: string, fallback = 'download'): string {
  const base = posix.basename(name.replace(/\\/g, '/')).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '').trim();
  if (base === '' || /^\.+$/.test(base)) return fallback;
  return base.slice(0, 255);
}

/**
 * `attachment` with the name twice (RFC 6266): `filename*` carries it exactly as UTF-8, and
 * `filename` an ASCII stand-in for old clients, with quotes, backslashes and anything outside
 * printable ASCII replaced.
 */
export function contentDisposition(name: string): string {
  const safe = safeBaseName(name);
  const ascii = safe.replace(/[^\x20-\x7e]|["\\%;]/g, '_');
  let star = '';
  for (const ch of safe) star += ATTR_CHAR.test(ch) ? ch : [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${star}`;
}

/** A path inside the archive for a layer's title: relative, no `..`, no control characters; else undefined. */
export function safeArchivePath(title: string): string | undefined {
  const parts = title.replace(/\\/g, '/').split('/').map((p) => p.replace(/[\u0000-\u001f\u007f]/g, '').trim()).filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) return undefined;
  return parts.join('/');
}

const EXT: Record<string, string> = { tar: '.tar', 'tar+gzip': '.tar.gz', 'tar+zstd': '.tar.zst', estargz: '.tar.gz' };

/** The name a whole layer is downloaded under: its title (a packed directory gets its archive's extension), else its digest. */
export function layerFileName(desc: Pick<Descriptor, 'digest' | 'mediaType' | 'annotations'> | undefined, digest: string, format?: string): string {
  const title = desc?.annotations?.[Annotation.Title];
  if (title) {
    const base = safeBaseName(title, digest.slice(7, 19));
    if (desc?.annotations?.[Annotation.Unpack] === 'true') return `${base}${desc.mediaType.endsWith('+zstd') ? '.tar.zst' : desc.mediaType.endsWith('gzip') ? '.tar.gz' : '.tar'}`;
    return base;
  }
  const mt = desc?.mediaType ?? '';
  const ext = format ? (EXT[format] ?? '') : mt.endsWith('+gzip') || mt.endsWith('.gzip') ? '.tar.gz' : mt.endsWith('+zstd') ? '.tar.zst' : mt.endsWith('.tar') ? '.tar' : mt.endsWith('json') ? '.json' : '';
  return `${digest.slice(7, 19)}${ext}`;
}

// ---- the audit record

interface RecordBase {
  repo: string;
  reference: string | null;
  digest: string | null;
  mediaType: string | null;
  artifactType: string | null;
  file: string | null;
}

/**
 * Records the response as /v2 records a pull (src/server/http/audit.ts): bytes counted as they
 * are written; the record journaled just before the last bytes leave (a client holding the whole
 * file implies a journal line); the final figures handed to every sink when the response closes.
 */
export function recordDownload(req: FastifyRequest, reply: FastifyReply, deps: WebDeps, viewer: Viewer, base: () => RecordBase): void {
  const sinks = deps.sinks;
  if (sinks.length === 0) return;
  const res = reply.raw;
  const t0 = Date.now();
  const h0 = process.hrtime.bigint();
  const ip = req.ip ?? '';
  let bytes = 0;
  const queued = sinks.filter((s): s is typeof s & Required<Pick<typeof s, 'settle' | 'sync'>> => s.settle !== undefined && s.sync !== undefined);
  const build = (outcome: AuditRecord['outcome']): AuditRecord => ({
    id: 0,
    time: t0,
    user: viewer.user ?? null,
    ip,
    userAgent: (req.headers['user-agent'] ?? '').slice(0, 256) || null,
    method: req.method,
    action: 'pull',
    ...base(),
    status: res.statusCode,
    bytes,
    durationMs: Math.round(Number(process.hrtime.bigint() - h0) / 1e4) / 100,
    outcome,
  });
  const id = nextAuditId();
  const extra = { kind: 'web-download' };
  let first: AuditRecord | undefined;
  const size = (chunk: unknown, enc?: unknown): number =>
    typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof enc === 'string' ? (enc as BufferEncoding) : 'utf8') : chunk instanceof Uint8Array ? chunk.length : 0;
  const journal = (): void => {
    if (first) return;
    first = { ...build('completed'), id };
    for (const s of sinks) {
      try {
        s.journal?.(first, extra);
      } catch (err) {
        req.log.error({ err }, 'audit: a sink failed to take a record');
      }
    }
  };
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]): boolean {
    bytes += size(chunk, rest[0]);
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]): ServerResponse {
    if (chunk !== undefined && typeof chunk !== 'function') bytes += size(chunk, rest[0]);
    journal();
    if (queued.length === 0) return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    let left = queued.length;
    for (const s of queued) s.settle(() => --left === 0 && (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest));
    return this;
  } as ServerResponse['end'];
  res.once('close', () => {
    const outcome: AuditRecord['outcome'] = res.writableFinished ? 'completed' : 'aborted';
    const durationMs = Math.round(Number(process.hrtime.bigint() - h0) / 1e4) / 100;
    const rec = first ? { ...first, outcome, bytes, durationMs, status: res.statusCode } : { ...build(outcome), id };
    for (const s of sinks) {
      try {
        s.complete(rec, extra);
      } catch (err) {
        req.log.error({ err }, 'audit: a sink failed to take a record');
      }
    }
  });
}

// ---- sending

/** Writes every chunk of `src` to `res`, waiting for drain; stops (and closes `src`) when the client goes away. */
async function writeAll(res: ServerResponse, src: AsyncIterable<Buffer>): Promise<void> {
  for await (const c of src) {
    if (res.destroyed) break;
    if (!res.write(c)) await drained(res);
  }
}

/** The headers of every download: never rendered in the page, never sniffed, never cached for others. */
function downloadHeaders(reply: FastifyReply, name: string): void {
  reply.headers({
    'content-type': 'application/octet-stream',
    'content-disposition': contentDisposition(name),
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; sandbox",
    'cache-control': 'private, no-store',
  });
}

/**
 * The one range a request asks for within `size` bytes, or undefined for the whole. Several
 * ranges are answered with the whole body (RFC 9110 lets a server ignore Range): a browser asks
 * for one when it resumes a download.
 */
function rangeOf(req: FastifyRequest, reply: FastifyReply, size: number): ByteRange | undefined {
  const ranges = requestedRanges(req, reply, size);
  return ranges && ranges.length === 1 ? ranges[0] : undefined;
}

/** Status and length headers for a body of `size` bytes, whole or one range. */
function sized(reply: FastifyReply, size: number, r: ByteRange | undefined): { start: number; end: number } {
  reply.header('accept-ranges', 'bytes');
  if (r) {
    reply.code(206).header('content-range', `bytes ${r.start}-${r.end}/${size}`);
    reply.header('content-length', r.end - r.start + 1);
    return r;
  }
  reply.code(200).header('content-length', size);
  return { start: 0, end: size - 1 };
}

/** Takes `start`..`end` (inclusive) of a stream. */
async function* slice(src: AsyncIterable<Buffer>, start: number, end: number): AsyncGenerator<Buffer> {
  let at = 0;
  for await (const c of src) {
    const from = Math.max(start - at, 0);
    const to = Math.min(end + 1 - at, c.length);
    at += c.length;
    if (to > from) yield from === 0 && to === c.length ? c : c.subarray(from, to);
    if (at > end) return;
  }
}

// ---- the handler

function manifestLayer(m: ParsedManifest, digest: string): Descriptor | undefined {
  return m.layers.find((l) => l.digest === digest);
}

export async function handleDownload(deps: WebDeps, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
  const q = req.query as Record<string, string | undefined>;
  const repo = readRepo(q);
  const viewer = await viewerOf(req, deps);
  const name = await resolveName(deps, repo);
  const rec: RecordBase = { repo: name, reference: null, digest: null, mediaType: null, artifactType: null, file: null };
  recordDownload(req, reply, deps, viewer, () => rec);
  requireAccess(viewer, name, 'pull');

  if (q.archive !== undefined) {
    if (q.archive !== 'tar') throw new OciError('UNSUPPORTED', `archive must be "tar", not "${q.archive.slice(0, 20)}"`, { status: 400 });
    return sendArchive(deps, req, reply, name, readRef(q), rec);
  }
  const layer = readDigest(q, 'layer');
  rec.digest = layer;
  let desc: Descriptor | undefined;
  if (q.ref !== undefined) {
    const ref = readRef(q);
    rec.reference = ref;
    const stored = await deps.backend.getManifest(name, ref);
    const m = parseManifest(stored.body);
    desc = manifestLayer(m, layer);
    if (!desc) throw new OciError('BLOB_UNKNOWN', `layer ${layer} is not in the manifest ${stored.digest}`, { detail: { digest: layer } });
    rec.mediaType = desc.mediaType;
    rec.artifactType = m.artifactType ?? m.config?.mediaType ?? null;
  }

  if (q.path === undefined) {
    const handle = await deps.backend.openBlob(name, layer, true);
    const format = desc || handle.size === 0 ? undefined : await sniffFormat(handle);
    const file = layerFileName(desc, layer, format);
    rec.file = desc?.annotations?.[Annotation.Title] ?? file;
    downloadHeaders(reply, file);
    reply.header('etag', `"${layer}"`);
    const r = sized(reply, handle.size, handle.size === 0 ? undefined : rangeOf(req, reply, handle.size));
    if (handle.size === 0) return reply.send();
    // BlobHandle.send verifies a whole layer against its digest, as a /v2 blob GET does.
    return sendBody(reply, (res) => handle.send(res, r.start, r.end));
  }

  const path = checkPath(q.path);
  rec.file = path;
  const opened = await openLayer(deps.backend, name, layer, desc?.annotations?.[TOC_DIGEST_ANNOTATION]);
  if (opened.estargz) return sendEstargzFile(req, reply, opened, path, layer);
  if (opened.format === 'none') throw new OciError('UNSUPPORTED', `layer ${layer} is not an archive; download it whole (without path)`, { status: 400 });
  return sendTarFile(req, reply, opened, path, layer);
}

function notInLayer(path: string, layer: string): OciError {
  return new OciError('BLOB_UNKNOWN', `no file "${path.slice(0, 200)}" in layer ${layer}`, { detail: { path: path.slice(0, 200), digest: layer } });
}

async function sendEstargzFile(req: FastifyRequest, reply: FastifyReply, layer: OpenedLayer, path: string, digest: string): Promise<void> {
  const fs = layer.estargz!;
  let st;
  try {
    st = await fs.stat(path);
  } catch (err) {
    if (isWharfError(err)) throw notInLayer(path, digest);
    throw err;
  }
  if (st.type !== 'file') throw new OciError('UNSUPPORTED', `"${path.slice(0, 200)}" is a ${st.type}, not a file`, { status: 400 });
  downloadHeaders(reply, path);
  if (st.size === 0) {
    sized(reply, 0, undefined);
    return void reply.send();
  }
  const r = sized(reply, st.size, rangeOf(req, reply, st.size));
  // Only the chunks holding the range are read, each verified against its digest in the TOC.
  return sendBody(reply, (res) => writeAll(res, fs.createReadStream(st.path, r) as AsyncIterable<Buffer>));
}

/** A file in an uncompressed tar: found by its headers alone, then read with one ranged read. */
async function sendPlainTarFile(req: FastifyRequest, reply: FastifyReply, layer: OpenedLayer, path: string, digest: string): Promise<void> {
  let found: PlainEntry | undefined;
  for await (const e of plainTarEntries(layer.handle)) {
    if (e.path === path) {
      found = e;
      break;
    }
  }
  if (!found) throw notInLayer(path, digest);
  if (found.type !== 'file') throw new OciError('UNSUPPORTED', `"${path.slice(0, 200)}" is a ${found.type === 'other' ? 'special' : found.type} entry, not a file`, { status: 400 });
  downloadHeaders(reply, path);
  if (found.size === 0) {
    sized(reply, 0, undefined);
    return void reply.send();
  }
  const r = sized(reply, found.size, rangeOf(req, reply, found.size));
  const at = found.dataStart;
  return sendBody(reply, async (res) => writeAll(res, (await layer.handle.stream({ start: at + r.start, end: at + r.end })) as AsyncIterable<Buffer>));
}

async function sendTarFile(req: FastifyRequest, reply: FastifyReply, layer: OpenedLayer, path: string, digest: string): Promise<void> {
  if (layer.format === 'tar') return sendPlainTarFile(req, reply, layer, path, digest);
  const entries = tarEntries(layer);
  try {
    for await (const { header, body } of entries) {
      const name = cleanName(header.name ?? '');
      if (name !== path) {
        body.resume();
        continue;
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        body.resume();
        throw new OciError('UNSUPPORTED', `"${path.slice(0, 200)}" is a ${header.type} entry, not a file`, { status: 400 });
      }
      const size = header.size ?? 0;
      downloadHeaders(reply, path);
      if (size === 0) {
        sized(reply, 0, undefined);
        body.resume();
        return void reply.send();
      }
      const r = sized(reply, size, rangeOf(req, reply, size));
      // The entries generator stays open while its body is read; closing it stops the layer's read.
      return await sendBody(reply, (res) => writeAll(res, slice(body as AsyncIterable<Buffer>, r.start, r.end)));
    }
  } finally {
    await entries.return(undefined);
  }
  throw notInLayer(path, digest);
}

async function sendArchive(deps: WebDeps, req: FastifyRequest, reply: FastifyReply, name: string, ref: string, rec: RecordBase): Promise<void> {
  rec.reference = ref;
  const stored = await deps.backend.getManifest(name, ref);
  rec.digest = stored.digest;
  const m = parseManifest(stored.body);
  if (m.manifests) throw new OciError('UNSUPPORTED', `${ref} is an index; download one of its manifests`, { status: 400 });
  rec.artifactType = m.artifactType ?? m.config?.mediaType ?? null;
  // The titled layers under their titles; without any, every layer under its digest.
  const titled = m.layers.filter((l) => l.annotations?.[Annotation.Title]);
  const chosen = titled.length > 0 ? titled : m.layers;
  const used = new Set<string>();
  const items = chosen.map((l, i) => {
    let path = (titled.length > 0 ? safeArchivePath(l.annotations![Annotation.Title]!) : undefined) ?? `layer-${i + 1}-${layerFileName(l, l.digest)}`;
    if (l.annotations?.[Annotation.Unpack] === 'true' && titled.length > 0) path = `${path.replace(/\/+$/, '')}${l.mediaType.endsWith('gzip') ? '.tar.gz' : l.mediaType.endsWith('zstd') ? '.tar.zst' : '.tar'}`;
    // Two layers may not land on one path: the later gets a suffix.
    let unique = path;
    for (let n = 2; used.has(unique); n++) unique = `${path}.${n}`;
    used.add(unique);
    return { desc: l, path: unique };
  });
  // Every layer is opened (access, presence) before the first byte goes out.
  const handles = await Promise.all(items.map((it) => deps.backend.openBlob(name, it.desc.digest, true)));
  const base = name.split('/').pop()!;
  const archiveName = `${base}-${ref.startsWith('sha256:') ? ref.slice(7, 19) : ref}.tar`;
  rec.file = archiveName;
  downloadHeaders(reply, archiveName);
  reply.header('accept-ranges', 'none');
  const tarStream = await import('tar-stream');
  const created = Date.parse(m.annotations?.[Annotation.Created] ?? '');
  const mtime = Number.isFinite(created) ? new Date(created) : new Date(0);
  return sendBody(reply, async (res) => {
    const pack = tarStream.pack();
    const feed = (async () => {
      for (const [i, it] of items.entries()) {
        const h = handles[i]!;
        const entry = pack.entry({ name: it.path, size: h.size, mode: 0o644, mtime, type: 'file' });
        // Each layer is verified as it goes: bad bytes fail the entry, and the response is cut short.
        const src: Readable = h.size === 0 ? Readable.from([]) : verifyReader(await h.stream({ start: 0, end: h.size - 1 }), it.desc);
        await pipeline(src, entry);
      }
      pack.finalize();
    })();
    feed.catch((err: unknown) => pack.destroy(err as Error));
    await Promise.all([writeAll(res, pack as AsyncIterable<Buffer>), feed]);
  });
}
