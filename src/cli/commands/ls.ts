import type { CAC, Command } from 'cac';
import { registryFlags } from '../shared/flags.js';

/** Flags of the commands that read files out of an artifact (ls, cat, get). */
export function layerFlags(cmd: Command): Command {
  return cmd
    .option('--cache-dir <dir>', 'TOC and chunk cache (default $WHARF_ESTARGZ_CACHE, else ~/.cache/wharf/estargz)')
    .option('--no-cache', 'Neither read nor fill the local cache')
    .option('--platform <os/arch>', 'From an index, the manifest of this platform')
    .option('--oci-layout', 'The source is an OCI image layout')
    .option('--stats', 'Print the requests and bytes fetched to stderr');
}

export function registerLs(cli: CAC): void {
  registryFlags(
    layerFlags(
      cli
        .command('ls <ref> [path]', 'List the files of an artifact or image (eStargz: only its TOC is fetched)')
        .option('-l, --long', 'Mode, size, mtime and link target too')
        .option('-R, --recursive', 'With a path: everything below it, not just its entries')
        .example('wharf ls localhost:5000/data:v1 -l')
        .example('wharf ls localhost:5000/data:v1 models/'),
    ),
  ).action(async (ref: string, path: string | undefined, opts: Record<string, unknown>) => {
    const { runLs } = await import('../run/estargz.js');
    await runLs(String(ref), path === undefined ? undefined : String(path), opts);
  });
}
