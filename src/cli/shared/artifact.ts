import { writeFile } from 'node:fs/promises';
// The modules themselves, not client/index.js (see run/push.ts).
import { DigestMemo } from '../../client/memo.js';
import { readAnnotationFile, type FileSpec } from '../../client/push.js';
import type { OpenedTarget } from '../../client/targets.js';
import type { Descriptor } from '../../spec/index.js';
import { ExitError } from '../errors.js';
import type { Context } from './context.js';
import { str, strs, type Flags } from './flags.js';

/** What the commands that make an artifact share (push, push --estargz, attach, manifest push). */

/** `file[:mediaType]`: the part after the last colon is a media type when it has a slash. */
export function parseFileArg(arg: string): FileSpec {
  const i = arg.lastIndexOf(':');
  if (i > 0 && arg.slice(i + 1).includes('/')) return { path: arg.slice(0, i), mediaType: arg.slice(i + 1) };
  return { path: arg };
}

export function parseAnnotations(values: string[]): Record<string, string> {
  // fromEntries defines keys: `-a __proto__=x` is an annotation like any other, not a prototype.
  return Object.fromEntries(
    values.map((a) => {
      const i = a.indexOf('=');
      if (i <= 0) throw new ExitError(`invalid annotation "${a}"; write it as key=value`, 2);
      return [a.slice(0, i), a.slice(i + 1)];
    }),
  );
}

/** Shared by push and attach: the artifact-building flags. */
export async function artifactFlags(flags: Flags): Promise<{
  annotations: Record<string, string>;
  fileAnnotations?: Record<string, Record<string, string>>;
  imageSpec: 'v1.1' | 'v1.0';
}> {
  const spec = str(flags.imageSpec) ?? 'v1.1';
  if (spec !== 'v1.1' && spec !== 'v1.0') throw new ExitError(`--image-spec must be v1.1 or v1.0, not "${spec}"`, 2);
  const af = str(flags.annotationFile);
  return { annotations: parseAnnotations(strs(flags.annotation)), fileAnnotations: af ? await readAnnotationFile(af) : undefined, imageSpec: spec };
}

export function describeResult(display: string, desc: Descriptor, tags: string[]): Record<string, unknown> {
  return { reference: `${display}@${desc.digest}`, mediaType: desc.mediaType, digest: desc.digest, size: desc.size, artifactType: desc.artifactType, tags };
}

/**
 * The digest memo of pushed files (DigestMemo.defaultPath()), unless `--no-digest-memo` or
 * `WHARF_DIGEST_MEMO=off` (also 0, false, no) turns it off.
 */
export async function digestMemo(flags: Flags): Promise<DigestMemo | undefined> {
  if (flags.digestMemo === false) return undefined;
  const env = process.env.WHARF_DIGEST_MEMO?.trim().toLowerCase();
  if (env && ['off', '0', 'false', 'no'].includes(env)) return undefined;
  return DigestMemo.open();
}

/** After a push: ends the progress bars, writes --export-manifest, and says what was pushed where. */
export async function reportPushed(ctx: Context, t: OpenedTarget, res: { manifest: Descriptor; body: Buffer }, flags: Flags): Promise<void> {
  ctx.out.stopProgress();
  const exp = str(flags.exportManifest);
  if (exp) await writeFile(exp, res.body);
  ctx.out.line(`Pushed ${t.tags.length ? `${t.display}:${t.tags.join(',')}` : `${t.display}@${res.manifest.digest}`}`);
}
