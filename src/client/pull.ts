import { createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, realpath, rename, rm, symlink, link, utimes } from 'node:fs/promises';
import { createHash, randomUUID } from 'node:crypto';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { OciError, Annotation, createDigester, isOciError, isIndexMediaType, isManifestMediaType, type Descriptor, type ImageIndex, type ImageManifest, type Platform, WharfError, isKnownError } from '../spec/index.js';
import { VerifyStream, canFetchFrom, fetchManifest, fileReader, semaphore, writeChunksToFile, type ReadOnlyTarget } from '../content/index.js';
import { MODE_ANNOTATION } from './push.js';
import type { ProgressListener } from './source.js';

export interface PullOptions {
  /** Output directory (default the current one). */
  output?: string;
  keepOldFiles?: boolean;
  allowPathTraversal?: boolean;
  /** Also pull the files of the subject the artifact is attached to. */
  includeSubject?: boolean;
  /** From an index, take the manifest of this artifact type. */
  artifactType?: string;
  /** From an index, take the manifest of this platform (`os/arch[/variant]`). */
  platform?: string;
  concurrency?: number;
  progress?: ProgressListener;
  signal?: AbortSignal;
}

export interface PulledFile {
  path: string;
  desc: Descriptor;
  unpacked: boolean;
}

export interface PullResult {
  root: Descriptor;
  files: PulledFile[];
}

export function parsePlatform(s: string): Platform {
  const [os, architecture, variant] = s.split('/');
  if (!os || !architecture) throw new WharfError('INVALID_ARGUMENT', `platform "${s}" must be os/arch[/variant], e.g. linux/amd64`);
  const p: Platform = { os, architecture };
  if (variant) p.variant = variant;
  return p;
}

export function platformMatches(want: Platform, got: Platform | undefined): boolean {
  return !!got && got.os === want.os && got.architecture === want.architecture && (want.variant === undefined || got.variant === want.variant);
}

function within(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r));
}

/** Rejects `..`, absolute paths and empty names: a title or tar entry must stay below the output directory. */
function checkRelative(name: string, allow: boolean, what: string): void {
  if (allow) return;
  const parts = name.split(/[/\\]/);
  if (isAbsolute(name) || /^[A-Za-z]:/.test(name) || parts.includes('..') || name === '') {
    throw new WharfError('INVALID_ARGUMENT', `${what} "${name}" would be written outside the output directory; pass --allow-path-traversal if you trust it`);
  }
}

/** Every existing directory from `root` to `dir` must resolve inside `root` (no symlink leading out). */
async function checkNoEscape(root: string, dir: string, allow: boolean, what: string): Promise<void> {
  if (allow) return;
  const realRoot = await realpath(root);
  let p = dir;
  // Find the deepest existing ancestor and make sure its real path stays within the root.
  for (;;) {
    try {
      const real = await realpath(p);
      if (!within(realRoot, real)) throw new WharfError('INVALID_ARGUMENT', `${what} leads through a symbolic link out of the output directory (${p} -> ${real}); pass --allow-path-traversal if you trust it`);
      return;
    } catch (err) {
      if (isKnownError(err)) throw err;
      const parent = dirname(p);
      if (parent === p) return;
      p = parent;
    }
  }
}

async function pathExists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Collects the manifests whose files to pull: the root, or the one chosen from an index; plus
 * the subject's when asked.
 */
