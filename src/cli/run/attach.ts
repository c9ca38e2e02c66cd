import { writeFile } from 'node:fs/promises';
import { pushArtifact } from '../../client/index.js';
import { ExitError } from '../errors.js';
import { withContext, Context } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';
import { artifactFlags, parseFileArg, describeResult, digestMemo } from '../shared/artifact.js';

export async function runAttach(ref: string, files: string[], flags: Flags): Promise<void> {
  const artifactType = str(flags.artifactType);
  if (!artifactType) throw new ExitError('attach needs --artifact-type, e.g. --artifact-type application/vnd.example.signature', 2);
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const subject = await t.target.resolve(Context.needReference(t, ref));
    const art = await artifactFlags(flags);
    const res = await pushArtifact(t.target, {
      files: files.map(parseFileArg),
      artifactType,
      ...art,
      subject,
      concurrency: ctx.concurrency,
      progress: ctx.out.progress('Uploading', 'Uploaded '),
      digestMemo: await digestMemo(flags),
    });
    ctx.out.stopProgress();
    const exp = str(flags.exportManifest);
    if (exp) await writeFile(exp, res.body);
    ctx.out.line(`Attached to ${t.display}@${subject.digest}`);
    ctx.out.line(`Digest: ${res.manifest.digest}`);
    ctx.out.result({ ...describeResult(t.display, res.manifest, []), subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } });
  });
}
