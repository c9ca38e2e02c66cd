import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { OciError, createDigester, isDigest, type Descriptor } from '../../spec/index.js';
import { fileReader, isDeleter } from '../../content/index.js';
import { canStatBlob } from '../../client/index.js';
import { ExitError } from '../errors.js';
import { withContext } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';
import type { OpenedTarget } from '../../client/index.js';

async function blobDesc(t: OpenedTarget, input: string): Promise<Descriptor> {
  const d = t.reference;
  if (!d || !isDigest(d)) throw new ExitError(`"${input}" must name a blob by digest: repo@sha256:...`, 2);
  if (!canStatBlob(t.target)) throw new OciError('UNSUPPORTED', `${t.display} cannot describe blobs`);
  return t.target.statBlob(d);
}

export async function runBlob(action: string, args: string[], flags: Flags): Promise<void> {
  const layout = bool(flags.ociLayout);
  await withContext(flags, async (ctx) => {
    switch (action) {
      case 'fetch': {
        if (!args[0]) throw new ExitError('usage: wharf blob fetch <repo@digest> [-o file|-]', 2);
        const t = await ctx.open(args[0], { ociLayout: layout, create: false });
        const desc = await blobDesc(t, args[0]);
        const out = str(flags.output);
        if (!out && !bool(flags.descriptor)) throw new ExitError('blob fetch needs -o <file> (or -o - for stdout), or --descriptor', 2);
        if (bool(flags.descriptor)) {
          if (ctx.out.json) ctx.out.result(desc);
          else ctx.out.line(JSON.stringify(desc));
          return;
        }
        const body = await t.target.fetch(desc);
        if (out === '-') {
          await pipeline(body, process.stdout, { end: false });
          return;
        }
        // Verified into a temp file, renamed when whole: a failure leaves no partial file.
        const tmp = `${out}.wharf-tmp`;
        try {
          await pipeline(body, createWriteStream(tmp));
          await rename(tmp, out!);
        } finally {
          await rm(tmp, { force: true });
        }
        ctx.out.line(`Fetched ${desc.digest} to ${out} (${desc.size} bytes)`);
        ctx.out.result({ ...desc, path: out });
        return;
      }
      case 'push': {
        if (!args[0] || !args[1]) throw new ExitError('usage: wharf blob push <repo> <file> [--media-type type]', 2);
        const t = await ctx.open(args[0], { ociLayout: layout, create: true });
        const h = createDigester();
        let size = 0;
        for await (const c of fileReader(args[1]) as AsyncIterable<Buffer>) {
          h.update(c);
          size += c.length;
        }
        const desc: Descriptor = { mediaType: str(flags.mediaType) ?? 'application/octet-stream', digest: `sha256:${h.digest('hex')}`, size };
        if (t.reference && isDigest(t.reference) && t.reference !== desc.digest) throw new OciError('DIGEST_INVALID', `${args[1]} is ${desc.digest}, not ${t.reference}`);
        const existed = await t.target.exists(desc);
        if (!existed) await t.target.push(desc, fileReader(args[1]));
        ctx.out.line(`${existed ? 'Exists' : 'Pushed'} ${t.display}@${desc.digest}`);
        ctx.out.line(`Descriptor: ${JSON.stringify(desc)}`);
        ctx.out.result({ ...desc, reference: `${t.display}@${desc.digest}`, existed });
        return;
      }
      case 'delete': {
        if (!args[0]) throw new ExitError('usage: wharf blob delete <repo@digest>', 2);
        const t = await ctx.open(args[0], { ociLayout: layout, create: false });
        const desc = await blobDesc(t, args[0]);
        if (!isDeleter(t.target)) throw new OciError('UNSUPPORTED', `${t.display} does not support deletion`);
        await t.target.delete(desc);
        ctx.out.line(`Deleted ${t.display}@${desc.digest}`);
        ctx.out.result({ reference: `${t.display}@${desc.digest}`, deleted: true, digest: desc.digest });
        return;
      }
      default:
        throw new ExitError(`unknown "blob ${action}"; use fetch, push or delete`, 2);
    }
  });
}
