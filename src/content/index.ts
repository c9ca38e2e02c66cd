export { ContentCache } from './cache.js';
export * from './target.js';
export * from './verify.js';
export * from './graph.js';
export * from './files.js';
