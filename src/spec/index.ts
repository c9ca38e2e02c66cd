export * from './errors.js';
export * from './digest.js';
export * from './reference.js';
export * from './mediatype.js';
export * from './manifest.js';
export * from './range.js';
export * from './units.js';
