/**
 * The driver contract suite (src/testkit/driver-suite.ts) against S3Driver on Ceph RGW: every test
 * gets a fresh key prefix in one bucket. Then what only the S3 driver has: with a key prefix,
 * every object and multipart upload it makes stays under it, where sweepTemp finds what a crash left.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { S3Driver } from '../src/server/driver/index.js';
import { driverSuite } from '../src/testkit/driver-suite.js';
import { makeBucket, missingRgw, s3Options, startRgw, type Rgw } from './helpers/rgw.js';

const skip = missingRgw();
let rgw: Promise<{ rgw: Rgw; bucket: string }> | undefined;
const cluster = (): Promise<{ rgw: Rgw; bucket: string }> =>
  (rgw ??= (async () => {
    const r = await startRgw();
    return { rgw: r, bucket: await makeBucket(r, 'driver-suite') };
  })());
after(async () => {
  if (rgw) await (await rgw).rgw.stop();
});

if (skip) describe('S3Driver on Ceph RGW', { skip }, () => undefined);
else {
  driverSuite(
    'S3Driver (Ceph RGW)',
    async () => {
      const { rgw: r, bucket } = await cluster();
      const spoolDir = await mkdtemp(join(tmpdir(), 'wharf-s3-spool-'));
      const driver = new S3Driver({ ...s3Options(r, bucket, `t/${randomUUID()}`), spoolDir });
      return {
        driver,
        cleanup: async () => {
          driver.destroy();
          await rm(spoolDir, { recursive: true, force: true });
        },
      };
    },
    { objectStore: true },
  );
}

describe('S3Driver with a key prefix', { skip }, () => {
  test('upload sessions keep their tails and multipart uploads under the prefix, where sweepTemp ends them once their record is gone', async () => {
    const { rgw: r, bucket } = await cluster();
    const prefix = `p/${randomUUID()}`;
    const spoolDir = await mkdtemp(join(tmpdir(), 'wharf-s3-spool-'));
    const driver = new S3Driver({ ...s3Options(r, bucket, prefix), spoolDir });
    const s3 = new S3Client({ endpoint: r.endpoint, region: r.region, forcePathStyle: true, credentials: { accessKeyId: r.accessKeyId, secretAccessKey: r.secretAccessKey } });
    const keys = async (): Promise<string[]> => ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!);
    const uploads = async (): Promise<string[]> => ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.Key!);
    try {
      // A small append (a tail object), then one of 6 MiB (parts of a multipart upload), as upload
      // sessions grow; the same for a second session.
      for (const f of ['up/a', 'up/b']) {
        await driver.put(f, '');
        const small = await driver.writer(f, { appendAt: 0 });
        small.end(Buffer.alloc(100, 1));
        await small.commit();
        const big = await driver.writer(f, { appendAt: 100, size: 6 << 20 });
        big.end(Buffer.alloc(6 << 20, 2));
        await big.commit();
      }
      const mine = (k: string): boolean => k.startsWith(`${prefix}/`);
      const [objects, open] = [(await keys()).filter((k) => mine(k) || !k.startsWith('t/')), await uploads()];
      assert.ok(objects.length > 2, `the sessions hold objects besides their records: ${objects.join(', ')}`);
      assert.deepEqual(objects.filter((k) => !mine(k)), [], 'no object outside the prefix');
      assert.ok(open.length > 0);
      assert.deepEqual(open.filter((k) => !mine(k)), [], 'no multipart upload outside the prefix');
      assert.equal(await driver.sweepTemp(0), 0, 'live sessions are kept');
      // A crash after the record went but before the rest: what is left is the sweep's.
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${prefix}/up/a` }));
      assert.ok((await driver.sweepTemp(0)) >= 2, 'the orphaned tail and multipart upload are ended');
      assert.deepEqual((await keys()).filter((k) => mine(k) && k.includes('/up/a')), []);
      assert.deepEqual((await uploads()).filter((k) => k.includes('/up/a')), []);
      assert.equal((await driver.get('up/b'))?.length, 100 + (6 << 20), 'the other session is intact');
    } finally {
      s3.destroy();
      driver.destroy();
      await rm(spoolDir, { recursive: true, force: true });
    }
  });
});

describe('S3Driver sessions', { skip }, () => {
  test('a session read in the middle (sealed, as after a restart) grows on, is cut back to its last commit, and moves whole', async () => {
    const { rgw: r, bucket } = await cluster();
    const spoolDir = await mkdtemp(join(tmpdir(), 'wharf-s3-spool-'));
    const driver = new S3Driver({ ...s3Options(r, bucket, `s/${randomUUID()}`), spoolDir });
    const MiB = 1 << 20;
    const append = async (at: number, data: Buffer, size?: number): Promise<void> => {
      const w = await driver.writer('up/s', { appendAt: at, ...(size === undefined ? {} : { size }) });
      w.end(data);
      await w.commit();
    };
    try {
      const chunks = [randomBytes(6 * MiB + 3), randomBytes(MiB), randomBytes(6 * MiB), randomBytes(5)];
      await driver.put('up/s', '');
      await append(0, chunks[0]!, chunks[0]!.length);
      // A read seals the upload into one object: what a final PUT after a restart does.
      assert.ok((await driver.get('up/s'))?.equals(chunks[0]!));
      let at = chunks[0]!.length;
      await append(at, chunks[1]!); // a tail after the sealed bytes, length not announced
      at += chunks[1]!.length;
      assert.ok((await driver.get('up/s'))?.equals(Buffer.concat(chunks.slice(0, 2))), 'sealed bytes and a tail, read stitched');
      await append(at, chunks[2]!, chunks[2]!.length); // parts again: the sealed object becomes part 1
      // An unacknowledged chunk: committed, then cut off by the next write from the offset before it.
      await append(at + chunks[2]!.length, randomBytes(777));
      await append(at + chunks[2]!.length, chunks[3]!);
      const whole = Buffer.concat(chunks);
      assert.equal((await driver.stat('up/s'))?.size, whole.length);
      await driver.move('up/s', 'blobs/whole');
      assert.ok((await driver.get('blobs/whole'))?.equals(whole));
      assert.equal(await driver.stat('up/s'), undefined);
      await assert.rejects(driver.writer('up/s', { appendAt: 0 }), { code: 'ENOENT' });
    } finally {
      driver.destroy();
      await rm(spoolDir, { recursive: true, force: true });
    }
  });
});
