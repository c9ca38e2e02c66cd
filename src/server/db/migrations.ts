/**
 * The schema, one step per version: step i takes a database from version i to i + 1. Steps are
 * never edited once released, only added: a database remembers which it has had.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the registry's small files (tags, links, referrer descriptors) where every replica reads
  // its own and the others' writes at once (src/server/driver/pg.ts). `path` sorts bytewise
  // (COLLATE "C"), so that a directory's files are one range of the primary key.
  `CREATE SEQUENCE wharf_file_version;
   CREATE TABLE wharf_files (
     path text COLLATE "C" PRIMARY KEY,
     data bytea NOT NULL,
     mtime_ms bigint NOT NULL,
     version bigint NOT NULL DEFAULT nextval('wharf_file_version')
   );`,
  // 2: secrets every replica must share (the token signing key, the UI's session key), made once.
  `CREATE TABLE wharf_secrets (
     name text PRIMARY KEY,
     value text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );`,
  // 3: failed logins per client and per user, counted across replicas (src/server/auth/ratelimit.ts).
  `CREATE TABLE wharf_login_failures (
     key text PRIMARY KEY,
     n integer NOT NULL,
     reset_ms bigint NOT NULL
   );`,
  // 4: which replica fetches a blob into the pull-through cache (src/server/proxy/pull-through.ts).
  `CREATE TABLE wharf_fill_leases (
     digest text PRIMARY KEY,
     owner text NOT NULL,
     expires_ms bigint NOT NULL
   );`,
];
