// The module itself, not client/index.js, which also loads pull, copy and the eStargz builder and
// reader: a push (often a re-push of content already there, a few HEADs) starts sooner without them.
import { pushArtifact } from '../../client/push.js';
import { ExitError } from '../errors.js';
import { withContext } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';
import { artifactFlags, describeResult, digestMemo, parseFileArg, reportPushed } from '../shared/artifact.js';

export async function runPush(ref: string, files: string[], flags: Flags): Promise<void> {
  if (bool(flags.estargz)) {
    const { runPushEstargz } = await import('./estargz.js');
    await runPushEstargz(ref, files, flags);
    return;
  }
  // An artifact without files is almost always a forgotten argument, and it would replace the tag.
  if (files.length === 0 && !bool(flags.allowEmpty)) throw new ExitError(`no files to push to ${ref}; name files or directories after the reference, or pass --allow-empty to push an artifact without files`, 2);
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout) });
    const cfg = str(flags.config);
    const config = cfg ? parseFileArg(cfg) : undefined;
    const art = await artifactFlags(flags);
    const res = await pushArtifact(t.target, {
      files: files.map(parseFileArg),
      artifactType: str(flags.artifactType),
      config: config ? { path: config.path, mediaType: config.mediaType } : undefined,
      ...art,
      tags: t.tags,
      concurrency: ctx.concurrency,
      progress: ctx.out.progress('Uploading', 'Uploaded '),
      digestMemo: await digestMemo(flags),
      signal: ctx.signal,
    });
    await reportPushed(ctx, t, res, flags);
    if (res.manifest.artifactType) ctx.out.line(`ArtifactType: ${res.manifest.artifactType}`);
    ctx.out.line(`Digest: ${res.manifest.digest}`);
    ctx.out.result(describeResult(t.display, res.manifest, t.tags));
  });
}
