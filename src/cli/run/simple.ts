import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { OciError, isDigest } from '../../spec/index.js';
import { hasTags } from '../../content/index.js';
import { Registry, staticCredentials } from '../../stores/remote/index.js';
import { ExitError } from '../errors.js';
import { VERSION } from '../version.js';
import { withContext, Context } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';

export async function runTag(ref: string, tags: string[], flags: Flags): Promise<void> {
  if (tags.length === 0) throw new ExitError('usage: wharf tag <ref> <tag>...', 2);
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const desc = await t.target.resolve(Context.needReference(t, ref));
    for (const tag of tags) {
      await t.target.tag(desc, tag);
      ctx.out.line(`Tagged ${t.display}:${tag}`);
    }
    ctx.out.result({ reference: `${t.display}@${desc.digest}`, digest: desc.digest, mediaType: desc.mediaType, size: desc.size, tags });
  });
}

export async function runResolve(ref: string, flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const desc = await t.target.resolve(Context.needReference(t, ref));
    if (bool(flags.fullReference)) ctx.out.line(`${t.display}@${desc.digest}`);
    else ctx.out.line(desc.digest);
    ctx.out.result({ reference: `${t.display}@${desc.digest}`, digest: desc.digest, mediaType: desc.mediaType, size: desc.size });
  });
}

export async function runRepo(action: string, args: string[], flags: Flags): Promise<void> {
  await withContext(flags, async (ctx) => {
    const last = str(flags.last);
    if (action === 'ls' || action === 'list') {
      const host = args[0];
      if (!host) throw new ExitError('usage: wharf repo ls <host[:port]>[/namespace]', 2);
      const [registry, ...ns] = host.split('/');
      const reg = new Registry(registry!, await ctx.registryOptions());
      try {
        let repos = await reg.catalog(last ? { last } : {});
        const prefix = ns.join('/');
        if (prefix) repos = repos.filter((r) => r.startsWith(`${prefix}/`)).map((r) => r.slice(prefix.length + 1));
        for (const r of repos) ctx.out.line(r);
        ctx.out.result({ registry, repositories: repos });
      } finally {
        await reg.close();
      }
      return;
    }
    if (action === 'tags') {
      const ref = args[0];
      if (!ref) throw new ExitError('usage: wharf repo tags <host/repo>', 2);
      const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
      if (!hasTags(t.target)) throw new OciError('UNSUPPORTED', `${t.display} cannot list tags`);
      let tags = await t.target.tags(last ? { last } : {});
      if (bool(flags.excludeDigestTags)) tags = tags.filter((x) => !/^sha(256|512)-[0-9a-f]+$/.test(x));
      // `repo tags host/repo@digest`: only the tags pointing at that digest.
      if (t.reference && isDigest(t.reference)) {
        const want = t.reference;
        const keep: string[] = [];
        for (const x of tags) if ((await t.target.resolve(x)).digest === want) keep.push(x);
        tags = keep;
      }
      for (const x of tags) ctx.out.line(x);
      ctx.out.result({ repository: t.display, tags });
      return;
    }
    throw new ExitError(`unknown "repo ${action}"; use ls or tags`, 2);
  });
}

/** Reads a line from the terminal; with `hidden`, echoes nothing (passwords). */
async function prompt(question: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new ExitError('no terminal to prompt on; pass -u and -p, or --password-stdin', 2);
  process.stderr.write(question);
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: hidden ? muted : process.stderr, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    if (hidden) process.stderr.write('\n');
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

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
      username ??= await prompt('Username: ', false);
      password ??= await prompt('Password: ', true);
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
    await ctx.credentials.store(host, cred);
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

export async function runVersion(flags: Flags): Promise<void> {
  const info = { version: VERSION, node: process.version, platform: `${process.platform}/${process.arch}` };
  if (str(flags.format) === 'json') process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  else process.stdout.write(`wharf ${info.version}\nNode.js ${info.node}\nPlatform ${info.platform}\n`);
}
