/**
 * The one error table. Every failure that crosses a module boundary is an OciError whose `code`
 * is one of these; the server renders it as the spec's JSON error body, the CLI as one line.
 * Codes and default statuses follow distribution-spec v1.1 ("Error Codes") plus a few that
 * Distribution registers and clients already understand (UNSUPPORTED, TOOMANYREQUESTS).
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
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  // Not on the wire as such: local failures of the client and the CLI.
  INVALID_ARGUMENT: { status: 400, message: 'invalid argument' },
  NOT_FOUND: { status: 404, message: 'not found' },
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

export class OciError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;

  constructor(code: ErrorCode, message?: string, opts: OciErrorOptions = {}) {
    super(message ?? ERROR_TABLE[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'OciError';
    this.code = code;
    this.status = opts.status ?? ERROR_TABLE[code].status;
    this.detail = opts.detail;
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
