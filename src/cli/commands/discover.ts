import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerDiscover(cli: CAC): void {
  registryFlags(
    cli
      .command('discover <ref>', 'List the referrers of an artifact (tree, table or json with --format)')
      .option('--artifact-type <type>', 'Only referrers of this artifact type')
      .option('--depth <n>', 'Levels of referrers of referrers to show (default all)')
      .option('--distribution-spec <mode>', 'v1.1-referrers-api or v1.1-referrers-tag (default: detect)')
      .option('--oci-layout', 'The target is an OCI image layout')
      .example('wharf discover localhost:5000/app:v1 --format table'),
  ).action(async (ref: string, opts: Record<string, unknown>) => {
    const { runDiscover } = await import('../run/discover.js');
    await runDiscover(String(ref), opts);
  });
}
