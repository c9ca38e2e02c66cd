import { pipeline } from 'node:stream/promises';
import { openArtifact, getFiles, GET_DEFAULTS, type OpenedArtifact } from '../../client/index.js';
import { EstargzCache, defaultCacheDir, cleanName, type FileStat } from '../../estargz/index.js';
import { parseDuration, parseSize } from '../../spec/index.js';
import { ExitError } from '../errors.js';
import { withContext, Context } from '../shared/context.js';
import { humanSize } from '../shared/output.js';
import { describeResult, parseAnnotations, reportPushed } from '../shared/artifact.js';
import { str, strs, bool, type Flags } from '../shared/flags.js';

function cacheFor(flags: Flags): EstargzCache | undefined {
  if (flags.cache === false) return undefined;
  return new EstargzCache(str(flags.cacheDir) ?? defaultCacheDir());
}

function note(m: string): void {
  process.stderr.write(`wharf: note: ${m}\n`);
}

async function withArtifact(ref: string, flags: Flags, fn: (ctx: Context, art: OpenedArtifact) => Promise<void>, extra: { maxUnpacked?: number } = {}): Promise<void> {
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const art = await openArtifact(t.target, Context.needReference(t, ref), { cache: cacheFor(flags), platform: str(flags.platform), onMessage: note, maxUnpacked: extra.maxUnpacked });
    try {
      await fn(ctx, art);
    } finally {
      await art.close();
      if (bool(flags.stats)) {
        const s = art.stats();
        process.stderr.write(`fetched ${s.bytes} bytes in ${s.requests} requests${s.wholeBlob ? ' (whole blob)' : ''}\n`);
      }
    }
  });
}

/** `drwxr-xr-x`, with setuid, setgid and sticky as ls shows them. */
export function modeString(st: FileStat): string {
  const t = { dir: 'd', symlink: 'l', hardlink: 'h', file: '-', char: 'c', block: 'b', fifo: 'p' }[st.type];
  const m = st.mode;
  const rwx = (shift: number, special: boolean, ch: string): string => {
    const r = m & (4 << shift) ? 'r' : '-';
    const w = m & (2 << shift) ? 'w' : '-';
    const x = m & (1 << shift);
    return `${r}${w}${special ? (x ? ch : ch.toUpperCase()) : x ? 'x' : '-'}`;
  };
  return `${t}${rwx(6, (m & 0o4000) !== 0, 's')}${rwx(3, (m & 0o2000) !== 0, 's')}${rwx(0, (m & 0o1000) !== 0, 't')}`;
}

function entryJson(st: FileStat): Record<string, unknown> {
  return { path: st.path, type: st.type, size: st.size, mode: `0${st.mode.toString(8)}`, mtime: st.mtime?.toISOString(), linkName: st.linkName, digest: st.digest };
}

export async function runLs(ref: string, path: string | undefined, flags: Flags): Promise<void> {
  await withArtifact(ref, flags, async (ctx, art) => {
    let entries = art.fs.list();
    if (path !== undefined && cleanName(path) !== '') {
      const dir = (await art.fs.stat(path)).path;
      const st = await art.fs.lstat(dir);
      if (st.type !== 'dir') entries = [st];
      else entries = entries.filter((e) => e.path.startsWith(`${dir}/`) && (bool(flags.recursive) || !e.path.slice(dir.length + 1).includes('/')));
    }
    if (ctx.out.json) {
      ctx.out.result({ reference: `${ref}`, digest: art.manifest.digest, kind: art.fs.kind, entries: entries.map(entryJson) });
      return;
    }
    const long = bool(flags.long);
    const width = long ? Math.max(1, ...entries.map((e) => String(e.size).length)) : 0;
    const lines: string[] = [];
    for (const e of entries) {
      const name = `${e.path}${e.type === 'dir' ? '/' : ''}`;
      if (!long) {
        lines.push(name);
        continue;
      }
      const when = e.mtime ? e.mtime.toISOString().replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, '') : '-'.padEnd(16);
      const link = e.type === 'symlink' ? ` -> ${e.linkName}` : e.type === 'hardlink' ? ` link to ${e.linkName}` : '';
      lines.push(`${modeString(e)} ${String(e.size).padStart(width)} ${when} ${name}${link}`);
    }
    if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
  });
}

function intFlag(v: unknown, name: string): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const n = parseSize(s);
  if (n === undefined) throw new ExitError(`${name} must be a number of bytes (e.g. 4096, 4K, 5MiB), not "${s}"`, 2);
  return n;
}

export async function runCat(ref: string, path: string, flags: Flags): Promise<void> {
  const offset = intFlag(flags.offset, '--offset') ?? 0;
  const length = intFlag(flags.length, '--length');
  if (length === 0) return;
  await withArtifact(ref, flags, async (_ctx, art) => {
    const st = await art.fs.stat(path);
    if (st.type !== 'file') throw new ExitError(`${path} is a ${st.type === 'dir' ? 'directory' : st.type}, not a file; try wharf ls`, 1);
    const range = { start: offset, end: length === undefined ? undefined : offset + length - 1 };
    if (offset >= st.size) return;
    try {
      await pipeline(art.fs.createReadStream(path, range), process.stdout);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
    }
  });
}

