export * from './spec/index.js';
export * from './content/index.js';
export { MemoryStore } from './stores/memory/index.js';
export * from './stores/remote/index.js';
export * from './stores/layout/index.js';
export * from './client/index.js';
export * from './estargz/index.js';
