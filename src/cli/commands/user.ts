import type { CAC } from 'cac';

export function registerUser(cli: CAC): void {
  cli
    .command('user <action> [name]', 'Registry users in a bcrypt htpasswd file: add, passwd, rm, ls')
    .option('--htpasswd <file>', 'The htpasswd file (default <data>/auth/htpasswd)')
    .option('--data <dir>', 'Data directory (env WHARF_DATA, default ./wharf-data)')
    .option('--password-stdin', 'Read the password from standard input')
    .option('--cost <n>', 'bcrypt cost (default 10)')
    .example('echo "$PASSWORD" | wharf user add alice --password-stdin')
    .example('wharf user ls --htpasswd /etc/wharf/htpasswd')
    .action(async (action: string, name: string | undefined, opts: Record<string, unknown>) => {
      const { runUser } = await import('../user.js');
      await runUser(String(action), name === undefined ? undefined : String(name), opts);
    });
}
