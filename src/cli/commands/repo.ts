import { registryFlags } from '../shared/flags.js';
import type { Action, Group } from '../shared/group.js';

const run = (action: string) => async (args: string[], flags: Record<string, unknown>): Promise<void> => {
  const { runRepo } = await import('../run/repo.js');
  await runRepo(action, args, flags);
};

const actions: Action[] = [
  {
    usage: 'ls <host>',
    aliases: ['list'],
    description: 'List the repositories of a registry (host[:port][/namespace]) that you may read',
    define: (c) =>
      registryFlags(c.option('--last <name>', 'Start after this repository'))
        .example('wharf repo ls localhost:5000')
        .example('wharf repo ls -u alice localhost:5000/ml'),
    run: run('ls'),
  },
  {
    usage: 'tags <repo>',
    description: 'List the tags of a repository (host/repo, or host/repo@digest: the tags of that digest)',
    define: (c) =>
      registryFlags(
        c
          .option('--last <name>', 'Start after this tag')
          .option('--exclude-digest-tags', 'Hide sha256-<hex> tags of the referrers tag schema')
          .option('--oci-layout', 'The target is an OCI image layout'),
      )
        .example('wharf repo tags localhost:5000/app --exclude-digest-tags')
        .example('wharf repo tags localhost:5000/app@sha256:...'),
    run: run('tags'),
  },
];

export const REPO: Group = { name: 'repo', description: 'Repositories', actions };
