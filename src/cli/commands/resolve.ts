import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerResolve(cli: CAC): void {
  registryFlags(
    cli
      .command('resolve <ref>', 'Print the digest a tag points at')
      .option('-l, --full-reference', 'Print host/repo@digest')
      .option('--oci-layout', 'The target is an OCI image layout')
      .example('wharf resolve localhost:5000/app:v1'),
  ).action(async (ref: string, opts: Record<string, unknown>) => {
    const { runResolve } = await import('../run/resolve.js');
    await runResolve(String(ref), opts);
  });
}
