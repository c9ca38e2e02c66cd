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
  // 5: the audit journal every replica appends to and reads back (src/server/db/journal.ts): one
  // row per batch of JSON lines, ordered by the writing transaction's id, so that a reader can
  // tell which rows no open transaction can still precede. Webhook endpoints keep their place in it.
  `CREATE TABLE wharf_audit_journal (
     txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
     seq bigserial NOT NULL,
     time_ms bigint NOT NULL,
     records integer NOT NULL,
     lines text NOT NULL,
     PRIMARY KEY (txid, seq)
   );
   CREATE INDEX wharf_audit_journal_time ON wharf_audit_journal (time_ms);
   CREATE TABLE wharf_webhook_cursors (
     endpoint text PRIMARY KEY,
     txid xid8 NOT NULL,
     seq bigint NOT NULL,
     attempts integer NOT NULL DEFAULT 0,
     next_ms bigint NOT NULL DEFAULT 0,
     last_error text,
     owner text,
     lease_ms bigint NOT NULL DEFAULT 0
   );
   CREATE TABLE wharf_webhook_failed (
     id bigserial PRIMARY KEY,
     endpoint text NOT NULL,
     payload text NOT NULL,
     error text,
     failed_at timestamptz NOT NULL DEFAULT now()
   );`,
  // 6: a count of the changes to the registry's small files, moved in the transaction of each
  // change (a trigger), so that a replica can keep files in memory and check them all with one
  // read of the count (src/server/driver/pg.ts). Upload records change with every chunk and are
  // never kept: they do not count. A touch (mtime only) is no change.
  `CREATE TABLE wharf_changes (id integer PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);
   INSERT INTO wharf_changes (id, n) VALUES (1, 0);
   CREATE FUNCTION wharf_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     UPDATE wharf_changes SET n = n + 1 WHERE id = 1;
     RETURN NULL;
   END $$;
   CREATE TRIGGER wharf_files_written AFTER INSERT OR UPDATE OF data ON wharf_files
     FOR EACH ROW WHEN (NEW.path NOT LIKE '%/\\_uploads/%') EXECUTE FUNCTION wharf_count_change();
   CREATE TRIGGER wharf_files_deleted AFTER DELETE ON wharf_files
     FOR EACH ROW WHEN (OLD.path NOT LIKE '%/\\_uploads/%') EXECUTE FUNCTION wharf_count_change();`,
  // 7: replicas keep small files in memory with no check per read (src/server/driver/pg-kept.ts):
  // each counted change is also sent, with its count and path, to the channel wharf_changes at
  // commit. A rewrite with the same bytes is no change. wharf_put writes a file and says whether it
  // held other bytes before, which is when the writer must wait for the replicas to hear of it.
  `CREATE OR REPLACE FUNCTION wharf_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
   DECLARE
     m bigint;
     p text;
   BEGIN
     UPDATE wharf_changes SET n = n + 1 WHERE id = 1 RETURNING n INTO m;
     IF TG_OP = 'DELETE' THEN p := OLD.path; ELSE p := NEW.path; END IF;
     -- A notification holds at most 8000 bytes: a longer path is sent as the count alone.
     PERFORM pg_notify('wharf_changes', CASE WHEN octet_length(p) < 7000 THEN m::text || ' ' || p ELSE m::text END);
     RETURN NULL;
   END $$;
   DROP TRIGGER wharf_files_written ON wharf_files;
   CREATE TRIGGER wharf_files_inserted AFTER INSERT ON wharf_files
     FOR EACH ROW WHEN (NEW.path NOT LIKE '%/\\_uploads/%') EXECUTE FUNCTION wharf_count_change();
   CREATE TRIGGER wharf_files_rewritten AFTER UPDATE OF data ON wharf_files
     FOR EACH ROW WHEN (NEW.path NOT LIKE '%/\\_uploads/%' AND OLD.data IS DISTINCT FROM NEW.data) EXECUTE FUNCTION wharf_count_change();
   CREATE FUNCTION wharf_put(p text, d bytea) RETURNS boolean LANGUAGE plpgsql AS $$
   DECLARE
     old bytea;
   BEGIN
     LOOP
       SELECT data INTO old FROM wharf_files WHERE path = p FOR UPDATE;
       IF FOUND THEN
         UPDATE wharf_files SET data = d, mtime_ms = (extract(epoch from clock_timestamp()) * 1000)::bigint,
           version = nextval('wharf_file_version') WHERE path = p;
         RETURN old IS DISTINCT FROM d;
       END IF;
       INSERT INTO wharf_files (path, data, mtime_ms) VALUES (p, d, (extract(epoch from clock_timestamp()) * 1000)::bigint)
         ON CONFLICT (path) DO NOTHING;
       IF FOUND THEN RETURN false; END IF;
       -- Another writer made the file meanwhile: take its row on the next round.
     END LOOP;
   END $$;`,
];