export async function runGet(ref: string, paths: string[], flags: Flags): Promise<void> {
  const maxTotalSize = intFlag(flags.maxTotalSize, '--max-total-size') ?? GET_DEFAULTS.maxTotalSize;
  const maxFileSize = intFlag(flags.maxFileSize, '--max-file-size') ?? GET_DEFAULTS.maxFileSize;
  const mf = str(flags.maxFiles);
  const maxFiles = mf === undefined ? GET_DEFAULTS.maxFiles : Number(mf);
  if (!Number.isSafeInteger(maxFiles) || maxFiles < 1) throw new ExitError(`--max-files must be a positive integer, not "${mf}"`, 2);
  const output = str(flags.output) ?? '.';
  // A plain tar.gz is unpacked whole before a file is picked: the total limit applies to it.
  await withArtifact(
    ref,
    flags,
    async (ctx, art) => {
      const res = await getFiles(art.fs, paths, {
        output,
        maxFiles,
        maxTotalSize,
        maxFileSize,
        keepOldFiles: bool(flags.keepOldFiles),
        allowPathTraversal: bool(flags.allowPathTraversal),
      });
      ctx.out.line(`Wrote ${res.files} entries (${humanSize(res.bytes)}) to ${output}`);
      ctx.out.line(`Digest: ${art.manifest.digest}`);
      ctx.out.result({ digest: art.manifest.digest, output, files: res.files, bytes: res.bytes, entries: res.entries.map(entryJson) });
    },
    { maxUnpacked: maxTotalSize },
  );
}

export async function runCache(action: string, flags: Flags): Promise<void> {
  const cache = new EstargzCache(str(flags.cacheDir) ?? defaultCacheDir());
  const json = str(flags.format) === 'json';
  const print = (text: string, obj: unknown): void => {
    process.stdout.write(json ? `${JSON.stringify(obj, null, 2)}\n` : `${text}\n`);
  };
  switch (action) {
    case 'info': {
      const i = await cache.info();
      print(
        [`Cache: ${i.dir}`, `TOCs: ${i.tocs}`, `Chunks: ${i.chunks}`, `Plain layers: ${i.blobs}`, `Size: ${humanSize(i.bytes)}`, ...(i.oldest ? [`Least recently used: ${i.oldest.toISOString()}`] : [])].join('\n'),
        { dir: i.dir, tocs: i.tocs, chunks: i.chunks, blobs: i.blobs, bytes: i.bytes, oldest: i.oldest?.toISOString(), newest: i.newest?.toISOString() },
      );
      return;
    }
    case 'prune': {
      const age = str(flags.maxAge);
      const size = str(flags.maxSize);
      if (age === undefined && size === undefined) throw new ExitError('cache prune needs --max-age and/or --max-size', 2);
      const maxAgeMs = age === undefined ? undefined : parseDuration(age);
      if (age !== undefined && maxAgeMs === undefined) throw new ExitError(`--max-age must be a duration such as 7d or 12h, not "${age}"`, 2);
      const maxSize = size === undefined ? undefined : parseSize(size);
      if (size !== undefined && maxSize === undefined) throw new ExitError(`--max-size must be a size such as 1G, not "${size}"`, 2);
      const r = await cache.prune({ maxAgeMs, maxSize });
      print(`Removed ${r.removed} entries (${humanSize(r.freed)}) from ${cache.dir}`, { dir: cache.dir, ...r });
      return;
    }
    case 'clear': {
      const r = await cache.clear();
      print(`Removed ${r.removed} entries (${humanSize(r.freed)}) from ${cache.dir}`, { dir: cache.dir, ...r });
      return;
    }
    default:
      throw new ExitError(`unknown cache action "${action}"; use info, prune or clear`, 2);
  }
}

/** `wharf push --estargz <ref> <dir>`: one directory, one eStargz layer, an image manifest. */
export async function runPushEstargz(ref: string, files: string[], flags: Flags): Promise<void> {
  if (files.length !== 1) throw new ExitError('push --estargz takes exactly one directory: wharf push --estargz <ref> <dir>', 2);
  if (str(flags.config)) throw new ExitError('push --estargz writes its own image config; --config does not apply', 2);
  const chunkSize = intFlag(flags.estargzChunkSize, '--estargz-chunk-size');
  if (chunkSize === 0) throw new ExitError('--estargz-chunk-size must be more than 0', 2);
  const { pushEstargz } = await import('../../client/index.js');
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout) });
    if (!ctx.out.json) process.stderr.write(`Packing ${files[0]} as one eStargz layer\n`);
    const res = await pushEstargz(t.target, {
      dir: files[0]!,
      chunkSize,
      artifactType: str(flags.artifactType),
      annotations: parseAnnotations(strs(flags.annotation)),
      platform: str(flags.platform),
      tags: t.tags,
      concurrency: ctx.concurrency,
      progress: ctx.out.progress('Uploading', 'Uploaded '),
    });
    await reportPushed(ctx, t, res, flags);
    ctx.out.line(`Layer: ${res.layer.digest} (eStargz, ${res.build.entries} entries, ${humanSize(res.build.size)}; ${humanSize(res.build.uncompressedSize)} uncompressed)`);
    ctx.out.line(`TOC: ${res.build.tocDigest}`);
    ctx.out.line(`Digest: ${res.manifest.digest}`);
    ctx.out.result({ ...describeResult(t.display, res.manifest, t.tags), layer: res.layer, tocDigest: res.build.tocDigest, diffId: res.build.diffId });
  });
}
