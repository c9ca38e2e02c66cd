import { Registry, staticCredentials } from '../../stores/remote/index.js';
import { ExitError } from '../errors.js';
import { withContext } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';
import { prompt, readStdin } from '../shared/terminal.js';

export async function runLogin(host: string, flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    let username = str(flags.username);
    let password = str(flags.password);
    const identityToken = str(flags.identityToken);
    if (bool(flags.passwordStdin)) {
      if (password !== undefined) throw new ExitError('--password and --password-stdin exclude each other; use one', 2);
      password = await readStdin();
    }
    if (!identityToken) {
      const noTerminal = 'no terminal to prompt on; pass -u and -p, or --password-stdin';
      username ??= await prompt('Username: ', false, noTerminal);
      password ??= await prompt('Password: ', true, noTerminal);
      if (!username) throw new ExitError('a username is needed; pass -u', 2);
    }
    const cred = identityToken ? { identityToken } : { username: username!, password: password ?? '' };
    // Check the credentials against the registry before keeping them.
    const opts = await ctx.registryOptions();
    const reg = new Registry(host, { ...opts, credentials: staticCredentials(cred) });
    try {
      await reg.ping();
    } finally {
      await reg.close();
    }
    const where = await ctx.credentials.store(host, cred);
    if (where.storedIn === 'file') {
      // As docker login warns: the secret sits base64-encoded in a file anyone with the account reads.
      process.stderr.write(`wharf: warning: no credential helper is configured; the ${identityToken ? 'token' : 'password'} is stored unencrypted in ${ctx.credentials.configPath}. Configure "credsStore" there (e.g. "pass" or "secretservice") to keep it in a credential store.\n`);
    }
    ctx.out.line('Login Succeeded');
    ctx.out.result({ registry: host, loggedIn: true, configPath: ctx.credentials.configPath });
  });
}

export async function runLogout(host: string, flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const found = await ctx.credentials.erase(host);
    ctx.out.line(found ? `Removed login credentials for ${host}` : `Not logged in to ${host}`);
    ctx.out.result({ registry: host, removed: found });
  });
}
