import { discoverReferrers, type ReferrerNode } from '../../client/index.js';
import type { Descriptor } from '../../spec/index.js';
import { ExitError } from '../errors.js';
import { withContext, Context } from '../shared/context.js';
import { str, bool, type Flags } from '../shared/flags.js';

function toJson(n: ReferrerNode): Record<string, unknown> {
  const d = n.desc;
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, artifactType: d.artifactType, annotations: d.annotations, referrers: n.referrers.map(toJson) };
}

function tree(nodes: ReferrerNode[], prefix: string, lines: string[]): void {
  // Group by artifact type, as ORAS prints it.
  const groups = new Map<string, ReferrerNode[]>();
  for (const n of nodes) {
    const k = n.desc.artifactType ?? '(no artifact type)';
    groups.set(k, [...(groups.get(k) ?? []), n]);
  }
  const keys = [...groups.keys()];
  keys.forEach((k, i) => {
    const lastGroup = i === keys.length - 1;
    lines.push(`${prefix}${lastGroup ? '└── ' : '├── '}${k}`);
    const gp = `${prefix}${lastGroup ? '    ' : '│   '}`;
    const list = groups.get(k)!;
    list.forEach((n, j) => {
      const last = j === list.length - 1;
      lines.push(`${gp}${last ? '└── ' : '├── '}${n.desc.digest}`);
      tree(n.referrers, `${gp}${last ? '    ' : '│   '}`, lines);
    });
  });
}

function flatten(nodes: ReferrerNode[], depth = 1, out: Array<{ d: Descriptor; depth: number }> = []): Array<{ d: Descriptor; depth: number }> {
  for (const n of nodes) {
    out.push({ d: n.desc, depth });
    flatten(n.referrers, depth + 1, out);
  }
  return out;
}

export async function runDiscover(ref: string, flags: Flags): Promise<void> {
  // discover has its own output formats; json is the same stable JSON as everywhere.
  const format = str(flags.format) ?? 'tree';
  if (!['tree', 'json', 'table', 'text'].includes(format)) throw new ExitError(`--format must be tree, table or json, not "${format}"`, 2);
  const depthFlag = str(flags.depth);
  const depth = depthFlag === undefined ? undefined : Number(depthFlag);
  if (depth !== undefined && (!Number.isInteger(depth) || depth < 1)) throw new ExitError('--depth must be a positive integer', 2);
  await withContext({ ...flags, format: format === 'json' ? 'json' : 'text' }, async (ctx) => {
    const t = await ctx.open(ref, { ociLayout: bool(flags.ociLayout), create: false });
    const subject = await t.target.resolve(Context.needReference(t, ref));
    const nodes = await discoverReferrers(t.target, subject, { artifactType: str(flags.artifactType), depth });
    if (format === 'json') {
      ctx.out.result({ reference: `${t.display}@${subject.digest}`, mediaType: subject.mediaType, digest: subject.digest, size: subject.size, referrers: nodes.map(toJson) });
      return;
    }
    if (format === 'table') {
      const rows = flatten(nodes);
      ctx.out.line(`${'DEPTH'.padEnd(6)}${'DIGEST'.padEnd(73)}ARTIFACT TYPE`);
      for (const r of rows) ctx.out.line(`${String(r.depth).padEnd(6)}${r.d.digest.padEnd(73)}${r.d.artifactType ?? ''}`);
      return;
    }
    const lines = [`${t.display}@${subject.digest}`];
    tree(nodes, '', lines);
    for (const l of lines) ctx.out.line(l);
  });
}
