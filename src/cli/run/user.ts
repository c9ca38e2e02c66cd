import { resolve } from 'node:path';
import { assertUserName, defaultHtpasswdPath, hashPassword, readHtpasswd, writeHtpasswd } from '../../server/admin.js';
import { ExitError } from '../errors.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function password(opts: Record<string, unknown>): Promise<string> {
  if (opts.passwordStdin) return readStdin();
  if (process.env.WHARF_PASSWORD) return process.env.WHARF_PASSWORD;
  throw new ExitError('give the password with --password-stdin (or WHARF_PASSWORD)', 2);
}

export async function runUser(action: string, name: string | undefined, opts: Record<string, unknown>): Promise<void> {
  const file = opts.htpasswd !== undefined ? resolve(String(opts.htpasswd)) : defaultHtpasswdPath(resolve(String(opts.data ?? process.env.WHARF_DATA ?? './wharf-data')));
  const entries = await readHtpasswd(file);
  const cost = opts.cost === undefined ? 10 : Number(opts.cost);
  if (!Number.isInteger(cost) || cost < 4 || cost > 15) throw new ExitError('--cost must be an integer from 4 to 15', 2);
  const need = (): string => {
    if (name === undefined) throw new ExitError(`wharf user ${action} needs a user name`, 2);
    return assertUserName(name);
  };
  switch (action) {
    case 'ls':
      for (const u of entries.keys()) process.stdout.write(`${u}\n`);
      return;
    case 'add': {
      const u = need();
      if (entries.has(u)) throw new ExitError(`user ${u} already exists in ${file}; use wharf user passwd`);
      entries.set(u, await hashPassword(await password(opts), cost));
      await writeHtpasswd(file, entries);
      process.stdout.write(`Added ${u} to ${file}\n`);
      return;
    }
    case 'passwd': {
      const u = need();
      if (!entries.has(u)) throw new ExitError(`no user ${u} in ${file}`);
      entries.set(u, await hashPassword(await password(opts), cost));
      await writeHtpasswd(file, entries);
      process.stdout.write(`Changed the password of ${u}\n`);
      return;
    }
    case 'rm': {
      const u = need();
      if (!entries.delete(u)) throw new ExitError(`no user ${u} in ${file}`);
      await writeHtpasswd(file, entries);
      process.stdout.write(`Removed ${u}\n`);
      return;
    }
    default:
      throw new ExitError(`unknown action "${action}": use add, passwd, rm or ls`, 2);
  }
}
