import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerManifest(cli: CAC): void {
  registryFlags(
    cli
      .command('manifest <action> [...args]', 'Manifests: fetch, fetch-config, push, delete, index create|update')
      .option('-o, --output <file>', 'fetch, fetch-config: write here instead of stdout')
      .option('--descriptor', 'fetch: print the descriptor only')
      .option('--media-type <type>', 'push: media type when the manifest does not say')
      .option('--platform <os/arch>', 'fetch-config: the platform to pick from an index')
      .option('--add <ref>', 'index update: add this manifest (repeatable)')
      .option('--remove <ref>', 'index update: remove this manifest (repeatable)')
      .option('-a, --annotation <k=v>', 'index create/update: annotation (repeatable)')
      .option('--artifact-type <type>', 'index create: artifact type of the index')
      .option('--oci-layout', 'The target is an OCI image layout')
      .example('wharf manifest fetch localhost:5000/app:v1')
      .example('wharf manifest index create localhost:5000/app:v1 v1-amd64 v1-arm64')
      .example('wharf manifest index update localhost:5000/app:v1 --add v1-riscv64'),
  ).action(async (action: string, args: string[], opts: Record<string, unknown>) => {
    const { runManifest } = await import('../run/manifest.js');
    await runManifest(String(action), args.map(String), opts);
  });
}
