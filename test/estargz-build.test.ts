import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  buildEstargzFile,
  openEstargz,
  openLayer,
  FileBlobSource,
  BufferBlobSource,
  FOOTER_SIZE,
  parseFooter,
  type RangedBlobSource,
} from '../src/estargz/index.js';
import type { ByteRange } from '../src/spec/index.js';
import { makeFixture, snapshot } from './helpers/estargz.js';

/** Counts what a reader asks of its source. */
class Counting implements RangedBlobSource {
  bytes = 0;
  calls: ByteRange[][] = [];
  constructor(private readonly inner: RangedBlobSource) {}
  size(): Promise<number> {
    return this.inner.size();
  }
  async read(ranges: ByteRange[]): Promise<Buffer[]> {
    this.calls.push(ranges);
    const out = await this.inner.read(ranges);
    for (const b of out) this.bytes += b.length;
    return out;
  }
}

async function built(chunkSize = 64 * 1024): Promise<{ work: string; src: string; blob: string; res: Awaited<ReturnType<typeof buildEstargzFile>> }> {
  const work = await mkdtemp(join(tmpdir(), 'wharf-estargz-'));
  const src = join(work, 'src');
  await mkdir(src);
  await makeFixture(src);
  const blob = join(work, 'layer.tar.gz');
  const res = await buildEstargzFile(src, blob, { chunkSize });
  return { work, src, blob, res };
}

