/** Paths are built from validated names, but a driver is the last line: nothing leaves the root. */
export function checkPath(path: string): string {
  if (UNSAFE_PATH.test(path)) throw new Error(`storage path "${path}" is not a plain relative path`);
  return path;
}

/** Empty, absolute, a backslash or NUL, an empty segment, or a `.` or `..` segment. */
const UNSAFE_PATH = /^$|^\/|\/\/|\/$|[\\\0]|(?:^|\/)\.\.?(?:\/|$)/;
