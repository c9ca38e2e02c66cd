import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';
import { layerFlags } from './ls.js';

export function registerGet(cli: CAC): void {
  registryFlags(
    layerFlags(
      cli
        .command('get <ref> [...paths]', 'Extract some files of an artifact (paths or globs; none: all)')
        .option('-o, --output <dir>', 'Output directory (default .)')
        .option('--max-files <n>', 'Refuse to write more entries than this (default 100000)')
        .option('--max-total-size <size>', 'Refuse to write more bytes than this in all (default 10GiB)')
        .option('--max-file-size <size>', 'Refuse any file larger than this (default 4GiB)')
        .option('--keep-old-files', 'Fail rather than overwrite existing files')
        .option('--allow-path-traversal', 'Allow symbolic links that point out of the output directory')
        .example("wharf get localhost:5000/data:v1 'models/*.onnx' README.md -o out")
        .example('wharf get localhost:5000/data:v1 -o out --max-total-size 2G'),
    ),
  ).action(async (ref: string, paths: string[], opts: Record<string, unknown>) => {
    const { runGet } = await import('../run/estargz.js');
    await runGet(String(ref), paths.map(String), opts);
  });
}
