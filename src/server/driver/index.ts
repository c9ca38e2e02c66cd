export type { StorageDriver, DriverWriter, FileInfo, FileReader, KeptStats, PutOptions, Staged, Touched, WriterOptions, StageOptions } from './types.js';
export { checkPath } from './paths.js';
export { FsDriver, type FsDriverOptions } from './fs.js';
export { MemoryDriver } from './memory.js';
export { createAppender, writeDirect, type Appender, type AppenderOptions } from './append.js';
export { S3Driver, type S3DriverOptions, type S3Options } from './s3/index.js';
export { PgDriver, PG_FILE_MAX } from './pg.js';
export { SplitDriver, isMetaPath } from './split.js';
