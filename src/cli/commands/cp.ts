import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerCp(cli: CAC): void {
  registryFlags(
    cli
      .command('cp <from> <to>', 'Copy an artifact between registries and OCI layouts (dir or .tar)')
      .alias('copy')
      .option('-r, --recursive', 'Take the referrers along, recursively')
      .option('--platform <os/arch>', 'From an index, copy only this platform')
      .option('--from-oci-layout', 'The source is an OCI image layout')
      .option('--to-oci-layout', 'The destination is an OCI image layout')
      .example('wharf cp -r localhost:5000/app:v1 ./backup.tar:v1 --to-oci-layout')
      .example('wharf cp localhost:5000/app:v1 localhost:5000/app-prod:v1,stable'),
  ).action(async (from: string, to: string, opts: Record<string, unknown>) => {
    const { runCp } = await import('../run/cp.js');
    await runCp(String(from), String(to), opts);
  });
}
