import type { CAC } from 'cac';
import { registerServe } from './commands/serve.js';
import { registerGc } from './commands/gc.js';

/** Every CLI command, each declared in its own file under commands/. */
export const COMMANDS: Array<(cli: CAC) => void> = [registerServe, registerGc];
