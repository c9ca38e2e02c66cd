import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { ExitError } from '../errors.js';

/**
 * Reads a line from the terminal; with `hidden`, echoes nothing (passwords). Without a terminal
 * the command fails with `noTerminal`, which says what to pass instead.
 */
export async function prompt(question: string, hidden: boolean, noTerminal: string): Promise<string> {
  if (!process.stdin.isTTY) throw new ExitError(noTerminal, 2);
  process.stderr.write(question);
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: hidden ? muted : process.stderr, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    if (hidden) process.stderr.write('\n');
  }
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

