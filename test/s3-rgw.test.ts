/**
 * The real object store of the S3 work, Ceph RGW 16.2, through the AWS SDK: the facts the S3 driver
 * relies on, proven here so that a change of Ceph or of the SDK that breaks one fails here first.
 * Also: test/helpers/rgw.ts leaves no Ceph process or directory behind, however its process ends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { missingRgw, startRgw, type Rgw } from './helpers/rgw.js';
import { childWithCluster, gone, processesOf } from './helpers/cluster-checks.js';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Variables this environment or a user may set, each of which would send a client built from the
 * SDK's defaults somewhere else; set to wrong values while the client is made, to prove that an
 * explicitly configured client ignores them. AWS_CA_BUNDLE: the SDK for JavaScript v3 never reads
 * it (nor a profile's ca_bundle; v2 and the Go SDK do, which is why Distribution's s3-aws driver
 * panics here). TLS trust is Node's own: its bundled roots plus NODE_EXTRA_CA_CERTS, read once at
 * process start; a CA for an https endpoint has to be given to the request handler as an agent's
 * `ca`. With a plain http endpoint, as RGW's here, no TLS happens and none of it applies.
 */
const HOSTILE_ENV: Record<string, string> = {
  AWS_CA_BUNDLE: '/nonexistent/ca-bundle.pem',
  AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
  AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
  AWS_REGION: 'xx-nowhere-1',
  AWS_DEFAULT_REGION: 'xx-nowhere-1',
  AWS_ACCESS_KEY_ID: 'AKIAWRONGWRONGWRONG0',
  AWS_SECRET_ACCESS_KEY: 'wrong',
  AWS_SESSION_TOKEN: 'wrong',
  AWS_PROFILE: 'wharf-no-such-profile',
  AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_SUPPORTED',
  AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_SUPPORTED',
};

/**
 * The client the S3 driver is meant to build: every setting explicit. Path-style, since RGW here
 * has no DNS name for buckets. Region us-east-1 (RGW's default zonegroup takes it, and "default";
 * another name fails CreateBucket with InvalidLocationConstraint). Checksums only where S3
 * requires them: with the SDK's default (WHEN_SUPPORTED) a Readable body of PutObject or UploadPart
 * goes as aws-chunked with a trailing CRC32, which RGW 16.2 refuses with 411 MissingContentLength,
 * even with ContentLength given (Buffers and strings pass, with an x-amz-checksum-crc32 header).
 */
function client(rgw: Rgw): S3Client {
  return new S3Client({
    endpoint: rgw.endpoint,
    region: rgw.region,
    forcePathStyle: true,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

async function rejectsWith(p: Promise<unknown>, name: string, status: number): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof S3ServiceException, `not an S3 error: ${String(err)}`);
    assert.equal(err.name, name);
    assert.equal(err.$metadata.httpStatusCode, status);
    return true;
  });
}

