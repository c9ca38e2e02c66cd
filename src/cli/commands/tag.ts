import type { CAC } from 'cac';
import { layoutFlag, registryFlags } from '../shared/flags.js';
import type { Group } from '../shared/group.js';

export function registerTag(cli: CAC): void {
  registryFlags(
    layoutFlag(cli.command('tag <ref> [...tags]', 'Give a manifest more tags; `wharf tag rm <ref>` removes one'))
      .example('wharf tag localhost:5000/app:v1 stable latest')
      .example('wharf tag rm localhost:5000/app:old'),
  ).action(async (ref: string, tags: string[], opts: Record<string, unknown>) => {
    const { runTag } = await import('../run/tag.js');
    await runTag(String(ref), tags.map(String), opts);
  });
}

const untagHelp = 'Remove one tag, leaving the manifest and its other tags (DELETE /v2/<name>/manifests/<tag>)';

async function untag(args: string[], opts: Record<string, unknown>): Promise<void> {
  const { runUntag } = await import('../run/tag.js');
  await runUntag(args, opts);
}

/** `wharf untag <ref>...`: the same as `wharf tag rm`, as a command of its own. */
export function registerUntag(cli: CAC): void {
  registryFlags(layoutFlag(cli.command('untag [...refs]', untagHelp)).example('wharf untag localhost:5000/app:old')).action(
    async (refs: string[], opts: Record<string, unknown>) => untag(refs.map(String), opts),
  );
}

export const TAG: Group = {
  name: 'tag',
  description: 'Tags',
  alsoCommand: true,
  actions: [
    {
      usage: 'rm [...refs]',
      description: untagHelp,
      define: (c) =>
        registryFlags(layoutFlag(c))
          .example('wharf tag rm localhost:5000/app:old')
          .example('wharf tag rm localhost:5000/app:rc1 localhost:5000/app:rc2'),
      run: untag,
    },
  ],
};
