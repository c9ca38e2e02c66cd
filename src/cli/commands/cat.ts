import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';
import { layerFlags } from './ls.js';

export function registerCat(cli: CAC): void {
  registryFlags(
    layerFlags(
      cli
        .command('cat <ref> <path>', 'Write one file of an artifact to stdout, fetching only the chunks that hold it')
        .option('--offset <n>', 'Start at this byte of the file')
        .option('--length <n>', 'At most this many bytes')
        .example('wharf cat localhost:5000/data:v1 config/settings.json')
        .example('wharf cat localhost:5000/data:v1 big.bin --offset 1048576 --length 4096 | xxd'),
    ),
  ).action(async (ref: string, path: string, opts: Record<string, unknown>) => {
    const { runCat } = await import('../run/estargz.js');
    await runCat(String(ref), String(path), opts);
  });
}
