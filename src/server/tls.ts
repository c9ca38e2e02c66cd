import { readFile } from 'node:fs/promises';
import type { ServerOptions } from 'node:https';
import type { Server as TlsServer } from 'node:tls';

export interface TlsFiles {
  cert: string;
  key: string;
  /** CA bundle for client certificates (mTLS). */
  clientCa?: string | undefined;
}

/**
 * HTTPS options from PEM files. With a client CA, a client certificate is asked for but not
 * required: a verified one names the user (its subject CN), and clients without one can still
 * authenticate by password or token. An unverified certificate counts as none.
 */
export async function tlsOptions(files: TlsFiles): Promise<ServerOptions> {
  const [cert, key, ca] = await Promise.all([
    readFile(files.cert),
    readFile(files.key),
    files.clientCa === undefined ? undefined : readFile(files.clientCa),
  ]);
  return ca === undefined ? { cert, key } : { cert, key, ca, requestCert: true, rejectUnauthorized: false };
}

/** Reads the files again and swaps the context: new handshakes use it, open connections go on. */
export async function reloadTls(server: TlsServer, files: TlsFiles): Promise<void> {
  const o = await tlsOptions(files);
  server.setSecureContext({ cert: o.cert, key: o.key, ...(o.ca ? { ca: o.ca } : {}) });
}
