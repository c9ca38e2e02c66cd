export type { StorageDriver, DriverWriter, FileInfo, FileReader } from './types.js';
export { FsDriver, checkPath, type FsDriverOptions } from './fs.js';
