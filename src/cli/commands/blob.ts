import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerBlob(cli: CAC): void {
  registryFlags(
    cli
      .command('blob <action> [...args]', 'Blobs: fetch, push, delete')
      .option('-o, --output <file>', 'fetch: write here (- for stdout)')
      .option('--descriptor', 'fetch: print the descriptor only')
      .option('--media-type <type>', 'push: media type for the printed descriptor')
      .option('--oci-layout', 'The target is an OCI image layout')
      .option('--chunk-size <size>', 'push: upload in chunks of this size')
      .example('wharf blob push localhost:5000/data ./big.bin')
      .example('wharf blob fetch localhost:5000/data@sha256:... -o big.bin'),
  ).action(async (action: string, args: string[], opts: Record<string, unknown>) => {
    const { runBlob } = await import('../run/blob.js');
    await runBlob(String(action), args.map(String), opts);
  });
}
