const MESSAGES = {
  ENOENT: 'no such file or directory',
  EISDIR: 'illegal operation on a directory',
  ENOTDIR: 'not a directory',
  ENOTEMPTY: 'directory not empty',
  EINVAL: 'invalid argument',
  EFBIG: 'file too large',
  EEXIST: 'file already exists',
} as const;

/** Errors shaped like node:fs's, since callers tell a missing file by its `code`. */
export function fsError(code: keyof typeof MESSAGES, syscall: string, path: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${MESSAGES[code]}, ${syscall} '${path}'`);
  err.code = code;
  err.syscall = syscall;
  err.path = path;
  return err;
}
