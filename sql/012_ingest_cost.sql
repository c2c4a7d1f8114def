-- msgstatus schema 012: less work per stored event (docs/performance.md, "Schema 012").
--
-- The rules are 006's and 011's, unchanged; what changes is what storing a message and a
-- recipient costs, and how the stored events reach statusd.
--
-- 1. messages is indexed by msgstatus_fed_tid(tracking_id) and msgstatus_fed_mid(message_id)
--    (sql/008). Both were SQL functions that PostgreSQL could not inline: they are
--    IMMUTABLE and call convert_to(), which is only STABLE (it depends on the database's
--    encoding), and msgstatus_fed_mid() is STRICT around a CASE. So each message stored ran
--    two SQL functions through the executor: 10 to 12 µs of the ~30 a message costs. In a
--    UTF8 database convert_to(x, 'UTF8') is x's own bytes, which replace(x, '\', '\\')::bytea
--    gives too (bytea's escape input: a doubled backslash is one backslash, every other byte
--    is itself), with IMMUTABLE functions only; the prefixes are constants. (E'' strings
--    and decode(): the same whatever a session's standard_conforming_strings.) The functions
--    below compute the same bytes for every text (NULL included), so the indexes stay valid
--    and are used by the same queries; they are replaced only in a UTF8 database (in
--    another one convert_to() converts, and the old functions stay).
-- 2. recipients_recipient (recipients by address alone) is dropped: every query asks a
--    recipient with its message (the primary key); the index cost each stored recipient
--    an insert.
-- 3. msgstatus_ingest() is the three calls below, which statusd now makes itself:
--    msgstatus_ingest_begin(), msgstatus_ingest_append() (006), msgstatus_ingest_end().
--    The appended events then reach statusd from msgstatus_ingest_append()'s result: the
--    function around it copied every one of them once more into a result of its own.

DO $do$
BEGIN
	IF current_setting('server_encoding') <> 'UTF8' THEN
		RETURN;
	END IF;
	-- as sql/008: only pg_catalog's functions (PostgreSQL 17 builds an index with
	-- search_path = pg_catalog, pg_temp)
	CREATE OR REPLACE FUNCTION msgstatus_fed_tid(tracking_id text) RETURNS bytea
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
		SELECT decode('01', 'hex') ||
		       substr(sha256(decode('6d736773746174757320747261636b696e672d696400', 'hex') ||
				     replace(tracking_id, E'\\', E'\\\\')::bytea), 1, 31)
	$$;
	-- 'msgstatus tracking-id' and 0x00 above, 'rfc5322 msg-id' and 0x00 here; not STRICT,
	-- so that it can be inlined (a NULL gives NULL all the same)
	CREATE OR REPLACE FUNCTION msgstatus_fed_mid(message_id text) RETURNS bytea
	LANGUAGE sql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE AS $$
		SELECT decode('01', 'hex') ||
		       substr(sha256(decode('72666335333232206d73672d696400', 'hex') ||
				     replace(CASE WHEN message_id LIKE '<%>' AND length(message_id) > 2
						  THEN substr(message_id, 2, length(message_id) - 2)
						  ELSE message_id END, E'\\', E'\\\\')::bytea), 1, 31)
	$$;
END $do$;

DROP INDEX IF EXISTS recipients_recipient;

-- The steps before the append: take the lock on log_head (it serializes writers, also
-- across statusd instances, and hands out offsets: they are gap-free, and a reader that
-- sees offset N has seen every offset below it), presence and receipts, the batch's
-- messages, expiries. h is the head before the batch, known msgstatus_ingest_messages()'s.
CREATE FUNCTION msgstatus_ingest_begin(OUT h bigint, OUT known bigint)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
BEGIN
	SELECT l.head INTO h FROM log_head l FOR UPDATE;
	PERFORM msgstatus_ingest_presence();
	known := msgstatus_ingest_messages();
	PERFORM msgstatus_ingest_expiries();
END $$;

-- After msgstatus_ingest_append(h, known) returned n events: the head moves past them,
-- and the feeds hear of it. Returns the new head. Refuses a head that is not h (it is
-- locked by msgstatus_ingest_begin() until the commit: only a wrong h gets here).
CREATE FUNCTION msgstatus_ingest_end(h bigint, n bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	IF n < 0 OR NOT EXISTS (SELECT 1 FROM log_head l WHERE l.head = h) THEN
		RAISE EXCEPTION 'msgstatus_ingest_end: the log head is not %, or % events', h, n;
	END IF;
	IF n > 0 THEN
		UPDATE log_head SET head = h + n;
		PERFORM pg_notify('msgstatus_log', (h + n)::text);
	END IF;
	RETURN h + n;
END $$;

-- The same steps in one call, as before (statusd makes the three calls itself).
CREATE OR REPLACE FUNCTION msgstatus_ingest()
RETURNS TABLE (log_offset bigint, event_id text, event_time timestamptz, type smallint,
	       recipient text, details jsonb, message bigint, tracking_id text,
	       message_id text, owner text, sender text)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	b record;
	n bigint;
BEGIN
	SELECT * INTO b FROM msgstatus_ingest_begin();
	RETURN QUERY SELECT * FROM msgstatus_ingest_append(b.h, b.known);
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM msgstatus_ingest_end(b.h, n);
END $$;
