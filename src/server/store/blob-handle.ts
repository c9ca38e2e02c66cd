import type { StorageDriver } from '../driver/index.js';
import { LARGE_RANGE, sendFileRange, type ReadCheck } from '../io/index.js';
import type { BlobHandle } from './backend.js';

/**
 * A stored file as a BlobHandle. `check` gives the digest a whole read must match, or undefined
 * when the file needs no check (verification off, or verified and unchanged since).
 */
export function fileBlob(driver: StorageDriver, path: string, size: number, check: () => Promise<ReadCheck | undefined>): BlobHandle {
  return {
    size,
    send: async (res, start, end) => {
      const whole = start === 0 && end === size - 1;
      // A large range is read like a whole blob (sendFileRange reads it in whole pages), so it
      // goes around the page cache too: right after a push the cache does not hold the blob, and
      // filling fresh pages cost this VM 3-4x the CPU of a direct read (docs/STORAGE.md).
      const file = await driver.open(path, { sequential: whole || end - start + 1 >= LARGE_RANGE, size });
      try {
        await sendFileRange(res, file, start, end, whole ? await check() : undefined);
      } finally {
        // Not awaited: the response ends at once, and the file closes after the reads in flight.
        void file.close().catch(() => undefined);
      }
    },
    stream: (range) => driver.reader(path, range),
    ...(driver.urlFor ? { url: () => driver.urlFor!(path) } : {}),
  };
}