async function selectManifests(src: ReadOnlyTarget, root: Descriptor, opts: PullOptions): Promise<Array<{ desc: Descriptor; manifest: ImageManifest }>> {
  const out: Array<{ desc: Descriptor; manifest: ImageManifest }> = [];
  const seen = new Set<string>();
  const visit = async (desc: Descriptor, top: boolean): Promise<void> => {
    if (seen.has(desc.digest) || !isManifestMediaType(desc.mediaType)) return;
    seen.add(desc.digest);
    const body = await fetchManifest(src, desc, opts);
    const doc = JSON.parse(body.toString('utf8')) as ImageManifest | ImageIndex;
    if (isIndexMediaType(desc.mediaType)) {
      const idx = doc as ImageIndex;
      let children = idx.manifests;
      if (opts.artifactType) children = children.filter((m) => m.artifactType === opts.artifactType);
      if (opts.platform) {
        const want = parsePlatform(opts.platform);
        children = children.filter((m) => platformMatches(want, m.platform));
      }
      if ((opts.artifactType || opts.platform) && children.length === 0) {
        throw new WharfError('NOT_FOUND', `no manifest in index ${desc.digest} matches${opts.artifactType ? ` artifact type ${opts.artifactType}` : ''}${opts.platform ? ` platform ${opts.platform}` : ''}`);
      }
      if (opts.artifactType || opts.platform) children = children.slice(0, 1);
      for (const c of children) await visit(c, false);
    } else {
      const m = doc as ImageManifest;
      if (top && opts.artifactType && (m.artifactType ?? m.config?.mediaType) !== opts.artifactType) {
        throw new WharfError('NOT_FOUND', `${desc.digest} is of artifact type ${m.artifactType ?? m.config?.mediaType}, not ${opts.artifactType}`);
      }
      out.push({ desc, manifest: m });
    }
    if (opts.includeSubject && (doc as ImageManifest).subject) await visit((doc as ImageManifest).subject!, false);
  };
  await visit(root, true);
  return out;
}

/**
 * Pulls the files of an artifact into a directory: every layer with a title becomes a file (or a
 * directory, for layers marked to unpack). Each blob is downloaded, verified, to a temp file in
 * the output directory and renamed into place only when whole, so a failure leaves nothing
 * behind. Modes recorded at push are restored.
 */
export async function pullArtifact(src: ReadOnlyTarget, reference: string, opts: PullOptions = {}): Promise<PullResult> {
  const out = resolve(opts.output ?? '.');
  const root = await src.resolve(reference, opts);
  const manifests = await selectManifests(src, root, opts);
  const layers: Descriptor[] = [];
  const names = new Set<string>();
  for (const { manifest } of manifests) {
    for (const l of manifest.layers ?? []) {
      const title = l.annotations?.[Annotation.Title];
      if (!title || names.has(title)) continue;
      checkRelative(title, Boolean(opts.allowPathTraversal), 'file');
      names.add(title);
      layers.push(l);
    }
  }
  const layerCount = manifests.reduce((n, m) => n + (m.manifest.layers?.length ?? 0), 0);
  if (layers.length === 0 && layerCount > 0) {
    throw new OciError(
      'UNSUPPORTED',
      `${root.digest} has no files to pull: none of its ${layerCount} layers has a file name (${Annotation.Title}), as in a container image; unpack its file system with "wharf get <ref> -o <dir>" or copy the image with "wharf cp <ref> <dir> --to-oci-layout"`,
    );
  }
  if (layers.length === 0) return { root, files: [] };
  // The output directory is made only now that there is something to write, and removed again
  // (with whatever this pull put in it) if the pull fails: a failed pull leaves no directory behind.
  const created = await mkdir(out, { recursive: true });
  try {
    return await pullLayers(src, root, out, layers, opts);
  } catch (err) {
    if (created !== undefined) await rm(created, { recursive: true, force: true });
    throw err;
  }
}

