#!/usr/bin/env node
import { describeError } from './errors.js';
import { joinDashValues, programFor } from './program.js';

/**
 * The one place that exits. Commands are declared in commands.ts and import their implementation
 * lazily, so `wharf version` does not load the registry server.
 */
async function main(argv: string[]): Promise<number> {
  const { cli, args, group } = programFor(argv.slice(2));
  cli.parse([argv[0]!, argv[1]!, ...joinDashValues(cli, args)], { run: false });
  // cac has printed the help or version (and forgotten the command it matched).
  if (cli.options.help || cli.options.version) return 0;
  if (!cli.matchedCommand) {
    if (cli.args.length > 0) {
      const what = group ? `action "${cli.args[0]}" of wharf ${group.name}` : `command "${cli.args[0]}"`;
      process.stderr.write(`wharf: unknown ${what}; run "wharf ${group ? `${group.name} ` : ''}--help" for the list\n`);
      return 2;
    }
    cli.outputHelp();
    return 0;
  }
  try {
    await cli.runMatchedCommand();
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    const { message, exitCode } = describeError(err, Boolean(cli.options.debug));
    process.stderr.write(`wharf: ${message}\n`);
    return exitCode;
  }
}

main(process.argv).then(
  (code) => {
    // A server keeps the event loop alive; a one-shot command ends when its work is done.
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`wharf: ${String(err)}\n`);
    process.exit(1);
  },
);
