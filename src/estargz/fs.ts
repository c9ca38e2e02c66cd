import { Readable } from 'node:stream';
import { WharfError } from '../spec/index.js';
import { cleanName } from './toc.js';

export type FileType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** What `ls -l` shows of one entry. Paths are relative to the layer's root, `/`-separated. */
export interface FileStat {
  path: string;
  type: FileType;
  size: number;
  /** Permission bits, setuid/setgid/sticky included. */
  mode: number;
  mtime?: Date;
  /** Symlink target, or for a hard link the path it links to. */
  linkName?: string;
  /** sha256 of the content, when the layer records it. */
  digest?: string;
}

export interface ReadRange {
  /** First byte, default 0. */
  start?: number;
  /** Last byte, inclusive (as fs.createReadStream), default the end of the file. */
  end?: number;
}

/**
 * A layer opened as a read-only file system. Reads fetch only what they need (eStargz) or come
 * from one full read of the layer (plain tar.gz), and every byte is verified before it is
 * returned.
 */
export interface LayerFS {
  /** `file`: a layer that is one file named by its title, as ORAS pushes a file. */
  readonly kind: 'estargz' | 'tar.gz' | 'file';
  /** Every entry, in layer order. */
  list(): FileStat[];
  readdir(path: string): Promise<string[]>;
  /** The entry itself (a symlink is not followed). */
  lstat(path: string): Promise<FileStat>;
  /** Follows symlinks inside the layer. */
  stat(path: string): Promise<FileStat>;
  readFile(path: string): Promise<Buffer>;
  createReadStream(path: string, range?: ReadRange): Readable;
  close(): Promise<void>;
}

interface Node {
  stat: FileStat;
  children?: Set<string>;
}

/**
 * The directory tree both layer kinds share: entries by clean path, implicit parents, hard links
 * and symlinks resolved inside the layer.
 */
export class Tree {
  private readonly nodes = new Map<string, Node>();
  private readonly order: FileStat[] = [];

  constructor() {
    this.nodes.set('', { stat: { path: '', type: 'dir', size: 0, mode: 0o755 }, children: new Set() });
  }

  add(st: FileStat): void {
    const path = cleanName(st.path);
    if (path === '') {
      this.nodes.get('')!.stat = { ...st, path: '' };
      return;
    }
    const s = { ...st, path };
    const old = this.nodes.get(path);
    const node: Node = { stat: s, children: s.type === 'dir' ? (old?.children ?? new Set()) : undefined };
    if (old) this.order.splice(this.order.indexOf(old.stat), 1);
    this.nodes.set(path, node);
    this.order.push(s);
    const i = path.lastIndexOf('/');
    const parent = i < 0 ? '' : path.slice(0, i);
    this.dir(parent).children!.add(path.slice(i + 1));
  }

  private dir(path: string): Node {
    const n = this.nodes.get(path);
    if (n?.children) return n;
    this.add({ path, type: 'dir', size: 0, mode: 0o755 });
    return this.nodes.get(path)!;
  }

  list(): FileStat[] {
    return [...this.order];
  }

  lstat(path: string): FileStat {
    const n = this.nodes.get(cleanName(path));
    if (!n) throw new WharfError('NOT_FOUND', `${path}: no such file or directory in the layer`);
    return n.stat;
  }

  /** Follows symlinks (at most 40, as Linux) and hard links to the entry holding the data. */
  resolve(path: string): FileStat {
    let p = cleanName(path);
    for (let hops = 0; hops < 40; hops++) {
      // Resolve symlinks in the parents too.
      const parts = p.split('/');
      let cur = '';
      let redirected = false;
      for (let i = 0; i < parts.length; i++) {
        cur = cur ? `${cur}/${parts[i]}` : parts[i]!;
        const n = this.nodes.get(cur);
        if (!n) throw new WharfError('NOT_FOUND', `${path}: no such file or directory in the layer`);
        if (n.stat.type === 'symlink') {
          const target = n.stat.linkName ?? '';
          const base = target.startsWith('/') ? '' : cur.split('/').slice(0, -1).join('/');
          p = cleanName(`${base}/${target}/${parts.slice(i + 1).join('/')}`);
          redirected = true;
          break;
        }
      }
      if (redirected) continue;
      const st = this.lstat(p);
      if (st.type === 'hardlink') return this.lstat(st.linkName ?? '');
      return st;
    }
    throw new WharfError('INVALID_ARGUMENT', `${path}: too many levels of symbolic links`);
  }

  readdir(path: string): string[] {
    const st = this.resolve(path);
    const n = this.nodes.get(st.path);
    if (!n?.children) throw new WharfError('INVALID_ARGUMENT', `${path}: not a directory`);
    return [...n.children].sort();
  }
}

/** Checks a requested range against a file's size; returns inclusive bounds. */
export function clampRange(size: number, range: ReadRange | undefined, path: string): { start: number; end: number } {
  const start = range?.start ?? 0;
  const end = Math.min(range?.end ?? size - 1, size - 1);
  if (!Number.isSafeInteger(start) || start < 0 || (range?.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < start))) {
    throw new WharfError('INVALID_ARGUMENT', `bad range ${start}-${range?.end ?? ''} for ${path}`);
  }
  return { start, end };
}

export async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** A LayerFS whose entries live in a Tree: only reading bytes differs between layer kinds. */
export abstract class TreeFS implements LayerFS {
  abstract readonly kind: LayerFS['kind'];
  protected abstract readonly tree: Tree;

  abstract createReadStream(path: string, range?: ReadRange): Readable;
  abstract close(): Promise<void>;

  list(): FileStat[] {
    return this.tree.list();
  }

  async readdir(path: string): Promise<string[]> {
    return this.tree.readdir(path);
  }

  async lstat(path: string): Promise<FileStat> {
    return this.tree.lstat(path);
  }

  async stat(path: string): Promise<FileStat> {
    return this.tree.resolve(path);
  }

  async readFile(path: string): Promise<Buffer> {
    return readAll(this.createReadStream(path));
  }
}