async function pullLayers(src: ReadOnlyTarget, root: Descriptor, out: string, layers: Descriptor[], opts: PullOptions): Promise<PullResult> {
  // Check every destination before anything is downloaded.
  for (const l of layers) {
    const title = l.annotations![Annotation.Title]!;
    const dest = resolve(out, title);
    if (!opts.allowPathTraversal && !within(out, dest)) checkRelative('..', false, `file "${title}"`);
    await checkNoEscape(out, dirname(dest), Boolean(opts.allowPathTraversal), `file "${title}"`);
    if (opts.keepOldFiles && (await pathExists(dest))) throw new WharfError('INVALID_ARGUMENT', `${dest} exists; not overwriting it (--keep-old-files)`);
  }
  const limit = semaphore(opts.concurrency ?? 3);
  const files: PulledFile[] = [];
  await Promise.all(
    layers.map((l) =>
      limit(async () => {
        const title = l.annotations![Annotation.Title]!;
        const dest = resolve(out, title);
        // Named after the file and its content, so that a pull run again finds what an interrupted
        // one had written, and goes on from there.
        const tmp = join(out, `.wharf-${createHash('sha256').update(`${title}\0${l.digest}`).digest('hex').slice(0, 32)}.partial`);
        opts.progress?.start?.(l);
        let keep = false;
        try {
          try {
            await download(src, l, tmp, opts);
          } catch (err) {
            // A download cut short is kept for the next run; content that proved wrong is not.
            keep = !isMismatch(err);
            throw err;
          }
          await mkdir(dirname(dest), { recursive: true });
          if (l.annotations?.[Annotation.Unpack] === 'true') {
            await unpackInto(tmp, out, title, l.annotations[Annotation.Digest], opts);
            files.push({ path: dest, desc: l, unpacked: true });
          } else {
            const mode = l.annotations?.[MODE_ANNOTATION];
            if (mode && /^[0-7]{1,4}$/.test(mode)) await chmod(tmp, parseInt(mode, 8) & 0o777);
            else await chmod(tmp, 0o644);
            await rename(tmp, dest);
            files.push({ path: dest, desc: l, unpacked: false });
          }
          opts.progress?.done?.(l);
        } finally {
          if (!keep || !((await lstat(tmp).catch(() => undefined))?.size ?? 0)) await rm(tmp, { force: true });
        }
      }),
    ),
  );
  return { root, files };
}

/**
 * Downloads a blob to `tmp`, verified. A `tmp` left by an interrupted run is resumed with a ranged
 * GET for the rest, and the whole file then checked against the digest; a file that does not
 * match (or that the target cannot resume) is downloaded again from its start.
 */
async function download(src: ReadOnlyTarget, l: Descriptor, tmp: string, opts: PullOptions): Promise<void> {
  const onBytes = (n: number): void => opts.progress?.bytes?.(l, n);
  const have = (await lstat(tmp).catch(() => undefined))?.size ?? 0;
  if (have > 0 && have <= l.size && canFetchFrom(src)) {
    try {
      onBytes(have);
      if (have < l.size) await writeToFile(await src.fetchFrom(l, have, opts), tmp, { at: have, onBytes, signal: opts.signal });
      await pipeline(fileReader(tmp), new VerifyStream(l), new Writable({ write: (_c, _e, cb) => cb() }), { signal: opts.signal });
      return;
    } catch (err) {
      if (!isMismatch(err)) throw err;
      // The bytes kept from before were not the blob's (the file was changed, or came from
      // elsewhere): start again from nothing.
    }
  }
  await rm(tmp, { force: true });
  await writeToFile(await src.fetch(l, opts), tmp, { onBytes, signal: opts.signal });
}

/** Content that proved not to be the blob: a digest or size that does not match. */
function isMismatch(err: unknown): boolean {
  return isOciError(err, 'DIGEST_INVALID') || isOciError(err, 'SIZE_INVALID');
}

/** writeChunksToFile, and the body destroyed on failure, also when the file could not be opened. */
async function writeToFile(body: Readable, path: string, o: Parameters<typeof writeChunksToFile>[2]): Promise<void> {
  // The connection the body holds must not wait for the garbage collector.
  await writeChunksToFile(body, path, o).catch((err: unknown) => {
    body.destroy();
    throw err;
  });
}

/**
 * Extracts a tar+gzip whose entries are `<title>/...` into a staging directory beside the
 * destination, then swaps it into place. Entries that would land outside, symlinks pointing out
 * and writes through symlinks are refused unless traversal is allowed; the uncompressed tar's
 * digest is checked when the pusher recorded it.
 */
