export type { StorageDriver, DriverWriter, FileInfo, FileReader, PutOptions, Staged, StageOptions } from './types.js';
export { FsDriver, checkPath, type FsDriverOptions } from './fs.js';
export { alignedBuffer, createAppender, writeDirect, type Appender, type AppenderOptions } from './append.js';
