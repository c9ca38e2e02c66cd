import { cac, type CAC, type Command } from 'cac';
import { kebabBooleans, type Flags } from './flags.js';

/**
 * One action of a command that has several (`wharf manifest delete`): its own usage, options,
 * examples and `--help`. `usage` is cac's syntax without the group's name: `delete <ref>`.
 */
export interface Action {
  usage: string;
  description: string;
  aliases?: string[];
  /** Adds the action's options and examples. */
  define?: (cmd: Command) => Command;
  /** The positional arguments in order (variadic ones spread), and the flags. */
  run: (args: string[], flags: Flags) => Promise<void>;
}

/**
 * A command made of actions. In `wharf --help` it is one line; `wharf <group>` alone or with
 * `--help` lists the actions, and each action is parsed by a cac instance of the group's own, so
 * that `wharf manifest delete --help` shows delete's options.
 */
export interface Group {
  name: string;
  description: string;
  actions: Action[];
  /**
   * The group's name is also a plain command (`wharf tag <ref> <tags...>`): only a known action
   * after it (`wharf tag rm`) leads to the group, anything else to that command.
   */
  alsoCommand?: boolean;
}

export function actionName(a: Action): string {
  return a.usage.split(' ')[0]!;
}

export function findAction(g: Group, name: string | undefined): Action | undefined {
  return name === undefined ? undefined : g.actions.find((a) => actionName(a) === name || a.aliases?.includes(name));
}

/** The line `wharf --help` shows for the group; running it this way only reaches the group's help. */
export function registerGroupSummary(cli: CAC, g: Group): void {
  cli.command(`${g.name} <action> [...args]`, `${g.description} (${g.actions.map(actionName).join(', ')})`).action(() => undefined);
}

/** A cac instance named `wharf <group>` whose commands are the group's actions. */
export function groupCli(g: Group): CAC {
  const cli = cac(`wharf ${g.name}`);
  for (const a of g.actions) {
    let cmd = cli.command(a.usage, a.description);
    for (const alias of a.aliases ?? []) cmd = cmd.alias(alias);
    if (a.define) cmd = a.define(cmd);
    kebabBooleans(cmd);
    cmd.action(async (...params: unknown[]) => {
      const flags = params.pop() as Flags;
      const args = params.flat().filter((p) => p !== undefined).map(String);
      await a.run(args, flags);
    });
  }
  return cli;
}
