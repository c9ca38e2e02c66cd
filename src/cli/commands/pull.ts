import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerPull(cli: CAC): void {
  registryFlags(
    cli
      .command('pull <ref>', 'Pull the files of an artifact into a directory')
      .option('-o, --output <dir>', 'Output directory (default .)')
      .option('--keep-old-files', 'Fail rather than overwrite existing files')
      .option('--include-subject', 'Also pull the files of the subject it is attached to')
      .option('--artifact-type <type>', 'From an index, pull the manifest of this artifact type')
      .option('--platform <os/arch>', 'From an index, pull the manifest of this platform')
      .option('--allow-path-traversal', 'Allow files and archive entries that land outside the output directory')
      .option('--oci-layout', 'The source is an OCI image layout: dir[:tag] or file.tar[:tag]')
      .example('wharf pull localhost:5000/docs:v1 -o ./docs'),
  ).action(async (ref: string, opts: Record<string, unknown>) => {
    const { runPull } = await import('../run/pull.js');
    await runPull(String(ref), opts);
  });
}
