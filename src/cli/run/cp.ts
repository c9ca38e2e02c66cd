import { copyArtifact } from '../../client/index.js';
import { withContext, Context } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';

export async function runCp(from: string, to: string, flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const src = await ctx.open(from, { ociLayout: bool(flags.fromOciLayout), create: false });
    const dst = await ctx.open(to, { ociLayout: bool(flags.toOciLayout), create: true });
    const reference = Context.needReference(src, from);
    // No tag given at the destination: keep the source's tag, as ORAS does.
    const tags = dst.tags.length ? dst.tags : src.tags.length && !dst.reference ? [src.tags[0]!] : [];
    const root = await copyArtifact(src.target, reference, dst.target, tags, {
      referrers: bool(flags.recursive),
      platform: str(flags.platform),
      concurrency: ctx.concurrency,
      progress: ctx.out.progress('Copying', 'Copied '),
    });
    ctx.out.stopProgress();
    ctx.out.line(`Copied ${src.display}:${reference} => ${dst.display}${tags.length ? `:${tags.join(',')}` : `@${root.digest}`}`);
    ctx.out.line(`Digest: ${root.digest}`);
    ctx.out.result({ from: `${src.display}@${root.digest}`, to: `${dst.display}@${root.digest}`, digest: root.digest, mediaType: root.mediaType, size: root.size, tags });
  });
}
