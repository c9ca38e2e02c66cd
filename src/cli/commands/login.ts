import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerLogin(cli: CAC): void {
  registryFlags(
    cli
      .command('login <host>', "Log in to a registry; credentials are kept as Docker keeps them (helpers, credsStore or config.json)")
      .option('--password-stdin', 'Read the password from standard input')
      .option('--identity-token <token>', 'Log in with an OAuth2 refresh token')
      .example('echo "$TOKEN" | wharf login registry.example.com -u me --password-stdin'),
  ).action(async (host: string, opts: Record<string, unknown>) => {
    const { runLogin } = await import('../run/login.js');
    await runLogin(String(host), opts);
  });
}
