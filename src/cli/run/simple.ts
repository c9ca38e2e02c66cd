import { OciError, isDigest } from '../../spec/index.js';
import { canUntag, hasTags } from '../../content/index.js';
import { Registry, staticCredentials } from '../../stores/remote/index.js';
import { ExitError } from '../errors.js';
import { VERSION } from '../version.js';
import { withContext, Context } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';
import { prompt, readStdin } from '../shared/terminal.js';

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

/** `wharf tag rm` / `wharf untag`: each reference's tag goes, its manifest and other tags stay. */
export async function runUntag(refs: string[], flags: Flags): Promise<void> {
  if (refs.length === 0) throw new ExitError('usage: wharf tag rm <host/repo:tag>...', 2);
  await withContext(flags, async (ctx) => {
    const removed: Array<{ reference: string; digest: string }> = [];
    for (const ref of refs) {
      const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
      const tag = Context.needReference(t, ref);
      if (isDigest(tag) || t.tags.length > 1) throw new ExitError(`"${ref}" must name one tag (host/repo:tag); to delete a manifest with all its tags use wharf manifest delete`, 2);
      if (!canUntag(t.target)) throw new OciError('UNSUPPORTED', `${t.display} cannot remove a tag alone; wharf manifest delete removes the manifest with all its tags`);
      const desc = await t.target.resolve(tag);
      await t.target.untag(tag);
      ctx.out.line(`Untagged ${t.display}:${tag} (${desc.digest} stays)`);
      removed.push({ reference: `${t.display}:${tag}`, digest: desc.digest });
    }
    ctx.out.result({ untagged: removed });
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

export async function runVersion(flags: Flags): Promise<void> {
  const info = { version: VERSION, node: process.version, platform: `${process.platform}/${process.arch}` };
  if (str(flags.format) === 'json') process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  else process.stdout.write(`wharf ${info.version}\nNode.js ${info.node}\nPlatform ${info.platform}\n`);
}
