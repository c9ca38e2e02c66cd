import type { Command } from 'cac';
import type { Action, Group } from '../shared/group.js';

const run = (action: string) => async (args: string[], flags: Record<string, unknown>): Promise<void> => {
  const { runUser } = await import('../run/user.js');
  await runUser(action, args[0], flags);
};

const file = (c: Command): Command =>
  c.option('--htpasswd <file>', 'The htpasswd file (default <data>/auth/htpasswd)').option('--data <dir>', 'Data directory (env WHARF_DATA, default ./wharf-data)');
const secret = (c: Command): Command =>
  file(c).option('--password-stdin', 'Read the password from standard input (else WHARF_PASSWORD)').option('--cost <n>', 'bcrypt cost (default 10)');

const actions: Action[] = [
  {
    usage: 'add <name>',
    description: 'Add a user',
    define: (c) => secret(c).example('echo "$PASSWORD" | wharf user add alice --password-stdin'),
    run: run('add'),
  },
  {
    usage: 'passwd <name>',
    description: "Change a user's password",
    define: (c) => secret(c).example('echo "$PASSWORD" | wharf user passwd alice --password-stdin'),
    run: run('passwd'),
  },
  {
    usage: 'rm <name>',
    description: 'Remove a user',
    define: (c) => file(c).example('wharf user rm alice'),
    run: run('rm'),
  },
  {
    usage: 'ls',
    description: 'List the users',
    define: (c) => file(c).example('wharf user ls --htpasswd /etc/wharf/htpasswd'),
    run: run('ls'),
  },
];

export const USER: Group = { name: 'user', description: 'Registry users in a bcrypt htpasswd file', actions };
