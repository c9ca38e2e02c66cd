import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerRepo(cli: CAC): void {
  registryFlags(
    cli
      .command('repo <action> [...args]', 'Repositories: ls <host>, tags <host/repo>')
      .option('--last <name>', 'Start after this repository or tag')
      .option('--exclude-digest-tags', 'tags: hide sha256-<hex> tags of the referrers tag schema')
      .option('--oci-layout', 'tags: the target is an OCI image layout')
      .example('wharf repo ls localhost:5000')
      .example('wharf repo tags localhost:5000/app --exclude-digest-tags'),
  ).action(async (action: string, args: string[], opts: Record<string, unknown>) => {
    const { runRepo } = await import('../run/simple.js');
    await runRepo(String(action), args.map(String), opts);
  });
}
