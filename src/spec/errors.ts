/**
 * The wire's error table: the codes a registry answers with in the spec's JSON error body, with
 * their statuses. distribution-spec v1.1 ("Error Codes"), plus the codes Distribution registers
 * and clients already understand (UNSUPPORTED, TOOMANYREQUESTS) and two for server failures
 * (UNAVAILABLE, INTERNAL). An OciError carries one of these: an answer a registry gave, or one
 * that `wharf serve` gives. Failures that never cross the wire as such have their own table
 * (LOCAL_ERRORS, WharfError), as oras-go keeps errcode apart from errdef.
 */
export const ERROR_TABLE = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'invalid tag' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  INTERNAL: { status: 500, message: 'internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export interface OciErrorOptions {
  /** Overrides the table's status, e.g. 413 for a manifest over the size limit. */
  status?: number;
  detail?: unknown;
  cause?: unknown;
}

type Table = Record<string, { status: number; message: string }>;

/** An error whose code comes from a table that gives its status and default message. */
abstract class TableError<C extends string> extends Error {
  readonly code: C;
  /** The HTTP status: the table's, or the one a response showed or overrode. */
  readonly status: number;
  readonly detail: unknown;

  protected constructor(table: Table, code: C, message: string | undefined, opts: OciErrorOptions) {
    super(message ?? table[code]!.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = opts.status ?? table[code]!.status;
    this.detail = opts.detail;
  }
}

export class OciError extends TableError<ErrorCode> {
  constructor(code: ErrorCode, message?: string, opts: OciErrorOptions = {}) {
    super(ERROR_TABLE, code, message, opts);
    this.name = 'OciError';
  }

  /** The spec's error body: `{"errors":[{code,message,detail}]}`. */
  toJSON(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    const e: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) e.detail = this.detail;
    return { errors: [e] };
  }
}

export function isOciError(err: unknown, code?: ErrorCode): err is OciError {
  return err instanceof OciError && (code === undefined || err.code === code);
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_TABLE, code);
}

/**
 * Local failures: of the client, the CLI, the stores and parsers, and the server's own logic
 * before it decides what to answer. The server turns each into a wire code where it answers
 * (src/server/http/app.ts), by the context of the request: an unsatisfiable range is SIZE_INVALID
 * for a read and BLOB_UPLOAD_INVALID for a chunk.
 */
export const LOCAL_ERRORS = {
  INVALID_ARGUMENT: { status: 400, message: 'invalid argument' },
  NOT_FOUND: { status: 404, message: 'not found' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
} as const satisfies Record<string, { status: number; message: string }>;

export type LocalErrorCode = keyof typeof LOCAL_ERRORS;

export class WharfError extends TableError<LocalErrorCode> {
  constructor(code: LocalErrorCode, message?: string, opts: OciErrorOptions = {}) {
    super(LOCAL_ERRORS, code, message, opts);
    this.name = 'WharfError';
  }
}

export function isWharfError(err: unknown, code?: LocalErrorCode): err is WharfError {
  return err instanceof WharfError && (code === undefined || err.code === code);
}

/** An error of either table: a failure Wharf understood, as opposed to an unexpected one. */
export function isKnownError(err: unknown): err is OciError | WharfError {
  return err instanceof OciError || err instanceof WharfError;
}
