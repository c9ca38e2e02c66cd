/**
 * A crash at each step of an upload's final PUT (issue 24: `kill -9` there could reset the session
 * to offset 0). The store runs over the real filesystem driver, wrapped so that the process
 * "dies" at its k-th write to storage: that call and every later one fail, as after a kill, and the
 * writes before it stay as they landed. A fresh store over the same directory (the restart) must
 * then report every acknowledged byte, or have the blob complete; and the client must be able to
 * finish from there.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FsDriver, RegistryStore, type StorageDriver } from '../src/server/index.js';
import { OciError, type Digest } from '../src/spec/index.js';
import { paths } from '../src/server/store/paths.js';

const sha256 = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
const WRITES = new Set(['put', 'move', 'delete', 'touch', 'writer']);

/** The driver, dying at its `at`-th write once armed; `calls` lists the writes that landed. */
function dyingDriver(inner: StorageDriver): { driver: StorageDriver; arm(at: number): void; dead(): boolean; calls: string[] } {
  let left = Infinity;
  let dead = false;
  const calls: string[] = [];
  const driver = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (WRITES.has(String(prop))) {
          if (dead || left-- <= 0) {
            dead = true;
            return Promise.reject(new Error(`killed before ${String(prop)} ${String(args[0])}`));
          }
          calls.push(`${String(prop)} ${String(args[0])}`);
        }
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { driver, arm: (at) => void (left = at), dead: () => dead, calls };
}

async function status(store: RegistryStore, repo: string, id: string): Promise<number | undefined> {
  try {
    return (await store.uploads.status(repo, id)).offset;
  } catch (err) {
    if (err instanceof OciError && err.code === 'BLOB_UPLOAD_UNKNOWN') return undefined;
    throw err;
  }
}

describe('an upload\'s final PUT, crashed at every step', () => {
  for (const stored of [false, true]) {
    test(stored ? 'of a blob stored already (another repository has it)' : 'of a new blob', async () => {
      const blob = randomBytes(300_000);
      const digest = sha256(blob);
      const acked = 200_000;
      let steps = 0;
      for (let at = 0; ; at++) {
        const dir = await mkdtemp(join(tmpdir(), 'wharf-upload-crash-'));
        try {
          const fs = new FsDriver(dir, { fsync: false });
          if (stored) {
            const other = new RegistryStore(fs);
            const s = await other.uploads.start('other/repo');
            await other.finishUpload('other/repo', s.id, digest, Readable.from([blob]));
          }
          const d = dyingDriver(fs);
          const store = new RegistryStore(d.driver);
          const { id } = await store.uploads.start('crash/repo');
          assert.equal((await store.uploads.append('crash/repo', id, Readable.from([blob.subarray(0, acked)]))).offset, acked);
          d.arm(at);
          const finished = await store.finishUpload('crash/repo', id, digest, Readable.from([blob.subarray(acked)])).then(
            () => true,
            (err: Error) => {
              assert.ok(d.dead(), `only the crash fails the PUT: ${err.message}`);
              return false;
            },
          );

          // The restart: a new store over what is on disk.
          const after = new RegistryStore(new FsDriver(dir, { fsync: false }));
          const offset = await status(after, 'crash/repo', id);
          const blobFile = await readFile(join(dir, paths.blobData(digest))).catch(() => undefined);
          const complete = blobFile !== undefined && sha256(blobFile) === digest;
          assert.ok(offset !== undefined ? offset >= acked : complete, `crash before write ${at} (after ${d.calls.join(', ')}): session at ${offset}, blob ${complete ? 'complete' : 'missing'}`);
          // The client finishes: resumes the session where it stands, or finds the blob.
          if (offset !== undefined) {
            const rest = blob.subarray(offset);
            await after.finishUpload('crash/repo', id, digest, Readable.from(rest.length > 0 ? [rest] : []), rest.length > 0 ? { contentRange: { start: offset, end: blob.length - 1 } } : {});
          } else if (!(await after.statBlob('crash/repo', digest).then(() => true, () => false))) {
            // The blob is stored but this repository's link was lost with the crash: a new
            // upload of it ends at once (stored already) and links it.
            const s = await after.uploads.start('crash/repo');
            await after.finishUpload('crash/repo', s.id, digest, Readable.from([blob]));
          }
          assert.equal(await after.statBlob('crash/repo', digest), blob.length);
          assert.ok((await readFile(join(dir, paths.blobData(digest)))).equals(blob));
          if (finished) {
            steps = at;
            break;
          }
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
      assert.ok(steps >= 3, `the final PUT makes several writes (${steps})`);
    });
  }
});
