import { readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { OciError, digestOf, parseManifest, isIndexMediaType, type ImageManifest } from '../../spec/index.js';
import { fetchManifest, readAllVerified, isDeleter, hasTags, type Resolver } from '../../content/index.js';
import { createIndex, updateIndex } from '../../client/index.js';
import { ExitError } from '../errors.js';
import { withContext, Context } from '../shared/context.js';
import { str, strs, bool, type Flags } from '../shared/flags.js';
import { parseAnnotations } from '../shared/artifact.js';
import { prompt } from '../shared/terminal.js';

async function readInput(file: string): Promise<Buffer> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  return readFile(file);
}

async function emit(body: Buffer, output: string | undefined): Promise<void> {
  if (output && output !== '-') await writeFile(output, body);
  else process.stdout.write(body);
}

export async function runManifest(action: string, args: string[], flags: Flags): Promise<void> {
  const layout = bool(flags.ociLayout);
  const need = (n: number, usage: string): void => {
    if (args.length < n) throw new ExitError(`usage: wharf manifest ${usage}`, 2);
  };
  await withContext(flags, async (ctx) => {
    switch (action) {
      case 'fetch': {
        need(1, 'fetch <ref> [-o file] [--descriptor]');
        const t = await ctx.open(args[0]!, { ociLayout: layout, create: false });
        const desc = await t.target.resolve(Context.needReference(t, args[0]!));
        if (bool(flags.descriptor)) {
          const d = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
          if (ctx.out.json) ctx.out.result(d);
          else ctx.out.line(JSON.stringify(d));
          return;
        }
        const body = await fetchManifest(t.target, desc);
        if (ctx.out.json) ctx.out.result({ descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size }, content: JSON.parse(body.toString('utf8')) });
        else await emit(body, str(flags.output));
        return;
      }
      case 'fetch-config': {
        need(1, 'fetch-config <ref> [-o file]');
        const t = await ctx.open(args[0]!, { ociLayout: layout, create: false });
        let desc = await t.target.resolve(Context.needReference(t, args[0]!));
        if (isIndexMediaType(desc.mediaType)) {
          const platform = str(flags.platform);
          if (!platform) throw new ExitError(`${args[0]} is an index; pick a manifest with --platform os/arch`, 2);
          const { selectPlatform } = await import('../../client/index.js');
          desc = await selectPlatform(t.target, desc, platform);
        }
        const m = JSON.parse((await fetchManifest(t.target, desc)).toString('utf8')) as ImageManifest;
        const cfg = await readAllVerified(await t.target.fetch(m.config), m.config, 64 << 20);
        if (ctx.out.json) ctx.out.result({ descriptor: m.config, content: safeJson(cfg) });
        else await emit(cfg, str(flags.output));
        return;
      }
      case 'push': {
        need(1, 'push <ref> [file]  (standard input when no file is given)');
        const t = await ctx.open(args[0]!, { ociLayout: layout, create: true });
        const body = await readInput(args[1] ?? '-');
        const info = parseManifest(body, str(flags.mediaType));
        const desc = { mediaType: info.mediaType, digest: digestOf(body), size: body.length };
        if (t.reference?.includes(':') && t.reference !== desc.digest) throw new OciError('DIGEST_INVALID', `the manifest's digest is ${desc.digest}, not ${t.reference}`);
        await t.target.push(desc, Readable.from([body]));
        for (const tag of t.tags) await t.target.tag(desc, tag);
        ctx.out.line(`Pushed ${t.display}${t.tags.length ? `:${t.tags.join(',')}` : `@${desc.digest}`}`);
        ctx.out.line(`Digest: ${desc.digest}`);
        ctx.out.result({ reference: `${t.display}@${desc.digest}`, ...desc, tags: t.tags });
        return;
      }
      case 'delete': {
        need(1, 'delete <ref>');
        const t = await ctx.open(args[0]!, { ociLayout: layout, create: false });
        const desc = await t.target.resolve(Context.needReference(t, args[0]!));
        if (!isDeleter(t.target)) throw new OciError('UNSUPPORTED', `${t.display} does not support deletion`);
        const tags = await tagsOf(t.target, desc.digest);
        if (!bool(flags.force)) await confirmDelete(`${t.display}@${desc.digest}`, tags);
        await t.target.delete(desc);
        ctx.out.line(`Deleted ${t.display}@${desc.digest}`);
        if (tags.length) ctx.out.line(`Removed with it: ${tags.map((x) => `${t.display}:${x}`).join(', ')}`);
        ctx.out.result({ reference: `${t.display}@${desc.digest}`, deleted: true, digest: desc.digest, tags });
        return;
      }
      case 'index': {
        const sub = args[0];
        const rest = args.slice(1);
        const annotations = parseAnnotations(strs(flags.annotation));
        if (sub === 'create') {
          if (rest.length < 1) throw new ExitError('usage: wharf manifest index create <repo[:tag]> [source tags or digests...]', 2);
          const t = await ctx.open(rest[0]!, { ociLayout: layout, create: true });
          const res = await createIndex(t.target, rest.slice(1), { annotations, artifactType: str(flags.artifactType), tags: t.tags });
          ctx.out.line(`Created index ${t.display}${t.tags.length ? `:${t.tags.join(',')}` : `@${res.desc.digest}`}`);
          ctx.out.line(`Digest: ${res.desc.digest}`);
          ctx.out.result({ reference: `${t.display}@${res.desc.digest}`, ...res.desc, tags: t.tags, manifests: JSON.parse(res.body.toString()).manifests });
          return;
        }
        if (sub === 'update') {
          if (rest.length < 1) throw new ExitError('usage: wharf manifest index update <repo:tag> --add <ref> --remove <ref>', 2);
          const t = await ctx.open(rest[0]!, { ociLayout: layout, create: false });
          const reference = Context.needReference(t, rest[0]!);
          const res = await updateIndex(t.target, reference, { add: strs(flags.add), remove: strs(flags.remove) }, { annotations, tags: t.tags.length ? t.tags : undefined });
          ctx.out.line(`Updated index ${t.display}:${reference}`);
          ctx.out.line(`Digest: ${res.desc.digest}`);
          ctx.out.result({ reference: `${t.display}@${res.desc.digest}`, ...res.desc, tags: t.tags, manifests: JSON.parse(res.body.toString()).manifests });
          return;
        }
        throw new ExitError(`unknown "manifest index ${sub ?? ''}"; use create or update`, 2);
      }
      default:
        throw new ExitError(`unknown "manifest ${action}"; use fetch, fetch-config, push, delete or index create|update`, 2);
    }
  });
}

/** The tags that point at `digest`: a manifest delete takes every one of them along. */
async function tagsOf(target: object, digest: string): Promise<string[]> {
  if (!hasTags(target) || !hasResolver(target)) return [];
  const out: string[] = [];
  for (const tag of await target.tags()) {
    const d = await target.resolve(tag).catch(() => undefined);
    if (d?.digest === digest) out.push(tag);
  }
  return out;
}

function hasResolver(t: object): t is Resolver {
  return typeof (t as Partial<Resolver>).resolve === 'function';
}

/** As ORAS: a manifest delete is confirmed on a terminal, and refused without one unless --force. */
async function confirmDelete(what: string, tags: string[]): Promise<void> {
  const also = tags.length ? `; its tags go with it: ${tags.join(', ')}` : '; no tag points at it';
  const answer = await prompt(
    `Delete ${what}${also}. To remove one tag only, use wharf tag rm.\nAre you sure? [y/N] `,
    false,
    `not deleting ${what} without confirmation${also}; pass --force to delete from a script (or wharf tag rm <ref> to remove one tag only)`,
  );
  if (!/^y(es)?$/i.test(answer.trim())) throw new ExitError(`not deleted: ${what}`, 1);
}

function safeJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch {
    return b.toString('base64');
  }
}
