import { startProxy, forward, type Proxy } from './proxy.js';
import { chmod, link, lstat, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { startServer } from '../../src/server/index.js';

/**
 * A small tree with everything an eStargz layer must keep: nested and empty directories, a
 * dotfile, an empty file, a file split into several chunks (with a small chunk size), a symlink,
 * a hard link, odd modes, a long and a non-ASCII name, fixed mtimes.
 */
export async function makeFixture(dir: string, opts: { big?: number } = {}): Promise<void> {
  await mkdir(join(dir, 'sub', 'deeper'), { recursive: true });
  await mkdir(join(dir, 'empty'));
  await writeFile(join(dir, 'hello.txt'), 'hello, eStargz\n');
  await writeFile(join(dir, '.hidden'), 'dotfile\n');
  await writeFile(join(dir, 'empty.txt'), '');
  const big = Buffer.alloc(opts.big ?? 300_000);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  await writeFile(join(dir, 'sub', 'big.bin'), big);
  await writeFile(join(dir, 'sub', 'deeper', 'small.json'), JSON.stringify({ a: 1 }));
  await writeFile(join(dir, 'sub', 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(dir, 'sub', 'run.sh'), 0o750);
  await symlink('sub/deeper/small.json', join(dir, 'link-to-small'));
  await link(join(dir, 'hello.txt'), join(dir, 'sub', 'hard-hello'));
  const long = `${'long-directory-name-'.repeat(4)}/${'very-long-file-name-'.repeat(5)}.txt`;
  await mkdir(join(dir, long, '..'), { recursive: true });
  await writeFile(join(dir, long), 'long\n');
  await writeFile(join(dir, 'ünïcödé.txt'), 'unicode\n');
  await chmod(join(dir, 'empty'), 0o2775);
  const t = new Date('2024-03-01T12:00:00Z');
  const walk = async (p: string): Promise<void> => {
    const st = await lstat(p);
    if (st.isDirectory()) for (const c of await readdir(p)) await walk(join(p, c));
    if (!st.isSymbolicLink()) await utimes(p, t, t);
  };
  for (const c of await readdir(dir)) await walk(join(dir, c));
}

/** A work directory with a wharf serve on port 0 (data in `<work>/data`) and the fixture tree in `<work>/src`. */
export async function startFixtureServer(prefix: string): Promise<{ work: string; host: string; src: string; stop(): Promise<void> }> {
  const work = await mkdtemp(join(tmpdir(), prefix));
  const s = await startServer({ dataDir: join(work, 'data'), port: 0, logLevel: 'silent' });
  const src = join(work, 'src');
  await mkdir(src);
  await makeFixture(src);
  return { work, host: new URL(s.url).host, src, stop: () => s.close() };
}

export interface Snap {
  type: string;
  mode: number;
  size: number;
  sha?: string;
  link?: string;
  mtime?: number;
  inode?: string;
}

/** path → what matters of each entry, hard links shown by a shared inode label. */
export async function snapshot(dir: string, opts: { ignore?: string[]; mtimes?: boolean } = {}): Promise<Record<string, Snap>> {
  const out: Record<string, Snap> = {};
  const inodes = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    const p = rel ? join(dir, rel) : dir;
    for (const c of (await readdir(p)).sort()) {
      const r = rel ? `${rel}/${c}` : c;
      if (opts.ignore?.includes(r)) continue;
      const st = await lstat(join(dir, r));
      const s: Snap = { type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file', mode: st.mode & 0o7777, size: st.isFile() ? st.size : 0 };
      if (opts.mtimes !== false && !st.isSymbolicLink()) s.mtime = Math.floor(st.mtimeMs / 1000);
      if (st.isFile()) {
        s.sha = createHash('sha256').update(await readFile(join(dir, r))).digest('hex');
        if (st.nlink > 1) {
          if (!inodes.has(st.ino)) inodes.set(st.ino, r);
          s.inode = inodes.get(st.ino);
        }
      }
      if (st.isSymbolicLink()) {
        s.link = await readlink(join(dir, r));
        s.mode = 0;
      }
      out[r] = s;
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}


export interface CountingProxy extends Proxy {
  /** GETs of blobs: the Range asked, the status answered, the body bytes sent. */
  blobGets: Array<{ range?: string; status: number; bytes: number }>;
  blobBytes(): number;
}

export interface FaultMode {
  /** Forward without the Range header: the registry answers 200 with the whole blob. */
  ignoreRange?: boolean;
  /** Answer a multi-range request with 400. */
  rejectMultiRange?: boolean;
  /** Answer HEAD of a blob with 405. */
  failHead?: boolean;
  /** Answer a multi-range request with one range that covers all (as RFC 9110 allows). */
  coalesceMultiRange?: boolean;
}

/** A proxy in front of a registry that counts the blob bytes it relays and can play a poorer registry. */
export async function startCountingProxy(target: string, mode: FaultMode = {}): Promise<CountingProxy> {
  const blobGets: CountingProxy['blobGets'] = [];
  const p = await startProxy(target, async (req, res) => {
    const isBlob = /\/blobs\/sha256:/.test(req.url ?? '');
    if (!isBlob) return false;
    if (mode.failHead && req.method === 'HEAD') {
      res.writeHead(405).end();
      return true;
    }
    if (req.method !== 'GET') return false;
    const range = req.headers.range;
    if (mode.rejectMultiRange && range?.includes(',')) {
      blobGets.push({ range, status: 400, bytes: 0 });
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"errors":[{"code":"RANGE_INVALID","message":"no multi-range here"}]}');
      return true;
    }
    if (mode.ignoreRange) delete req.headers.range;
    if (mode.coalesceMultiRange && range?.includes(',')) {
      const bounds = range.replace(/^bytes=/, '').split(',').map((r) => r.split('-').map(Number) as [number, number]);
      req.headers.range = `bytes=${Math.min(...bounds.map((b) => b[0]))}-${Math.max(...bounds.map((b) => b[1]))}`;
    }
    const up = await forward(req, target);
    const rec = { range, status: up.statusCode ?? 0, bytes: 0 };
    blobGets.push(rec);
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.on('data', (c: Buffer) => (rec.bytes += c.length));
    up.pipe(res);
    return true;
  });
  return { ...p, blobGets, blobBytes: () => blobGets.reduce((n, g) => n + g.bytes, 0) };
}