test('the layer is a tar.gz that GNU tar extracts to the exact tree; sizes and digests add up', async () => {
  const { work, src, blob, res } = await built();
  try {
    const data = await readFile(blob);
    assert.equal(res.size, data.length);
    assert.equal(res.digest, `sha256:${createHash('sha256').update(data).digest('hex')}`);
    const tar = gunzipSync(data);
    assert.equal(res.uncompressedSize, tar.length);
    assert.equal(res.diffId, `sha256:${createHash('sha256').update(tar).digest('hex')}`);
    assert.equal(parseFooter(data.subarray(data.length - FOOTER_SIZE)), res.tocOffset);
    const out = join(work, 'out');
    await mkdir(out);
    const r = spawnSync('tar', ['-xzf', blob, '-C', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(await snapshot(out, { ignore: ['stargz.index.json'] }), await snapshot(src));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('the reader lists the tree from footer and TOC alone, and reads one file by its chunks only', async () => {
  const { work, src, blob, res } = await built();
  try {
    const source = new Counting(new FileBlobSource(blob));
    const fs = await openEstargz(source, { tocDigest: res.tocDigest });
    const tocBytes = res.size - res.tocOffset;
    assert.equal(source.bytes, tocBytes, 'footer + TOC only');
    const paths = fs.list().map((e) => e.path);
    for (const p of ['hello.txt', '.hidden', 'empty', 'empty.txt', 'sub/big.bin', 'link-to-small', 'sub/hard-hello', 'ünïcödé.txt']) assert.ok(paths.includes(p), p);
    assert.equal((await fs.lstat('link-to-small')).type, 'symlink');
    assert.equal((await fs.lstat('empty')).mode, 0o2775);
    assert.equal((await fs.lstat('sub/run.sh')).mode, 0o750);
    assert.deepEqual(await fs.readdir('sub'), ['big.bin', 'deeper', 'hard-hello', 'run.sh']);
    const before = source.bytes;
    assert.equal((await fs.readFile('hello.txt')).toString(), 'hello, eStargz\n');
    assert.ok(source.bytes - before < 1024, `a small file costs its chunk and the next header member only (${source.bytes - before} bytes)`);
    assert.equal((await fs.readFile('link-to-small')).toString(), '{"a":1}');
    assert.equal((await fs.readFile('sub/hard-hello')).toString(), 'hello, eStargz\n');
    const big = await readFile(join(src, 'sub/big.bin'));
    assert.deepEqual(await fs.readFile('sub/big.bin'), big);
    // Random access: a slice across a chunk boundary fetches two adjacent chunks in one range.
    const calls = source.calls.length;
    const part = Buffer.concat(await fs.createReadStream('sub/big.bin', { start: 65_000, end: 70_000 }).toArray());
    assert.deepEqual(part, big.subarray(65_000, 70_001));
    assert.equal(source.calls.length, calls + 1);
    assert.equal(source.calls.at(-1)!.length, 1, 'adjacent chunks are one range');
    assert.equal(fs.rangesFor('sub/big.bin').length, 1);
    await fs.close();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a wrong toc.digest, or a tampered chunk, is a clear error', async () => {
  const { work, blob, res } = await built();
  try {
    const data = await readFile(blob);
    await assert.rejects(openEstargz(new BufferBlobSource(data), { tocDigest: `sha256:${'0'.repeat(64)}` }), /toc\.digest.*altered/);
    const said: string[] = [];
    await openEstargz(new BufferBlobSource(data), { onWarning: (m) => said.push(m) });
    assert.match(said[0] ?? '', /no toc\.digest annotation; its TOC cannot be verified/);
    const fs = await openEstargz(new BufferBlobSource(data), { tocDigest: res.tocDigest });
    const [r] = fs.rangesFor('hello.txt');
    const bad = Buffer.from(data);
    bad.writeUInt8(bad.readUInt8(r!.start + 12) ^ 0xff, r!.start + 12);
    const fs2 = await openEstargz(new BufferBlobSource(bad), { tocDigest: res.tocDigest });
    await assert.rejects(fs2.readFile('hello.txt'), (err: Error) => /DIGEST_INVALID|altered|corrupt/.test(`${(err as { code?: string }).code} ${err.message}`));
    // The data intact but the member's CRC-32 altered: caught by the trailer check.
    const { inflateRawSync } = await import('node:zlib');
    const trailer = r!.start + 10 + (inflateRawSync(data.subarray(r!.start + 10), { info: true }) as unknown as { engine: { bytesWritten: number } }).engine.bytesWritten;
    const badCrc = Buffer.from(data);
    badCrc.writeUInt8(badCrc.readUInt8(trailer) ^ 0x01, trailer);
    const fs3 = await openEstargz(new BufferBlobSource(badCrc), { tocDigest: res.tocDigest });
    await assert.rejects(fs3.readFile('hello.txt'), /CRC-32 mismatch.*altered/);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a plain tar.gz is read whole, once, and served the same way', async () => {
  const work = await mkdtemp(join(tmpdir(), 'wharf-targz-'));
  try {
    const src = join(work, 'src');
    await mkdir(src);
    await makeFixture(src);
    const blob = join(work, 'plain.tar.gz');
    const r = spawnSync('tar', ['-czf', blob, '-C', src, '.']);
    assert.equal(r.status, 0);
    const data = await readFile(blob);
    const source = new Counting(new FileBlobSource(blob));
    const messages: string[] = [];
    const fs = await openLayer(source, { layerDigest: `sha256:${createHash('sha256').update(data).digest('hex')}`, onFallback: (m) => messages.push(m) });
    assert.equal(fs.kind, 'tar.gz');
    assert.match(messages[0]!, /not eStargz.*whole layer once/);
    assert.equal(source.bytes, data.length + FOOTER_SIZE, 'the footer probe, then the layer once');
    assert.equal((await fs.readFile('sub/deeper/small.json')).toString(), '{"a":1}');
    assert.deepEqual(await fs.readFile('sub/big.bin'), await readFile(join(src, 'sub/big.bin')));
    assert.equal((await fs.readFile('sub/hard-hello')).toString(), 'hello, eStargz\n');
    await fs.close();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a plain tar.gz that unpacks past the limit stops with a clear error', async () => {
  const work = await mkdtemp(join(tmpdir(), 'wharf-targz-bomb-'));
  try {
    const src = join(work, 'src');
    await mkdir(src);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(src, 'zeros'), Buffer.alloc(4 << 20));
    const blob = join(work, 'bomb.tar.gz');
    assert.equal(spawnSync('tar', ['-czf', blob, '-C', src, '.']).status, 0);
    assert.ok((await readFile(blob)).length < 64 << 10);
    await assert.rejects(openLayer(new FileBlobSource(blob), { maxUnpacked: 1 << 20 }), /unpacks to more than 1048576 bytes/);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a legacy stargz footer (47 bytes) is read too', async () => {
  const { work, blob, res } = await built();
  try {
    const data = await readFile(blob);
    const legacy = Buffer.alloc(47);
    legacy.set([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff], 0);
    legacy.writeUInt16LE(22, 10);
    legacy.write(`${res.tocOffset.toString(16).padStart(16, '0')}STARGZ`, 12, 'ascii');
    legacy.set([1, 0, 0, 0xff, 0xff], 34);
    const old = Buffer.concat([data.subarray(0, data.length - FOOTER_SIZE), legacy]);
    assert.equal(gunzipSync(old).length, res.uncompressedSize, 'still a valid gzip stream');
    const fs = await openEstargz(new BufferBlobSource(old), { tocDigest: res.tocDigest });
    assert.equal((await fs.readFile('hello.txt')).toString(), 'hello, eStargz\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
