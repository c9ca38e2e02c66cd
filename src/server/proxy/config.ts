import { z } from 'zod';
import { parseDuration, parseSize } from '../../spec/index.js';

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseDuration(v);
  if (n === undefined) ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (e.g. 30s, 24h, 7d)` });
  return n ?? 0;
});
const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined) ctx.addIssue({ code: 'custom', message: `"${v}" is not a size (e.g. 4MiB, 10GB, 1024)` });
  return n ?? 0;
});

/** A secret given as a value or as the name of an environment variable that holds it. */
const secret = { password: z.string().optional(), passwordEnv: z.string().min(1).optional() };

const auth = z.union([
  z.literal('anonymous'),
  z.object({ anonymous: z.literal(true) }).strict(),
  z.object({ basic: z.object({ username: z.string().min(1), ...secret }).strict() }).strict(),
  z
    .object({
      bearer: z
        .object({
          // Credentials for the token service (distribution's token flow)...
          username: z.string().min(1).optional(),
          ...secret,
          // ...or a refresh token (Docker's identitytoken), or a fixed access token.
          identityToken: z.string().min(1).optional(),
          token: z.string().min(1).optional(),
          tokenEnv: z.string().min(1).optional(),
        })
        .strict(),
    })
    .strict(),
]);

/** A namespace is one repository-name component: it prefixes the cached repositories. */
const namespace = z.string().regex(/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/, 'must be one lower-case repository-name component, e.g. docker.io');

export const UpstreamSchema = z
  .object({
    namespace,
    url: z.string().regex(/^https?:\/\/[^/?#]+\/?$/, 'must be http(s)://host[:port]'),
    auth: auth.default('anonymous'),
    tls: z
      .object({
        /** PEM files: an extra CA, and a client certificate and key for mTLS. */
        ca: z.string().optional(),
        cert: z.string().optional(),
        key: z.string().optional(),
        insecure: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /** How long a tag is trusted before it is revalidated upstream (default 10m). */
    ttl: duration.default(10 * 60e3),
    /** Tags (glob: `*`, `?`) that are revalidated on every pull, e.g. `latest`. */
    alwaysRevalidate: z.array(z.string().min(1)).default([]),
    /** Never contact this upstream: serve what the cache holds. */
    offline: z.boolean().default(false),
    /** How long a manifest request or a tag revalidation may take before the cache answers without it. */
    timeout: duration.default(10e3),
    /** After this many failures in a row the upstream is left alone for `failTimeout`... */
    maxFails: z.number().int().min(1).default(3),
    /** ...during which cached content is served at once, and misses fail at once. */
    failTimeout: duration.default(30e3),
  })
  .strict();

export const ProxyConfigSchema = z
  .object({
    upstreams: z.array(UpstreamSchema).default([]),
    /** Unqualified names (`library/alpine`) not held locally are pulled through this namespace. */
    defaultNamespace: namespace.optional(),
    /** Air-gapped: no upstream is ever contacted. */
    offline: z.boolean().default(false),
    /** Content loaded into the cache at start (`serve --preload`); see `wharf cache load`. */
    preload: z.array(z.string().min(1)).default([]),
    prune: z
      .object({
        /** Run the pruning below this often (default: never). */
        interval: duration.optional(),
        /** Drop images not pulled for this long. */
        maxIdle: duration.optional(),
        /** Drop images cached longer ago than this. */
        maxAge: duration.optional(),
        /** Drop the least recently pulled images until the cache holds at most this much. */
        maxSize: size.optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((v, ctx) => {
    const seen = new Set<string>();
    v.upstreams.forEach((u, i) => {
      if (seen.has(u.namespace)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'namespace'], message: `namespace "${u.namespace}" is declared twice` });
      seen.add(u.namespace);
    });
    if (v.defaultNamespace !== undefined && !seen.has(v.defaultNamespace)) {
      ctx.addIssue({ code: 'custom', path: ['defaultNamespace'], message: `"${v.defaultNamespace}" is not the namespace of an upstream` });
    }
  });

export type ProxyConfig = z.output<typeof ProxyConfigSchema>;
export type ProxyConfigInput = z.input<typeof ProxyConfigSchema>;
export type UpstreamConfig = z.output<typeof UpstreamSchema>;
