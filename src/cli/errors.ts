import { isKnownError } from '../spec/index.js';

/** Thrown by commands: a one-line message for the user and the exit code. */
export class ExitError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'ExitError';
    this.exitCode = exitCode;
  }
}

/** One line that says what went wrong; the stack only with --debug. */
export function describeError(err: unknown, debug: boolean): { message: string; exitCode: number } {
  if (err instanceof ExitError) return { message: err.message, exitCode: err.exitCode };
  if (isKnownError(err)) return { message: `${err.code}: ${err.message}`, exitCode: 1 };
  if (err instanceof Error) {
    const fs = describeFsError(err as NodeJS.ErrnoException);
    if (fs) return { message: debug && err.stack ? `${fs}\n${err.stack}` : fs, exitCode: 1 };
    const code = (err as NodeJS.ErrnoException).code;
    const msg = code ? `${code}: ${err.message}` : err.message;
    return { message: debug && err.stack ? err.stack : msg, exitCode: 1 };
  }
  return { message: String(err), exitCode: 1 };
}

const VERBS: Record<string, string> = { mkdir: 'create', open: 'open', write: 'write', rename: 'write', copyfile: 'write', unlink: 'remove', rmdir: 'remove', scandir: 'read', read: 'read', stat: 'find', lstat: 'find', access: 'use', chmod: 'change the mode of', symlink: 'create', link: 'create', utime: 'set the times of' };

/** Each errno a user meets on the file system: what it means, and what to do about it. */
const FS_REASONS: Record<string, (path: string) => string> = {
  ENOENT: () => 'no such file or directory; check the path',
  EEXIST: (p) => `${p} already exists as a file, not a directory; choose another path (e.g. -o <new dir>)`,
  ENOTDIR: (p) => `a part of ${p} is a file, not a directory; choose another path`,
  EISDIR: (p) => `${p} is a directory; name a file`,
  EACCES: () => 'permission denied; choose a place you may write to, or change its permissions',
  EPERM: () => 'operation not permitted; choose a place you may write to, or change its permissions',
  EROFS: () => 'the file system is read-only; choose a writable place',
  ENOSPC: () => 'no space left on the device; free some space or choose another disk',
  EDQUOT: () => 'the disk quota is exceeded; free some space or choose another disk',
  EMFILE: () => 'too many open files; raise the limit (ulimit -n) or lower --concurrency',
  ENAMETOOLONG: () => 'the file name is too long for this file system',
};

/**
 * A one-line sentence for a file-system error (`cannot create out/model: permission denied; ...`)
 * instead of Node's `EACCES: permission denied, mkdir 'out/model'`; undefined for other errors.
 */
export function describeFsError(err: NodeJS.ErrnoException): string | undefined {
  const reason = err.code ? FS_REASONS[err.code] : undefined;
  if (!reason || !err.syscall || err.path === undefined) return undefined;
  const verb = VERBS[err.syscall] ?? err.syscall;
  return `cannot ${verb} ${err.path}: ${reason(err.path)} (${err.code})`;
}
