export type { StorageDriver, DriverWriter, FileInfo } from './types.js';
export { FsDriver, checkPath, type FsDriverOptions } from './fs.js';
