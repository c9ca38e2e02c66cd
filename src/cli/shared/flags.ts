import type { Command } from 'cac';

/**
 * Flags every command that talks to a registry takes. Declared per command (not on the cac
 * root), so that `serve` and `gc` keep a help text of their own.
 */
export function registryFlags(cmd: Command): Command {
  cmd
    .option('--plain-http', 'Talk HTTP, not HTTPS, to the registry')
    .option('--insecure', 'Accept any TLS certificate from the registry')
    .option('--ca-file <file>', 'Trust this CA certificate (PEM) for the registry')
    .option('--cert-file <file>', 'Client certificate (PEM) for mutual TLS')
    .option('--key-file <file>', 'Client key (PEM) for mutual TLS')
    .option('-H, --header <header>', 'Extra request header "Name: value" (repeatable)')
    .option('--registry-config <file>', "Credentials file (default: Docker's config.json, then podman's auth.json)")
    .option('-u, --username <name>', 'Registry username')
    .option('-p, --password <password>', 'Registry password or token')
    .option('--concurrency <n>', 'Transfers at once (default 3)')
    .option('--format <format>', 'Output: text or json (json is stable, for scripts)')
    .option('--no-tty', 'Plain progress lines even on a terminal');
  return kebabBooleans(cmd);
}

/** `--oci-layout`: the command's target is an OCI image layout, not a registry. */
export function layoutFlag(cmd: Command): Command {
  return cmd.option('--oci-layout', 'The target is an OCI image layout');
}

/**
 * cac 7 tells its argv parser that a boolean flag is named `plainHttp` while the user types
 * `--plain-http`, so `--plain-http host/repo` swallows the reference as the flag's value. Giving
 * each kebab-case boolean its kebab spelling as first name fixes the parse; cac still hands the
 * action the camelCase key.
 */
export function kebabBooleans(cmd: Command): Command {
  for (const o of cmd.options) {
    if (!o.isBoolean || o.negated) continue;
    for (const raw of o.rawName.split(',')) {
      const long = /^\s*--([a-z0-9]+(?:-[a-z0-9]+)+)\s*$/.exec(raw)?.[1];
      if (long && !o.names.includes(long)) o.names.unshift(long);
    }
  }
  return cmd;
}

/** The options object cac hands an action, as we read it: strings, booleans, arrays of either. */
export type Flags = Record<string, unknown>;

/** cac turns `-p 1234` into a number; every value we read goes through here. */
export function str(v: unknown): string | undefined {
  if (v === undefined || v === null || v === false) return undefined;
  if (Array.isArray(v)) return str(v[v.length - 1]);
  return String(v);
}

export function strs(v: unknown): string[] {
  if (v === undefined || v === null || v === false) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

export function bool(v: unknown): boolean {
  return v === true || v === 'true';
}
