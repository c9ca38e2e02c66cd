import { OciError, isDigest } from '../../spec/index.js';
import { hasTags } from '../../content/index.js';
import { Registry } from '../../stores/remote/index.js';
import { ExitError } from '../errors.js';
import { withContext } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';

export async function runRepo(action: string, args: string[], flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const last = str(flags.last);
    if (action === 'ls' || action === 'list') {
      const host = args[0];
      if (!host) throw new ExitError('usage: wharf repo ls <host[:port]>[/namespace]', 2);
      const [registry, ...ns] = host.split('/');
      const reg = new Registry(registry!, await ctx.registryOptions());
      try {
        let repos = await reg.catalog(last ? { last } : {});
        const prefix = ns.join('/');
        if (prefix) repos = repos.filter((r) => r.startsWith(`${prefix}/`)).map((r) => r.slice(prefix.length + 1));
        for (const r of repos) ctx.out.line(r);
        ctx.out.result({ registry, repositories: repos });
      } finally {
        await reg.close();
      }
      return;
    }
    if (action === 'tags') {
      const ref = args[0];
      if (!ref) throw new ExitError('usage: wharf repo tags <host/repo>', 2);
      const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
      if (!hasTags(t.target)) throw new OciError('UNSUPPORTED', `${t.display} cannot list tags`);
      let tags = await t.target.tags(last ? { last } : {});
      if (bool(flags.excludeDigestTags)) tags = tags.filter((x) => !/^sha(256|512)-[0-9a-f]+$/.test(x));
      // `repo tags host/repo@digest`: only the tags pointing at that digest.
      if (t.reference && isDigest(t.reference)) {
        const want = t.reference;
        const keep: string[] = [];
        for (const x of tags) if ((await t.target.resolve(x)).digest === want) keep.push(x);
        tags = keep;
      }
      for (const x of tags) ctx.out.line(x);
      ctx.out.result({ repository: t.display, tags });
      return;
    }
    throw new ExitError(`unknown "repo ${action}"; use ls or tags`, 2);
  });
}
