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
import { registerTag } from './commands/tag.js';
import { registerResolve } from './commands/resolve.js';
import { registerManifest } from './commands/manifest.js';
import { registerBlob } from './commands/blob.js';
import { registerRepo } from './commands/repo.js';
import { registerLogin } from './commands/login.js';
import { registerLogout } from './commands/logout.js';
import { registerVersion } from './commands/version.js';
import { registerLs } from './commands/ls.js';
import { registerCat } from './commands/cat.js';
import { registerGet } from './commands/get.js';
import { registerCache } from './commands/cache.js';
import { registerUser } from './commands/user.js';
import { registerAudit } from './commands/audit.js';

/** Every CLI command, each declared in its own file under commands/. */
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
  registerResolve,
  registerManifest,
  registerBlob,
  registerRepo,
  registerLogin,
  registerLogout,
  registerVersion,
  registerLs,
  registerCat,
  registerGet,
  registerCache,
  registerUser,
  registerAudit,
];
