import { copyTags } from '../../client/index.js';
import { withContext } from '../shared/context.js';
import { bool, type Flags } from '../shared/flags.js';

/** backup: repository → layout; restore: layout → repository. Tags named keep their names. */
export async function runBackupRestore(direction: 'backup' | 'restore', from: string, to: string, flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const src = await ctx.open(from, { ociLayout: direction === 'restore', create: false });
    const dst = await ctx.open(to, { ociLayout: direction === 'backup', create: true });
    const saved = await copyTags(src.target, dst.target, {
      tags: src.tags,
      referrers: bool(flags.includeReferrers),
      concurrency: ctx.concurrency,
      progress: ctx.out.progress('Copying', 'Copied '),
    });
    ctx.out.stopProgress();
    for (const s of saved) ctx.out.line(`${direction === 'backup' ? 'Backed up' : 'Restored'} ${s.tag} ${s.desc.digest}`);
    ctx.out.line(`${saved.length} tag(s) ${direction === 'backup' ? 'backed up to' : 'restored to'} ${dst.display}`);
    ctx.out.result({ from: src.display, to: dst.display, tags: saved.map((s) => ({ tag: s.tag, digest: s.desc.digest, mediaType: s.desc.mediaType, size: s.desc.size })) });
  });
}
