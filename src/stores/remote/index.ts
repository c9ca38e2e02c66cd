import { OciError } from '../../spec/index.js';
import type { OpOptions } from '../../content/index.js';
import { Transport, responseError, type TransportOptions } from './http.js';
import { RemoteRepository, nextLink, type RepositoryOptions } from './repository.js';

export { RemoteBlobSource, parseMultipart, type RemoteBlobSourceOptions, type TransferStats } from './ranged.js';
export { RemoteRepository, referrersTag, nextLink, type RepositoryOptions, type ReferrersMode } from './repository.js';
export { Transport, mergeScopes, parseRetryAfter, backoff, isTransientNetworkError, type TransportOptions, type RetryOptions } from './http.js';
export { UploadSessionFile, type UploadSessions, type SavedSession } from './sessions.js';
export { parseChallenges, formatChallenges, type Challenge } from './challenge.js';
export {
  CredentialStore,
  staticCredentials,
  runCredentialHelper,
  normalizeHost,
  defaultDockerConfigPath,
  podmanAuthPaths,
  type Credential,
  type CredentialProvider,
  type CredentialStoreOptions,
} from './credentials.js';

export interface RegistryOptions extends TransportOptions, RepositoryOptions {
  /** Share one transport (connection pool, token cache) between registries. */
  transport?: Transport;
}

/** A registry host: its repositories, the catalog, and a ping that checks credentials. */
export class Registry {
  readonly host: string;
  readonly transport: Transport;
  private readonly repoOpts: RepositoryOptions;
  private readonly ownTransport: boolean;

  constructor(host: string, opts: RegistryOptions = {}) {
    this.host = host;
    this.ownTransport = !opts.transport;
    this.transport = opts.transport ?? new Transport(opts);
    this.repoOpts = { chunkSize: opts.chunkSize, referrers: opts.referrers, deleteOldReferrersIndex: opts.deleteOldReferrersIndex, cache: opts.cache, sessions: opts.sessions };
  }

  repository(name: string, opts: RepositoryOptions = {}): RemoteRepository {
    return new RemoteRepository(this.transport, this.host, name, { ...this.repoOpts, ...opts });
  }

  /** GET /v2/: succeeds when the registry is reachable and accepts our credentials. */
  async ping(opts: OpOptions = {}): Promise<void> {
    const res = await this.transport.send({ method: 'GET', url: new URL(`${this.transport.origin(this.host)}/v2/`), host: this.host, scopes: [], signal: opts.signal });
    if (res.status !== 200) throw await responseError(res, `ping ${this.host}`);
    await res.body.dump();
  }

  /** Repository names (`/v2/_catalog`), one page when `n` is given, else all. */
  async catalog(opts: OpOptions & { n?: number; last?: string } = {}): Promise<string[]> {
    const out: string[] = [];
    let url: URL | undefined = new URL(`${this.transport.origin(this.host)}/v2/_catalog`);
    if (opts.n !== undefined) url.searchParams.set('n', String(opts.n));
    if (opts.last !== undefined) url.searchParams.set('last', opts.last);
    // A catalog answers anonymous callers too, with what anyone may read, so no challenge would
    // ever ask for the credentials at hand: /v2/ first teaches the transport the registry's auth.
    if (await this.transport.hasCredentials(this.host)) await this.ping(opts);
    while (url) {
      const res = await this.transport.send({ method: 'GET', url, host: this.host, scopes: ['registry:catalog:*'], signal: opts.signal });
      if (res.status === 404 || res.status === 405) {
        await res.body.dump();
        throw new OciError('UNSUPPORTED', `${this.host} does not offer a catalog of repositories`);
      }
      if (res.status !== 200) throw await responseError(res, `list repositories of ${this.host}`);
      const doc = (await res.body.json()) as { repositories?: string[] | null };
      out.push(...(doc.repositories ?? []));
      url = opts.n === undefined ? nextLink(res.headers.link, res.url) : undefined;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.ownTransport) await this.transport.close();
  }
}
