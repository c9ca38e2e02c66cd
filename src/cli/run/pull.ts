import { pullArtifact } from '../../client/index.js';
import { withContext, Context } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';

export async function runPull(ref: string, flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const reference = Context.needReference(t, ref);
    const res = await pullArtifact(t.target, reference, {
      output: str(flags.output) ?? '.',
      keepOldFiles: bool(flags.keepOldFiles),
      allowPathTraversal: bool(flags.allowPathTraversal),
      includeSubject: bool(flags.includeSubject),
      artifactType: str(flags.artifactType),
      platform: str(flags.platform),
      concurrency: ctx.concurrency,
      progress: ctx.out.progress('Downloading', 'Downloaded '),
      signal: ctx.signal,
    });
    ctx.out.stopProgress();
    for (const f of res.files) ctx.out.line(`Pulled ${f.path}${f.unpacked ? '/' : ''}`);
    if (res.files.length === 0) ctx.out.line('The artifact has no files; nothing written');
    ctx.out.line(`Digest: ${res.root.digest}`);
    ctx.out.result({ reference: `${t.display}@${res.root.digest}`, digest: res.root.digest, mediaType: res.root.mediaType, files: res.files.map((f) => ({ path: f.path, digest: f.desc.digest, size: f.desc.size, mediaType: f.desc.mediaType, unpacked: f.unpacked })) });
  });
}
