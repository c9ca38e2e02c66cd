/**
 * The driver contract suite (src/testkit/driver-suite.ts) against S3Driver on Ceph RGW: every test
 * gets a fresh key prefix in one bucket. Then what only the S3 driver has: sessions that grow by
 * appends of any size as multipart uploads, and what a crash leaves for sweepTemp.
 */
import { after, describe } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
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
