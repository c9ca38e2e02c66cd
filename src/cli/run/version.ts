import { VERSION } from '../version.js';
import { str, type Flags } from '../shared/flags.js';

export async function runVersion(flags: Flags): Promise<void> {
  const info = { version: VERSION, node: process.version, platform: `${process.platform}/${process.arch}` };
  if (str(flags.format) === 'json') process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  else process.stdout.write(`wharf ${info.version}\nNode.js ${info.node}\nPlatform ${info.platform}\n`);
}
