import { layoutFlag as layout, registryFlags } from '../shared/flags.js';
import type { Action, Group } from '../shared/group.js';

const run = (action: string) => async (args: string[], flags: Record<string, unknown>): Promise<void> => {
  const { runBlob } = await import('../run/blob.js');
  await runBlob(action, args, flags);
};

const actions: Action[] = [
  {
    usage: 'fetch <ref>',
    description: 'Download a blob by digest, verified',
    define: (c) =>
      registryFlags(layout(c.option('-o, --output <file>', 'Write here (- for stdout)').option('--descriptor', 'Print the descriptor only')))
        .example('wharf blob fetch localhost:5000/data@sha256:... -o big.bin')
        .example('wharf blob fetch localhost:5000/data@sha256:... -o - | tar -tz'),
    run: run('fetch'),
  },
  {
    usage: 'push <repo> <file>',
    description: 'Upload a file as a blob and print its descriptor',
    define: (c) =>
      registryFlags(layout(c.option('--media-type <type>', 'Media type for the printed descriptor').option('--chunk-size <size>', 'Upload in chunks of this size')))
        .example('wharf blob push localhost:5000/data ./big.bin'),
    run: run('push'),
  },
  {
    usage: 'delete <ref>',
    description: 'Delete a blob by digest',
    define: (c) => registryFlags(layout(c)).example('wharf blob delete localhost:5000/data@sha256:...'),
    run: run('delete'),
  },
];

export const BLOB: Group = { name: 'blob', description: 'Blobs', actions };