async function unpackInto(archive: string, out: string, title: string, tarDigest: string | undefined, opts: PullOptions): Promise<void> {
  const allow = Boolean(opts.allowPathTraversal);
  const staging = join(out, `.wharf-${randomUUID()}.d`);
  await mkdir(staging, { mode: 0o700 });
  const dirModes: Array<[string, number, Date | undefined]> = [];
  const hash = tarDigest ? createDigester() : undefined;
  try {
    // Loaded when used: it costs every command's start, and only directory layers need it.
    const tarStream = await import('tar-stream');
    const extract = tarStream.extract();
    const consume = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        const name = h.name.replace(/^\.\//, '').replace(/\/+$/, '');
        if (name === '' || name === '.') {
          entry.resume();
          continue;
        }
        checkRelative(name, allow, 'archive entry');
        if (!allow && name !== title && !name.startsWith(`${title}/`)) {
          throw new WharfError('INVALID_ARGUMENT', `archive entry "${name}" is not under "${title}"; pass --allow-path-traversal if you trust it`);
        }
        const target = join(staging, name);
        if (!allow) {
          // No writing through a symlink that an earlier entry created.
          let p = dirname(target);
          while (p.length > staging.length) {
            const st = await lstat(p).catch(() => undefined);
            if (st?.isSymbolicLink()) throw new WharfError('INVALID_ARGUMENT', `archive entry "${name}" would be written through a symbolic link`);
            p = dirname(p);
          }
        }
        await mkdir(dirname(target), { recursive: true });
        // Directories keep setgid and sticky bits (shared folders rely on them); files never become
        // setuid or setgid executables by surprise.
        const mode = (h.mode ?? 0o644) & (h.type === 'directory' ? 0o7777 : 0o1777);
        switch (h.type) {
          case 'directory':
            await mkdir(target, { recursive: true });
            dirModes.push([target, mode, h.mtime]);
            entry.resume();
            break;
          case 'file':
          case 'contiguous-file':
            await pipeline(entry, createWriteStream(target, { mode: 0o600 }));
            await chmod(target, mode);
            if (h.mtime) await utimes(target, h.mtime, h.mtime).catch(() => undefined);
            break;
          case 'symlink': {
            const linkname = h.linkname ?? '';
            const finalPath = join(out, name);
            if (!allow && (isAbsolute(linkname) || !within(out, resolve(dirname(finalPath), linkname)))) {
              throw new WharfError('INVALID_ARGUMENT', `archive entry "${name}" is a symbolic link pointing out of the output directory (${linkname}); pass --allow-path-traversal if you trust it`);
            }
            await symlink(linkname, target);
            entry.resume();
            break;
          }
          case 'link': {
            const linkname = (h.linkname ?? '').replace(/^\.\//, '');
            checkRelative(linkname, allow, 'hard link target');
            await link(join(staging, linkname), target);
            entry.resume();
            break;
          }
          default:
            // Devices, fifos and the like have no place in an artifact.
            entry.resume();
        }
      }
    })();
    const hasher = new Transform({
      transform(c: Buffer, _e, cb) {
        hash?.update(c);
        cb(null, c);
      },
    });
    await Promise.all([pipeline(fileReader(archive), createGunzip(), hasher, extract), consume]);
    if (hash && tarDigest) {
      const got = `sha256:${hash.digest('hex')}`;
      if (tarDigest.startsWith('sha256:') && got !== tarDigest) throw new OciError('DIGEST_INVALID', `unpacked content of "${title}" is ${got}, expected ${tarDigest}`);
    }
    for (const [p, m, t] of dirModes.reverse()) {
      await chmod(p, m);
      // Tars made in portable mode carry no directory mtime (0); keep the extraction time then.
      if (t && t.getTime() > 0) await utimes(p, t, t).catch(() => undefined);
    }
    const dest = join(out, title);
    const staged = join(staging, title);
    if (!(await pathExists(staged))) await mkdir(staged, { recursive: true });
    if (await pathExists(dest)) {
      if (opts.keepOldFiles) throw new WharfError('INVALID_ARGUMENT', `${dest} exists; not overwriting it (--keep-old-files)`);
      await rm(dest, { recursive: true, force: true });
    }
    await mkdir(dirname(dest), { recursive: true });
    await rename(staged, dest);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
