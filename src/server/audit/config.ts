import { z } from 'zod';
import { parseDuration } from '../../spec/index.js';

const ms = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : parseDuration(v);
  if (n === undefined) ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (e.g. 90d, 12h)` });
  return n ?? 0;
});

/** The `audit` section: the download log in SQLite. */
export const AuditConfigSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** SQLite file; default <data>/audit/audit.db. */
    path: z.string().min(1).optional(),
    /** How often queued records are written to SQLite. */
    flushInterval: ms.default(250),
    /** Blob GETs that follow a manifest GET within this time join its "artifact download" row. */
    groupWindow: ms.default(15 * 60e3),
    retention: z.object({ maxAge: ms.optional(), maxRows: z.number().int().min(1).optional() }).strict().prefault({}),
  })
  .strict();

export type AuditConfig = z.output<typeof AuditConfigSchema>;
