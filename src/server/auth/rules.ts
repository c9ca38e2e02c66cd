import { z } from 'zod';

export const ACTIONS = ['pull', 'push', 'delete', 'admin'] as const;
export type Action = (typeof ACTIONS)[number];

export const RuleSchema = z
  .object({
    /** Repository globs: `*` stays within a path segment, `**` crosses them. */
    repos: z.array(z.string().min(1)).min(1),
    /** User names; `*` is any authenticated user. */
    users: z.array(z.string().min(1)).default([]),
    groups: z.array(z.string().min(1)).default([]),
    /** Grants the actions to clients that send no credentials too. */
    anonymous: z.boolean().default(false),
    actions: z.array(z.enum(ACTIONS)).min(1),
  })
  .strict();
export type AccessRule = z.output<typeof RuleSchema>;

/** Compiles a repository glob; everything but `*` and `**` is literal. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // `a/**` also matches `a` itself.
      if (re.endsWith('/') && i + 2 === glob.length) re = `${re.slice(0, -1)}(?:/.*)?`;
      else re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

interface CompiledRule {
  repos: RegExp[];
  everything: boolean;
  users: Set<string>;
  groups: Set<string>;
  anonymous: boolean;
  actions: Set<Action>;
}

/** Who may do what to which repository: the union of every rule that names the caller. */
export class AccessPolicy {
  private readonly rules: CompiledRule[];
  private readonly memberOf = new Map<string, Set<string>>();

  constructor(rules: AccessRule[], groups: Record<string, string[]> = {}) {
    this.rules = rules.map((r) => ({
      repos: r.repos.map(globToRegExp),
      everything: r.repos.includes('**'),
      users: new Set(r.users),
      groups: new Set(r.groups),
      anonymous: r.anonymous,
      actions: new Set(r.actions),
    }));
    for (const [g, users] of Object.entries(groups)) {
      for (const u of users) {
        if (!this.memberOf.has(u)) this.memberOf.set(u, new Set());
        this.memberOf.get(u)!.add(g);
      }
    }
  }

  private applies(r: CompiledRule, user: string | undefined): boolean {
    if (r.anonymous) return true;
    if (user === undefined) return false;
    if (r.users.has('*') || r.users.has(user)) return true;
    const gs = this.memberOf.get(user);
    if (gs) for (const g of gs) if (r.groups.has(g)) return true;
    return false;
  }

  /** The actions among `wanted` that `user` (undefined: anonymous) holds on `repo`. */
  granted(user: string | undefined, repo: string, wanted: readonly Action[] = ACTIONS): Action[] {
    const have = new Set<Action>();
    for (const r of this.rules) {
      if (!this.applies(r, user) || !r.repos.some((re) => re.test(repo))) continue;
      for (const a of r.actions) have.add(a);
    }
    if (have.has('admin')) return [...wanted];
    return wanted.filter((a) => have.has(a));
  }

  allowed(user: string | undefined, repo: string, action: Action): boolean {
    return this.granted(user, repo, [action]).length === 1;
  }

  /** Registry-wide admin (the audit API): admin granted by a rule whose repos include `**`. */
  isAdmin(user: string | undefined): boolean {
    return user !== undefined && this.rules.some((r) => r.everything && r.actions.has('admin') && !r.anonymous && this.applies(r, user));
  }
}
