import pg from 'pg';

/** PostgreSQL's clock in ms, as SQL: replicas compare times (leases, windows), so one clock for all. */
export const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/** How long a connection may take to open: a server that went away fails a request, it does not hang it. */
export const CONNECT_TIMEOUT_MS = 5_000;

/**
 * A connection outside the pool, for a session that holds an advisory lock for as long as it
 * runs: it must not take one of the pool's (with maxConnections: 1 nothing else could run). The
 * caller connects it, listens for 'error', and ends it.
 */
export function ownConnection(url: string): pg.Client {
  return new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
}
