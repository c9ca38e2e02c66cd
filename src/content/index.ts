export { ContentCache } from './content-cache.js';
export * from './target.js';
export * from './verify.js';
export * from './graph.js';
export * from './files.js';
export { runningDigest, OFF_THREAD_MIN, type RunningDigest } from './digest.js';
