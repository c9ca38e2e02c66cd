import { cac, type CAC, type Command } from 'cac';
import { COMMANDS, GROUPS } from './commands.js';
import { findAction, groupCli, registerGroupSummary, type Group } from './shared/group.js';
import { VERSION } from './version.js';

/** What the root and every group's cac instance share: --debug, help, version. */
function finish(cli: CAC, group?: Group): CAC {
  cli.option('-d, --debug', 'Print debug output and stack traces');
  cli.help((sections) =>
    sections.map((s) => {
      // cac prints "(default: true)" after every --no-* flag, which reads as if the flag were on.
      let body = s.body.replace(/^(\s+--no-.*?)\s*\(default: true\)$/gm, '$1');
      // A group's commands are its actions: `wharf manifest <action>`.
      if (group) body = body.replace(`wharf ${group.name} <command>`, `wharf ${group.name} <action>`);
      return { ...s, title: group && s.title === 'Commands' ? 'Actions' : s.title, body };
    }),
  );
  cli.version(VERSION);
  return cli;
}

/** `wharf` with every command; groups appear as one line each. */
export function rootCli(): CAC {
  const cli = cac('wharf');
  for (const register of COMMANDS) register(cli);
  for (const g of GROUPS) if (!g.alsoCommand) registerGroupSummary(cli, g);
  return finish(cli);
}

export function subCli(g: Group): CAC {
  return finish(groupCli(g), g);
}

/**
 * The cac instance that parses `args` (argv without node and script) and the args it parses:
 * `wharf manifest delete x` goes to the manifest group's instance as `delete x`.
 */
export function programFor(args: string[]): { cli: CAC; args: string[]; group?: Group } {
  const g = GROUPS.find((x) => x.name === args[0]);
  if (g && (!g.alsoCommand || findAction(g, args[1]))) return { cli: subCli(g), args: args.slice(1), group: g };
  return { cli: rootCli(), args };
}

function optionFlags(cmd: Command): Array<{ flags: string[]; takesValue: boolean }> {
  return cmd.options.map((o) => ({ flags: o.rawName.split(/[\s,]+/).filter((f) => f.startsWith('-')), takesValue: /[<[]/.test(o.rawName) }));
}

/** The flags of the command `args` names (else of every command), and the global ones. */
export function flagsFor(cli: CAC, args: string[]): Array<{ flags: string[]; takesValue: boolean }> {
  const name = args.find((a) => !a.startsWith('-'));
  const cmd = cli.commands.find((c) => c.name === name || c.aliasNames.includes(name ?? ''));
  return [...(cmd ? [cmd] : cli.commands), cli.globalCommand].flatMap(optionFlags);
}

/**
 * cac's parser reads `-o -` as `-o` with no value ("value is missing"), since `-` starts with a
 * dash; `--output=-` was the only way to say stdout. A flag that takes a value, followed by a
 * lone `-`, becomes `flag=-` before parsing, for every command and flag alike.
 */
export function joinDashValues(cli: CAC, args: string[]): string[] {
  const valued = new Set(flagsFor(cli, args).filter((f) => f.takesValue).flatMap((f) => f.flags));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (valued.has(a) && args[i + 1] === '-') {
      out.push(`${a}=-`);
      i++;
    } else out.push(a);
  }
  return out;
}
