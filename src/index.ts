export * from './spec/index.js';
export * from './content/index.js';
export { MemoryStore } from './stores/memory/index.js';
