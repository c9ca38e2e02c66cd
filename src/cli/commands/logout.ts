import type { CAC } from 'cac';

export function registerLogout(cli: CAC): void {
  cli
    .command('logout <host>', 'Forget the credentials for a registry')
    .option('--registry-config <file>', "Credentials file (default: Docker's config.json)")
    .option('--format <format>', 'Output: text or json')
    .action(async (host: string, opts: Record<string, unknown>) => {
      const { runLogout } = await import('../run/login.js');
      await runLogout(String(host), opts);
    });
}
