import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerTag(cli: CAC): void {
  registryFlags(
    cli
      .command('tag <ref> [...tags]', 'Give a manifest more tags')
      .option('--oci-layout', 'The target is an OCI image layout')
      .example('wharf tag localhost:5000/app:v1 stable latest'),
  ).action(async (ref: string, tags: string[], opts: Record<string, unknown>) => {
    const { runTag } = await import('../run/simple.js');
    await runTag(String(ref), tags.map(String), opts);
  });
}