describe('Ceph RGW through the AWS SDK', { skip: missingRgw() }, () => {
  let rgw: Rgw;
  let s3: S3Client;
  const bucket = `wharf-smoke-${process.pid}-${Date.now()}`;
  const saved: Record<string, string | undefined> = {};

  before(async () => {
    rgw = await startRgw();
    for (const [k, v] of Object.entries(HOSTILE_ENV)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    s3 = client(rgw);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  after(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    s3?.destroy();
    await rgw?.stop();
  });

  test('put, get and head an object; HeadObject of a missing key is 404 NotFound', async () => {
    const body = randomBytes(1000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a/b', Body: body, ContentType: 'application/octet-stream' }));
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a/b' }));
    assert.equal(head.ContentLength, 1000);
    assert.equal(head.ETag, `"${createHash('md5').update(body).digest('hex')}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/b' }));
    assert.equal(sha256(await got.Body!.transformToByteArray()), sha256(body));
    await rejectsWith(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a/missing' })), 'NotFound', 404);
  });

  test('a streamed body of known length goes up in PutObject and UploadPart, never buffered', async () => {
    const chunks = [randomBytes(64 * 1024), randomBytes(1), randomBytes(300_000)];
    const all = Buffer.concat(chunks);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'streamed', Body: Readable.from(chunks), ContentLength: all.length }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'streamed' }));
    assert.equal(sha256(await got.Body!.transformToByteArray()), sha256(all));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'streamed-part' }));
    const part = await s3.send(
      new UploadPartCommand({ Bucket: bucket, Key: 'streamed-part', UploadId, PartNumber: 1, Body: Readable.from(chunks), ContentLength: all.length }),
    );
    assert.equal(part.ETag, `"${createHash('md5').update(all).digest('hex')}"`);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'streamed-part', UploadId }));
  });

  test('Range GET answers 206 with the bytes asked for', async () => {
    const body = Buffer.from('0123456789abcdef');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'range', Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'range', Range: 'bytes=3-9' }));
    assert.equal(got.$metadata.httpStatusCode, 206);
    assert.equal(got.ContentRange, 'bytes 3-9/16');
    assert.equal(await got.Body!.transformToString(), '3456789');
    const tail = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'range', Range: 'bytes=-4' }));
    assert.equal(await tail.Body!.transformToString(), 'cdef');
  });

  test('If-None-Match: * creates a new key, and an existing one answers 412', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'once', Body: 'first', IfNoneMatch: '*' }));
    await rejectsWith(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'once', Body: 'second', IfNoneMatch: '*' })), 'PreconditionFailed', 412);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'once' }));
    assert.equal(await got.Body!.transformToString(), 'first');
  });

  test('multipart: a 4 MiB non-final part fails with EntityTooSmall, 5 MiB parts complete', async () => {
    const upload = async (key: string, sizes: number[]): Promise<{ id: string; parts: CompletedPart[]; data: Buffer }> => {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const parts: CompletedPart[] = [];
      const chunks: Buffer[] = [];
      for (const [i, size] of sizes.entries()) {
        const chunk = randomBytes(size);
        chunks.push(chunk);
        const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: chunk }));
        parts.push({ PartNumber: i + 1, ETag: r.ETag! });
      }
      return { id: UploadId!, parts, data: Buffer.concat(chunks) };
    };

    const small = await upload('mp-small', [4 * MiB, 1]);
    await rejectsWith(
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp-small', UploadId: small.id, MultipartUpload: { Parts: small.parts } })),
      'EntityTooSmall',
      400,
    );
    // The failed completion leaves the upload open: it must be aborted, or its parts stay.
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mp-small', UploadId: small.id }));
    await rejectsWith(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp-small' })), 'NotFound', 404);

    const big = await upload('mp-big', [5 * MiB, 5 * MiB, 1]);
    const done = await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp-big', UploadId: big.id, MultipartUpload: { Parts: big.parts } }),
    );
    // RGW 16.2's CompleteMultipartUpload answer has an empty <ETag>; HEAD has the usual "…-N".
    assert.ok(!done.ETag, `ETag in the completion: ${done.ETag}`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp-big' }));
    assert.equal(head.ContentLength, 10 * MiB + 1);
    assert.match(head.ETag ?? '', /^"[0-9a-f]{32}-3"$/);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp-big' }));
    assert.equal(sha256(await got.Body!.transformToByteArray()), sha256(big.data));
  });

  test('UploadPartCopy builds an object from ranges of others', async () => {
    const a = randomBytes(6 * MiB);
    const b = Buffer.from('tail of the object');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy-src-a', Body: a }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy-src-b', Body: b }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'copy-dst' }));
    const p1 = await s3.send(
      new UploadPartCopyCommand({
        Bucket: bucket,
        Key: 'copy-dst',
        UploadId,
        PartNumber: 1,
        CopySource: `${bucket}/copy-src-a`,
        CopySourceRange: `bytes=0-${5 * MiB - 1}`,
      }),
    );
    const p2 = await s3.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: 'copy-dst', UploadId, PartNumber: 2, CopySource: `${bucket}/copy-src-b` }),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'copy-dst',
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.CopyPartResult!.ETag! },
            { PartNumber: 2, ETag: p2.CopyPartResult!.ETag! },
          ],
        },
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy-dst' }));
    assert.equal(sha256(await got.Body!.transformToByteArray()), sha256(Buffer.concat([a.subarray(0, 5 * MiB), b])));
  });

  test('halt() takes the store down, and resume() brings it back with its data', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'durable', Body: 'kept' }));
    await rgw.halt();
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'durable' })), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ECONNREFUSED', String(err));
      return true;
    });
    await rgw.resume();
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'durable' }));
    assert.equal(await got.Body!.transformToString(), 'kept');
  });

  test('a presigned GET URL answers 200 intact and 403 tampered with', async () => {
    const body = randomBytes(2048);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'signed', Body: body }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'other', Body: 'not yours' }));
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'signed' }), { expiresIn: 300 });
    assert.ok(url.startsWith(`${rgw.endpoint}/${bucket}/signed?`), url);

    const ok = await fetch(url);
    assert.equal(ok.status, 200);
    assert.equal(sha256(new Uint8Array(await ok.arrayBuffer())), sha256(body));
    const ranged = await fetch(url, { headers: { Range: 'bytes=0-9' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), new Uint8Array(body.subarray(0, 10)));

    const u = new URL(url);
    const sig = u.searchParams.get('X-Amz-Signature')!;
    const flipped = new URL(url);
    flipped.searchParams.set('X-Amz-Signature', `${sig[0] === '0' ? '1' : '0'}${sig.slice(1)}`);
    const otherKey = new URL(url);
    otherKey.pathname = `/${bucket}/other`;
    const longer = new URL(url);
    longer.searchParams.set('X-Amz-Expires', '604800');
    for (const bad of [flipped, otherKey, longer]) {
      const r = await fetch(bad);
      assert.equal(r.status, 403, bad.toString());
      assert.match(await r.text(), /SignatureDoesNotMatch|AccessDenied/);
    }
  });
});

describe('test/helpers/rgw.ts leaves nothing behind', { skip: missingRgw() }, () => {
  test('stop(), an exit without stop(), and a SIGKILL each stop and remove the cluster', { timeout: 240_000 }, async () => {
    // Started one after the other: three clusters starting at once on two cores are slow.
    const own = await startRgw();
    assert.notDeepEqual(processesOf(own.dir), []);
    await own.stop();
    await gone(own.dir, 1000);

    const exits = childWithCluster(new URL('./helpers/rgw.ts', import.meta.url), 'startRgw', 'exit');
    const exitDir = await exits.dir;
    assert.equal(await exits.exited, 0);
    await gone(exitDir, 1000); // the exit hook stops it synchronously: gone at once

    const killed = childWithCluster(new URL('./helpers/rgw.ts', import.meta.url), 'startRgw', 'hang');
    const killedDir = await killed.dir;
    assert.notDeepEqual(processesOf(killedDir), []);
    killed.kill();
    await killed.exited;
    await gone(killedDir, 30_000); // rgw.sh's watchdog notices within a second, then stops it
  });
});
