import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { OciError } from '../../../spec/index.js';

/** Where the bucket is and how to reach it (the config's `storage.s3`). */
export interface S3Options {
  bucket: string;
  /** `http(s)://host:port` of an S3-compatible store; absent: AWS's endpoint for `region`. */
  endpoint?: string;
  region: string;
  /** Keys start with this (no leading slash; a trailing one is added). */
  prefix?: string;
  /** Bucket in the path (`host/bucket/key`), as most self-hosted stores need; else in the host name. */
  forcePathStyle?: boolean;
  /** Absent: the SDK's default chain (environment, shared files, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** PEM of the CA that signs the endpoint's certificate (the SDK does not read AWS_CA_BUNDLE). */
  ca?: string;
  /** Bounds one request's wait for the store (ms); past it the request fails as unavailable. */
  timeoutMs?: number;
  /** Sockets kept open to the store. */
  maxSockets?: number;
  /** Blob GETs are sent to presigned URLs (the registry answers 307) instead of through the registry. */
  redirect?: { expiryMs: number; publicEndpoint?: string };
}

const ignore = (): void => undefined;
const QUIET = { trace: ignore, debug: ignore, info: ignore, warn: ignore, error: ignore };

export function makeClient(o: S3Options): S3Client {
  // The SDK warns on Node 20 that its releases after January 2027 will need Node 22; the version
  // pinned here supports Node 20, which Wharf supports, so the warning would only alarm operators.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const timeout = o.timeoutMs ?? 30_000;
  const config: S3ClientConfig = {
    region: o.region,
    forcePathStyle: o.forcePathStyle ?? true,
    // Stores older than AWS's 2025 checksum defaults (RGW 16.2 among them) refuse a streamed body
    // that carries the new trailing checksum (411), so checksums go only where a call needs one.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Without a logger the SDK writes to the console when a streamed request fails ("non-retryable
    // streaming request"), which a conditional PUT of a blob that is there does by design. The
    // driver turns every failure into its own error (storeError), and the server logs those.
    logger: QUIET,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: Math.min(timeout, 10_000),
      // Between bytes, not for the whole request: a 6 GiB body takes minutes.
      socketTimeout: timeout,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: o.maxSockets ?? 128 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: o.maxSockets ?? 128, ...(o.ca ? { ca: o.ca } : {}) }),
    }),
  };
  if (o.endpoint) config.endpoint = o.endpoint;
  if (o.credentials) config.credentials = o.credentials;
  return new S3Client(config);
}

interface AwsErrorShape {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
}

function shape(err: unknown): AwsErrorShape {
  return (typeof err === 'object' && err !== null ? err : {}) as AwsErrorShape;
}

export function statusOf(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode;
}

/** A key that is not there: HeadObject says 404 NotFound, the others NoSuchKey. */
export function isMissing(err: unknown): boolean {
  const e = shape(err);
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || (statusOf(err) === 404 && e.name !== 'NoSuchBucket' && e.name !== 'NoSuchUpload');
}

export function isNoSuchUpload(err: unknown): boolean {
  return shape(err).name === 'NoSuchUpload';
}

/** An error shaped like node:fs's, since the store tells a missing file by its `code`. */
export function enoent(syscall: string, path: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`ENOENT: no such file or directory, ${syscall} '${path}'`);
  err.code = 'ENOENT';
  err.syscall = syscall;
  err.path = path;
  return err;
}

/**
 * What a failed call becomes on its way out of the driver: a missing key ENOENT; the store down,
 * slow or failing (no answer, a timeout, a 5xx, throttling) UNAVAILABLE, which the registry
 * answers with 503 and the spec's error body; anything else (a bad signature, a denied bucket)
 * as it came, so that it is seen and fixed rather than retried.
 */
export function storeError(err: unknown, syscall: string, path: string): Error {
  if (isMissing(err)) return enoent(syscall, path);
  const e = shape(err);
  const status = statusOf(err);
  const down = status === undefined ? !(err instanceof OciError) && e.name !== 'AbortError' : status >= 500 || status === 429 || e.$fault === 'server';
  if (down && !(err instanceof OciError)) {
    // The answer names the failure, not the store's address or the key (the client sees it).
    const why = status !== undefined ? `${status} ${e.name ?? ''}`.trim() : (e.code ?? e.name ?? 'no answer');
    return new OciError('UNAVAILABLE', `the object store is unavailable (${syscall}: ${why}); try again`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
