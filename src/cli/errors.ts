import { isOciError } from '../spec/index.js';

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
  if (isOciError(err)) return { message: `${err.code}: ${err.message}`, exitCode: 1 };
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = code ? `${code}: ${err.message}` : err.message;
    return { message: debug && err.stack ? err.stack : msg, exitCode: 1 };
  }
  return { message: String(err), exitCode: 1 };
}
