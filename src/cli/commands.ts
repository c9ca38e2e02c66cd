import type { CAC } from 'cac';
import { registerServe } from './commands/serve.js';
import { registerGc } from './commands/gc.js';
import { registerPush } from './commands/push.js';
import { registerPull } from './commands/pull.js';
import { registerAttach } from './commands/attach.js';
import { registerDiscover } from './commands/discover.js';
import { registerCp } from './commands/cp.js';
import { registerBackup } from './commands/backup.js';
import { registerRestore } from './commands/restore.js';
import { registerTag, registerUntag, TAG } from './commands/tag.js';
import { registerCompletion } from './commands/completion.js';
import type { Group } from './shared/group.js';
import { registerResolve } from './commands/resolve.js';
import { MANIFEST } from './commands/manifest.js';
import { BLOB } from './commands/blob.js';
import { REPO } from './commands/repo.js';
import { registerLogin } from './commands/login.js';
import { registerLogout } from './commands/logout.js';
import { registerVersion } from './commands/version.js';
import { registerLs } from './commands/ls.js';
import { registerCat } from './commands/cat.js';
import { registerGet } from './commands/get.js';
import { CACHE } from './commands/cache.js';
import { USER } from './commands/user.js';
import { AUDIT } from './commands/audit.js';

/** Every CLI command of one action, each declared in its own file under commands/. */
export const COMMANDS: Array<(cli: CAC) => void> = [
  registerServe,
  registerGc,
  registerPush,
  registerPull,
  registerAttach,
  registerDiscover,
  registerCp,
  registerBackup,
  registerRestore,
  registerTag,
  registerUntag,
  registerResolve,
  registerLogin,
  registerLogout,
  registerVersion,
  registerLs,
  registerCat,
  registerGet,
  registerCompletion,
];

/** The commands made of actions (`wharf manifest delete`), each with a cac instance of its own. */
export const GROUPS: Group[] = [MANIFEST, BLOB, REPO, CACHE, USER, AUDIT, TAG];
