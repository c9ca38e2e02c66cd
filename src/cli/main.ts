#!/usr/bin/env node
import { cac } from 'cac';
import { COMMANDS } from './commands.js';
import { describeError } from './errors.js';
import { VERSION } from './version.js';

/**
 * The one place that exits. Commands are declared in commands.ts and import their implementation
 * lazily, so `wharf version` does not load the registry server.
 */
async function main(argv: string[]): Promise<number> {
  const cli = cac('wharf');
  cli.option('-d, --debug', 'Print debug output and stack traces');
  for (const register of COMMANDS) register(cli);
  // cac prints "(default: true)" after every --no-* flag, which reads as if the flag were on.
  cli.help((sections) => sections.map((s) => ({ ...s, body: s.body.replace(/^(\s+--no-.*?)\s*\(default: true\)$/gm, '$1') })));
  cli.version(VERSION);
  cli.parse(argv, { run: false });
  if (!cli.matchedCommand) {
    if (cli.args.length > 0) {
      process.stderr.write(`wharf: unknown command "${cli.args[0]}"; run "wharf --help" for the list\n`);
      return 2;
    }
    if (!cli.options.help && !cli.options.version) cli.outputHelp();
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
