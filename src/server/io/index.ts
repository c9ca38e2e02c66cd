export { CHUNK, alignedBlocks, alignedBuffer, isPageAligned } from './aligned.js';
export { drained, giveBuffer, readPooled } from './pool.js';
export { LARGE_RANGE, sendFileRange, type PositionalReader, type ReadCheck } from './send.js';
