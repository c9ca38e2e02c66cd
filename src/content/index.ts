export * from './target.js';
export * from './verify.js';
export * from './graph.js';
