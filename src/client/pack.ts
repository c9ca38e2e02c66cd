import { lstat, readdir, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createRequire } from 'node:module';
import type * as TarStream from 'tar-stream';
import { fileReader } from '../content/index.js';

/**
 * Packs a directory as a tar stream, keeping what a user expects back: every permission bit
 * (setuid, setgid, sticky too), file and directory mtimes, symlinks, hard links, empty directories
 * and dotfiles. Owners are written as 0/0 with no names, since they mean nothing on another
 * machine. Entries are sorted, so the same tree gives the same bytes. (node-tar's portable mode
 * would rewrite modes to 0644-style and drop directory mtimes.)
 */
export function packTree(dir: string): Readable {
  // Loaded when used, not at every command's start (it is synchronous here: packTree returns a stream).
  const tarStream = createRequire(import.meta.url)('tar-stream') as typeof TarStream;
  const pack = tarStream.pack();
  const root = basename(dir);
  void (async () => {
    const inodes = new Map<string, string>();
    const walk = async (abs: string, name: string): Promise<void> => {
      const st = await lstat(abs);
      const common = { name, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) {
        pack.entry({ ...common, name: `${name}/`, type: 'directory' });
        for (const child of (await readdir(abs)).sort()) await walk(join(abs, child), `${name}/${child}`);
      } else if (st.isSymbolicLink()) {
        pack.entry({ ...common, type: 'symlink', linkname: await readlink(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(key) : undefined;
        if (first !== undefined) {
          pack.entry({ ...common, type: 'link', linkname: first });
          return;
        }
        if (st.nlink > 1) inodes.set(key, name);
        const entry = pack.entry({ ...common, type: 'file', size: st.size });
        await pipeline(fileReader(abs), entry);
      }
      // Sockets, fifos and devices have no place in an artifact.
    };
    await walk(dir, root);
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return pack as unknown as Readable;
}
