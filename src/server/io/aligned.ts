/**
 * Page-aligned memory, for direct I/O (O_DIRECT wants aligned addresses) and for the buffers that
 * large reads go through. A leaf module: the driver and the send path both use it.
 */

/** Memory that starts on a page boundary: direct reads go straight into its aligned parts. */
const alignedMemory = new WeakSet<ArrayBufferLike>();

/** WebAssembly memory grows in pages of 64 KiB. */
const WASM_PAGE = 16;

/**
 * `count` page-aligned buffers of `size` bytes (a multiple of 64 KiB), from one WebAssembly memory:
 * the one allocation JavaScript can make that is page-aligned (Buffer memory comes from malloc,
 * which puts it 16 bytes past a page at best). Each memory reserves address space far beyond its
 * size, so callers make few of them, with several buffers each.
 */
export function alignedBlocks(count: number, size: number): Buffer[] {
  const pages = (count * size) >> WASM_PAGE;
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
  alignedMemory.add(mem.buffer);
  return Array.from({ length: count }, (_, i) => Buffer.from(mem.buffer, i * size, size));
}

/** Whether `b` starts on a page boundary of aligned memory (4 KiB covers every common block size). */
export function isPageAligned(b: Uint8Array): boolean {
  return alignedMemory.has(b.buffer) && b.byteOffset % 4096 === 0;
}

/** 1 MiB: the unit of large reads and writes. */
export const CHUNK = 1 << 20;
const spare: Buffer[] = [];

/** A page-aligned buffer of CHUNK bytes, for a caller that reads large files (a direct read fills it without a copy). */
export function alignedBuffer(): Buffer {
  if (spare.length === 0) spare.push(...alignedBlocks(4, CHUNK));
  return spare.pop()!;
}
