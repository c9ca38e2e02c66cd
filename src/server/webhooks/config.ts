import { z } from 'zod';
import { parseDuration } from '../../spec/index.js';

const ms = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : parseDuration(v);
  if (n === undefined) ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (e.g. 5s, 1m)` });
  return n ?? 0;
});

export const WEBHOOK_ACTIONS = ['push', 'pull', 'delete', 'mount'] as const;
export type WebhookAction = (typeof WEBHOOK_ACTIONS)[number];

export const WebhookSchema = z
  .object({
    name: z.string().min(1),
    url: z.string().url(),
    headers: z.record(z.string(), z.string()).default({}),
    timeout: ms.default(5000),
    /** Attempts in all, the first included; waits double from `backoff` up to `maxBackoff`. */
    attempts: z.number().int().min(1).default(10),
    backoff: ms.default(1000),
    maxBackoff: ms.default(5 * 60e3),
    actions: z.array(z.enum(WEBHOOK_ACTIONS)).default([...WEBHOOK_ACTIONS]),
    /** Repository globs (`*`, `**`); empty: every repository. */
    repos: z.array(z.string().min(1)).default([]),
    mediaTypes: z.array(z.string().min(1)).default([]),
  })
  .strict();

export type WebhookConfig = z.output<typeof WebhookSchema>;
