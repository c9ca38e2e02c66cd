import { z } from 'zod';
import { parseDuration } from '../../spec/index.js';
import { RuleSchema } from './rules.js';

const seconds = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = typeof v === 'number' ? v * 1000 : parseDuration(v);
  if (ms === undefined || ms <= 0) ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (e.g. 5m, 1h, or seconds as a number)` });
  return Math.max(1, Math.round((ms ?? 0) / 1000));
});

/** The `auth` section of the config. Without it the registry is open to everyone. */
export const AuthConfigSchema = z
  .object({
    /** bcrypt htpasswd file; default <data>/auth/htpasswd. */
    htpasswd: z.string().min(1).optional(),
    /** What a 401 asks for: a token from the built-in service (bearer) or basic credentials. */
    challenge: z.enum(['bearer', 'basic']).default('bearer'),
    /** Token endpoint URL sent in challenges; default the server's own /token. */
    realm: z.string().url().optional(),
    service: z.string().min(1).default('wharf'),
    issuer: z.string().min(1).default('wharf'),
    tokenExpiresIn: seconds.default(300),
    refreshExpiresIn: seconds.default(7 * 86400),
    /** Also trust tokens of another issuer, by JWKS (URL or file) or a PEM certificate bundle. */
    external: z
      .object({ issuer: z.string().min(1), audience: z.string().min(1).optional(), jwks: z.string().min(1).optional(), certs: z.string().min(1).optional() })
      .strict()
      .refine((e) => (e.jwks === undefined) !== (e.certs === undefined), 'set exactly one of jwks and certs')
      .optional(),
    groups: z.record(z.string(), z.array(z.string().min(1))).default({}),
    rules: z.array(RuleSchema).default([]),
    /** With TLS client certificates: the subject CN of a verified certificate is the user. */
    mtlsUser: z.boolean().default(true),
    rateLimit: z
      .object({
        perClient: z.number().int().min(1).default(30),
        perUser: z.number().int().min(1).default(10),
        window: z.union([z.string(), z.number()]).transform((v) => (typeof v === 'number' ? v : parseDuration(v) ?? 60_000)).default(60_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type AuthConfig = z.output<typeof AuthConfigSchema>;
export type AuthConfigInput = z.input<typeof AuthConfigSchema>;
