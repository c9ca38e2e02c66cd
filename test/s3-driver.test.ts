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
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { S3Driver, type FileReader } from '../src/server/driver/index.js';
import type { OciError } from '../src/spec/index.js';
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

/**
 * A TCP proxy in front of RGW that sees every request line, and can break what a direct GET
 * (a presigned one: the SDK's carry their signature in a header) gets back.
 */
interface Proxy {
  endpoint: string;
  /** Every request line, in order. */
  requests: string[];
  connections: number;
  /** The next direct GET's response is cut after this many bytes: reset (RST), ended (FIN), or the rest held back. */
  cut?: { after: number; how: 'reset' | 'end' | 'stall' };
  /** The next request on a connection that already served one: the connection closes unanswered, once. */
  dropReused?: boolean;
  dropped: number;
  close(): Promise<void>;
}

async function startProxy(upstream: string): Promise<Proxy> {
  const to = new URL(upstream);
  const sockets = new Set<Socket>();
  const proxy: Proxy = {
    endpoint: '',
    requests: [],
    connections: 0,
    dropped: 0,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((client) => {
    proxy.connections++;
    const store = connect(Number(to.port), to.hostname);
    sockets.add(client).add(store);
    let served = 0;
    let cut: Proxy['cut'];
    let sent = 0;
    const end = (): void => {
      client.destroy();
      store.destroy();
    };
    client.on('error', end).on('close', end);
    store.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => {
      const line = /^[A-Z]+ \S+ HTTP\/1\.1\r\n/.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 4096)));
      if (line) {
        if (served++ > 0 && proxy.dropReused) {
          proxy.dropReused = false;
          proxy.dropped++;
          return end();
        }
        proxy.requests.push(line[0].trim());
        if (proxy.cut && line[0].startsWith('GET ') && line[0].includes('X-Amz-Signature=')) {
          cut = proxy.cut;
          proxy.cut = undefined;
          sent = 0;
        }
      }
      store.write(chunk);
    });
    store.on('data', (chunk: Buffer) => {
      if (!cut) return void client.write(chunk);
      const room = cut.after - sent;
      sent += chunk.length;
      if (sent <= cut.after) return void client.write(chunk);
      if (room <= 0) return;
      client.write(chunk.subarray(0, room), () => {
        if (cut!.how === 'stall') return;
        if (cut!.how === 'reset') client.resetAndDestroy();
        else client.end();
        store.destroy();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** Reads [position, position + length) in reads of `chunk` bytes, `ahead` of them at once, as a sender does. */
async function readRange(reader: FileReader, position: number, length: number, chunk: number, ahead: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  const reads: Array<Promise<void>> = [];
  for (let at = 0; at < length; at += chunk) {
    const into = out.subarray(at, Math.min(length, at + chunk));
    const read = reader.read(into, position + at).then((n) => {
      assert.equal(n, into.length, `the read at ${position + at}`);
    });
    // Those after a failed one fail too, seen or not.
    read.catch(() => undefined);
    reads.push(read);
    if (reads.length >= ahead) await reads.shift();
  }
  await Promise.all(reads);
  return out;
}

describe('S3Driver direct GETs (over its own sockets)', { skip }, () => {
  const MiB = 1 << 20;
  const setup = async (opts: { timeoutMs?: number } = {}): Promise<{ driver: S3Driver; proxy: Proxy; data: Buffer; done: () => Promise<void> }> => {
    const { rgw: r, bucket } = await cluster();
    const proxy = await startProxy(r.endpoint);
    const spoolDir = await mkdtemp(join(tmpdir(), 'wharf-s3-spool-'));
    const driver = new S3Driver({ ...s3Options(r, bucket, `d/${randomUUID()}`), endpoint: proxy.endpoint, spoolDir, ...opts });
    const data = randomBytes(3 * MiB + 12345);
    await driver.put('blobs/a', data);
    return {
      driver,
      proxy,
      data,
      done: async () => {
        driver.destroy();
        await proxy.close();
        await rm(spoolDir, { recursive: true, force: true });
      },
    };
  };
  const direct = (p: Proxy): string[] => p.requests.filter((l) => l.startsWith('GET ') && l.includes('X-Amz-Signature='));

  test('sequential reads several at once, ranges, and readers side by side get the right bytes over kept connections', async () => {
    const { driver, proxy, data, done } = await setup();
    try {
      const seq = await driver.open('blobs/a', { sequential: true, size: data.length });
      assert.ok((await readRange(seq, 0, data.length, MiB, 3)).equals(data));
      assert.equal(await seq.read(Buffer.alloc(10), data.length), 0, 'past the end');
      await seq.close();
      // Ranges anywhere (each its own window GET), some continuing the one before.
      const ranged = await driver.open('blobs/a', { size: data.length });
      for (const [at, n] of [[5, 100], [105, 300_000], [2 * MiB + 7, 70_000], [data.length - 10, 10], [0, 1], [MiB, 2 * MiB]] as const) {
        const b = Buffer.alloc(n);
        assert.equal(await ranged.read(b, at), n);
        assert.ok(b.equals(data.subarray(at, at + n)), `bytes ${at}+${n}`);
      }
      await ranged.close();
      // Four readers at once, reads of odd sizes.
      const readers = await Promise.all([0, 1, 2, 3].map(() => driver.open('blobs/a', { sequential: true, size: data.length })));
      const got = await Promise.all(readers.map((r, i) => readRange(r, i * 1000, data.length - i * 1000, 100_000 + i * 777, 2)));
      got.forEach((g, i) => assert.ok(g.equals(data.subarray(i * 1000)), `reader ${i}`));
      await Promise.all(readers.map((r) => r.close()));
      const gets = direct(proxy).length;
      assert.ok(gets >= 11, `the GETs went over the driver's sockets (${gets} of ${proxy.requests.length} requests)`);
      assert.ok(proxy.connections < gets, `connections are kept (${proxy.connections} for ${gets} GETs)`);
      // Missing: ENOENT, as through the SDK.
      const missing = await driver.open('blobs/none', { size: 10 });
      await assert.rejects(missing.read(Buffer.alloc(10), 0), { code: 'ENOENT' });
    } finally {
      await done();
    }
  });

  test('a body cut mid-way (reset, or ended short) fails its read, and the next read makes a new GET', async () => {
    const { driver, proxy, data, done } = await setup();
    try {
      for (const how of ['reset', 'end'] as const) {
        const reader = await driver.open('blobs/a', { sequential: true, size: data.length });
        proxy.cut = { after: 300_000, how };
        await assert.rejects(readRange(reader, 0, data.length, MiB, 2), (err: Error) => /short|ECONNRESET|closed/.test(err.message), how);
        assert.equal(proxy.cut, undefined, 'the cut was made');
        assert.ok((await readRange(reader, MiB, data.length - MiB, MiB, 2)).equals(data.subarray(MiB)), `read on after the ${how}`);
        await reader.close();
      }
    } finally {
      await done();
    }
  });

  test('a body that stops coming fails its read after storage.s3.timeout', async () => {
    const { driver, proxy, data, done } = await setup({ timeoutMs: 1000 });
    try {
      const reader = await driver.open('blobs/a', { sequential: true, size: data.length });
      proxy.cut = { after: 200_000, how: 'stall' };
      const t0 = Date.now();
      await assert.rejects(readRange(reader, 0, data.length, MiB, 2), /sent nothing for 1 s/);
      assert.ok(Date.now() - t0 < 5000);
      await reader.close();
    } finally {
      await done();
    }
  });

  test('a kept connection the store closed is given up, and the GET made once more on a new one', async () => {
    const { driver, proxy, data, done } = await setup();
    try {
      const first = await driver.open('blobs/a', { sequential: true, size: data.length });
      assert.ok((await readRange(first, 0, data.length, MiB, 2)).equals(data));
      await first.close();
      proxy.dropReused = true;
      const before = direct(proxy).length;
      const second = await driver.open('blobs/a', { sequential: true, size: data.length });
      assert.ok((await readRange(second, 0, data.length, MiB, 2)).equals(data));
      await second.close();
      assert.equal(proxy.dropped, 1, 'the kept connection was closed under the request');
      assert.equal(direct(proxy).length, before + 1, 'the second GET went over a new connection, directly');
    } finally {
      await done();
    }
  });

  test('a store that does not answer, or is gone, fails the read as unavailable', async () => {
    const { rgw: r, bucket } = await cluster();
    const held = new Set<Socket>();
    const silent = createServer((s) => held.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const spoolDir = await mkdtemp(join(tmpdir(), 'wharf-s3-spool-'));
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const driver = new S3Driver({ ...s3Options(r, bucket), endpoint, spoolDir, timeoutMs: 1000 });
    try {
      const reader = await driver.open('blobs/a', { size: 100 });
      await assert.rejects(reader.read(Buffer.alloc(100), 0), (err: OciError) => err.code === 'UNAVAILABLE' && /no answer within 1 s/.test(err.message));
      // Gone: connections refused.
      await new Promise<void>((resolve) => {
        silent.close(() => resolve());
        for (const s of held) s.destroy();
      });
      const gone = await driver.open('blobs/a', { size: 100 });
      await assert.rejects(gone.read(Buffer.alloc(100), 0), (err: OciError) => err.code === 'UNAVAILABLE');
    } finally {
      driver.destroy();
      if (silent.listening) silent.close();
      await rm(spoolDir, { recursive: true, force: true });
    }
  });
});
