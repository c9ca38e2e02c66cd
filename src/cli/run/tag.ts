import { OciError, isDigest } from '../../spec/index.js';
import { canUntag } from '../../content/index.js';
import { ExitError } from '../errors.js';
import { withContext, Context } from '../shared/context.js';
import { bool, type Flags } from '../shared/flags.js';

export async function runTag(ref: string, tags: string[], flags: Flags): Promise<void> {
  if (tags.length === 0) throw new ExitError('usage: wharf tag <ref> <tag>...', 2);
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const desc = await t.target.resolve(Context.needReference(t, ref));
    for (const tag of tags) {
      await t.target.tag(desc, tag);
      ctx.out.line(`Tagged ${t.display}:${tag}`);
    }
    ctx.out.result({ reference: `${t.display}@${desc.digest}`, digest: desc.digest, mediaType: desc.mediaType, size: desc.size, tags });
  });
}

/** `wharf tag rm` / `wharf untag`: each reference's tag goes, its manifest and other tags stay. */
export async function runUntag(refs: string[], flags: Flags): Promise<void> {
  if (refs.length === 0) throw new ExitError('usage: wharf tag rm <host/repo:tag>...', 2);
  await withContext(flags, async (ctx) => {
    const removed: Array<{ reference: string; digest: string }> = [];
    for (const ref of refs) {
      const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
      const tag = Context.needReference(t, ref);
      if (isDigest(tag) || t.tags.length > 1) throw new ExitError(`"${ref}" must name one tag (host/repo:tag); to delete a manifest with all its tags use wharf manifest delete`, 2);
      if (!canUntag(t.target)) throw new OciError('UNSUPPORTED', `${t.display} cannot remove a tag alone; wharf manifest delete removes the manifest with all its tags`);
      const desc = await t.target.resolve(tag);
      await t.target.untag(tag);
      ctx.out.line(`Untagged ${t.display}:${tag} (${desc.digest} stays)`);
      removed.push({ reference: `${t.display}:${tag}`, digest: desc.digest });
    }
    ctx.out.result({ untagged: removed });
  });
}
