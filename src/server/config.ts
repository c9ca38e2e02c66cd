import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseDuration, parseSize } from '../spec/index.js';
import { AuthConfigSchema } from './auth/config.js';
import { AuditConfigSchema } from './audit/config.js';
import { WebhookSchema } from './webhooks/config.js';
import { ProxyConfigSchema } from './proxy/config.js';

const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined) ctx.addIssue({ code: 'custom', message: `"${v}" is not a size (e.g. 4MiB, 10GB, 1024)` });
  return n ?? 0;
});
const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseDuration(v);
  if (n === undefined) ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (e.g. 30s, 24h, 7d)` });
  return n ?? 0;
});
/** S3 bucket names (3-63 characters: lower-case letters, digits, dots and hyphens). */
const bucketName = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens');
const httpUrl = z.string().regex(/^https?:\/\/[^\s/?#]+(?:\/[^\s?#]*)?$/, 'must be an http:// or https:// URL');

/** `storage.s3` (docs/STORAGE.md, "S3"). */
const S3ConfigSchema = z
  .object({
    bucket: bucketName,
    /** An S3-compatible store (Ceph RGW, MinIO, …); absent: AWS's endpoint for the region. */
    endpoint: httpUrl.optional(),
    region: z.string().min(1).default('us-east-1'),
    /** Keys start with this, so several registries can share a bucket. */
    prefix: z
      .string()
      .regex(/^(?:[A-Za-z0-9!_.*'()-]+\/)*[A-Za-z0-9!_.*'()-]+\/?$/, 'must be a relative key prefix such as "registry/" (no leading slash, no empty segment)')
      .refine((p) => !p.split('/').some((seg) => seg === '.' || seg === '..'), 'must not contain . or .. segments')
      .optional(),
    /** Bucket in the path (host/bucket/key), as self-hosted stores need; default: true with an endpoint. */
    forcePathStyle: z.boolean().optional(),
    /** Absent: the SDK's default chain (AWS_ACCESS_KEY_ID…, shared files, instance roles). */
    credentials: z.object({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1), sessionToken: z.string().min(1).optional() }).strict().optional(),
    /** A PEM file with the CA of an https endpoint that Node's own roots do not cover. */
    ca: z.string().min(1).optional(),
    /** How long a request may wait on the store before the registry answers 503. */
    timeout: duration.default(30e3),
    /**
     * How long answers about keys (a HEAD, a tag, a link) are kept in memory. This server's own
     * writes are seen at once; another process writing the bucket (wharf gc) within this time. 0: none.
     */
    cacheTtl: duration.default(5e3),
    /** Blob GETs answer 307 to a presigned URL on `publicEndpoint` (default: the endpoint). */
    redirect: z.object({ enabled: z.boolean().default(false), expiry: duration.default(20 * 60e3), publicEndpoint: httpUrl.optional() }).strict().prefault({}),
  })
  .strict();

const listen = z.string().regex(/^(?:\[[0-9a-fA-F:]+\]|[a-zA-Z0-9.-]*):\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:5000');

export const ConfigSchema = z
  .object({
    listen: listen.default('127.0.0.1:5000'),
    data: z.string().min(1).default('./wharf-data'),
    log: z.object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).strict().prefault({}),
    storage: z
      .object({
        /** fs: the data directory; memory: nothing survives the process; s3: a bucket (storage.s3). */
        driver: z.enum(['fs', 'memory', 's3']).default('fs'),
        fsync: z.boolean().default(true),
        directIO: z.boolean().default(true),
        verifyReads: z.boolean().default(true),
        reverifyAfter: duration.default(24 * 3600e3),
        s3: S3ConfigSchema.optional(),
      })
      .strict()
      .superRefine((v, ctx) => {
        if (v.driver === 's3' && !v.s3) ctx.addIssue({ code: 'custom', path: ['s3', 'bucket'], message: 'storage.driver is s3, so storage.s3.bucket is required' });
      })
      .prefault({}),
    /**
     * Shared state for several replicas (docs/SCALE-OUT.md): with a URL, the registry's tags,
     * links and referrers live in this PostgreSQL database, which every replica reads at once.
     */
    database: z
      .object({
        url: z
          .string()
          .regex(/^postgres(?:ql)?:\/\//, 'expected a postgres:// URL')
          .optional(),
        maxConnections: z.number().int().min(1).max(1000).default(10),
      })
      .strict()
      .prefault({}),
    delete: z.object({ enabled: z.boolean().default(true) }).strict().prefault({}),
    uploads: z
      .object({
        purgeAfter: duration.default(24 * 3600e3),
        maxBlobSize: size.optional(),
        /** A mount without `from` looks for the blob in the repositories the caller may pull. */
        automaticMount: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    manifests: z.object({ maxSize: size.default(4 << 20) }).strict().prefault({}),
    pagination: z.object({ pageSize: z.number().int().min(1).max(100000).default(1000) }).strict().prefault({}),
    /** Users, tokens and access rules (docs/AUTH.md); absent: no authentication. */
    auth: AuthConfigSchema.optional(),
    tls: z.object({ cert: z.string().min(1), key: z.string().min(1), clientCa: z.string().min(1).optional() }).strict().optional(),
    audit: AuditConfigSchema.prefault({}),
    webhooks: z.array(WebhookSchema).default([]),
    /** Pull-through cache of upstream registries (docs/PROXY.md). */
    proxy: ProxyConfigSchema.prefault({}),
    /** The web UI at `/` and its API under /api/v1 (docs/UI.md). */
    ui: z
      .object({
        enabled: z.boolean().default(true),
        /**
         * Signs the UI's session cookies (32+ characters). Replicas must share it; absent, one is made
         * and kept in <data>/ui/session.key.
         */
        sessionSecret: z.string().min(32).optional(),
        sessionTtl: duration.default(12 * 3600e3),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((v, ctx) => {
    // One server's journal is read only into its index: without it, records would pile up unread.
    if (!v.audit.index && v.database.url === undefined) ctx.addIssue({ code: 'custom', path: ['audit', 'index'], message: 'audit.index: false is for replicas: it needs database.url' });
  });

export type WharfConfig = z.output<typeof ConfigSchema>;
export type WharfConfigInput = z.input<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Validates a config object; the error names the first key at fault. */
export function parseConfig(input: unknown, source = 'config'): WharfConfig {
  const r = ConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k].join('.')) : [issue.path.join('.')];
  const what = issue.code === 'unrecognized_keys' ? 'unknown key' : 'invalid value for';
  const msg = issue.code === 'unrecognized_keys' ? '' : `: ${issue.message}`;
  throw new ConfigError(`${source}: ${what} "${keys.join('", "')}"${msg}`);
}

export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    // yaml is loaded only for a YAML file: a server configured in JSON, or not at all, never needs it.
    return path.endsWith('.json') ? JSON.parse(text) : (await import('yaml')).parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Sets `value` at a dotted path of a plain object, creating the objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]!] = value;
}
