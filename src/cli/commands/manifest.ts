import { layoutFlag as layout, registryFlags } from '../shared/flags.js';
import type { Action, Group } from '../shared/group.js';

const run = (action: string) => async (args: string[], flags: Record<string, unknown>): Promise<void> => {
  const { runManifest } = await import('../run/manifest.js');
  await runManifest(action, args, flags);
};

const actions: Action[] = [
  {
    usage: 'fetch <ref>',
    description: 'Print a manifest (or its descriptor)',
    define: (c) =>
      registryFlags(layout(c.option('-o, --output <file>', 'Write here instead of stdout (- for stdout)').option('--descriptor', 'Print the descriptor only')))
        .example('wharf manifest fetch localhost:5000/app:v1')
        .example('wharf manifest fetch localhost:5000/app:v1 --descriptor'),
    run: run('fetch'),
  },
  {
    usage: 'fetch-config <ref>',
    description: "Print a manifest's config",
    define: (c) =>
      registryFlags(layout(c.option('-o, --output <file>', 'Write here instead of stdout (- for stdout)').option('--platform <os/arch>', 'The platform to pick from an index')))
        .example('wharf manifest fetch-config localhost:5000/app:v1 --platform linux/amd64'),
    run: run('fetch-config'),
  },
  {
    usage: 'push <ref> [file]',
    description: 'Push a manifest from a file, or from standard input',
    define: (c) =>
      registryFlags(layout(c.option('--media-type <type>', 'Media type when the manifest does not say')))
        .example('wharf manifest push localhost:5000/app:v1 manifest.json')
        .example('cat manifest.json | wharf manifest push localhost:5000/app:v1'),
    run: run('push'),
  },
  {
    usage: 'delete <ref>',
    description: 'Delete a manifest, and with it every tag that points at it (asks first; --force for scripts)',
    define: (c) =>
      registryFlags(layout(c.option('-f, --force', 'Delete without asking (needed when standard input is no terminal)')))
        .example('wharf manifest delete localhost:5000/app:v1')
        .example('wharf manifest delete --force localhost:5000/app@sha256:...')
        .example('wharf tag rm localhost:5000/app:v1      # removes only the tag v1'),
    run: run('delete'),
  },
  {
    usage: 'index <create|update> <ref> [...manifests]',
    description: 'Create an index from manifests, or add and remove manifests of one',
    define: (c) =>
      registryFlags(
        layout(
          c
            .option('--add <ref>', 'update: add this manifest (repeatable)')
            .option('--remove <ref>', 'update: remove this manifest (repeatable)')
            .option('-a, --annotation <k=v>', 'Annotation of the index (repeatable)')
            .option('--artifact-type <type>', 'create: artifact type of the index'),
        ),
      )
        .example('wharf manifest index create localhost:5000/app:v1 v1-amd64 v1-arm64')
        .example('wharf manifest index update localhost:5000/app:v1 --add v1-riscv64'),
    run: run('index'),
  },
];

export const MANIFEST: Group = { name: 'manifest', description: 'Manifests', actions };
