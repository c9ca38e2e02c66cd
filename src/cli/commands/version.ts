import type { CAC } from 'cac';

export function registerVersion(cli: CAC): void {
  cli
    .command('version', 'Print the version of wharf')
    .option('--format <format>', 'Output: text or json')
    .action(async (opts: Record<string, unknown>) => {
      const { runVersion } = await import('../run/version.js');
      await runVersion(opts);
    });
}
