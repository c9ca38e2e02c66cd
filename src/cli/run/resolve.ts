import { withContext, Context } from '../shared/context.js';
import { bool, type Flags } from '../shared/flags.js';

export async function runResolve(ref: string, flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const desc = await t.target.resolve(Context.needReference(t, ref));
    if (bool(flags.fullReference)) ctx.out.line(`${t.display}@${desc.digest}`);
    else ctx.out.line(desc.digest);
    ctx.out.result({ reference: `${t.display}@${desc.digest}`, digest: desc.digest, mediaType: desc.mediaType, size: desc.size });
  });
}
