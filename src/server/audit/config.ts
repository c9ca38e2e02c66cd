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
    /**
     * Replicas (database.url) only: false for a replica that writes the shared journal but keeps no
     * index of it, so that it does not read every replica's records back (docs/SCALE-OUT.md). It
     * answers no audit queries: route /api and the UI to replicas that keep one.
     */
    index: z.boolean().default(true),
    retention: z.object({ maxAge: ms.optional(), maxRows: z.number().int().min(1).optional() }).strict().prefault({}),
  })
  .strict();

export type AuditConfig = z.output<typeof AuditConfigSchema>;

/** Why this server answers no audit queries: the log is off, or this replica keeps no index of it. */
export function noAuditIndex(audit: AuditConfig): string {
  return audit.enabled
    ? 'this replica keeps no index of the audit log (audit.index: false): ask a replica that does'
    : 'the audit log is off (audit.enabled: false): there is nothing to count';
}
