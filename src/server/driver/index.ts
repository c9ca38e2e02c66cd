export type { StorageDriver, DriverWriter, FileInfo, FileReader } from './types.js';
export { FsDriver, checkPath, type FsDriverOptions } from './fs.js';
export { DIRECT_MIN, createAppender, directWritesWork, type Appender, type AppenderOptions } from './append.js';
