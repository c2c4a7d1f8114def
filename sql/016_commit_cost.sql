-- msgstatus schema 016: a commit that empties no table (docs/performance.md, "Schema 016").
--
-- The session's staging tables were ON COMMIT DELETE ROWS: ingest_stage (005), and the
-- three of the reports (009) once a session had stored a report. PostgreSQL truncates
-- every such table of a session at each commit of a transaction that touched a temporary
-- table, whether it holds rows or not: a truncation of its file and of its indexes, about
-- 0.2 ms each on a quiet machine, more under load. An ingest of one event (a read, a
-- queued message) paid that for four tables, more than its own work at commit.
--
-- Now they keep their rows (ON COMMIT PRESERVE ROWS), and are emptied by the statements
-- that fill them: msgstatus_ingest_end() empties ingest_stage at the end of each batch (a
-- batch that fails rolls its rows back), and msgstatus_reports() empties its three tables
-- at its start, as it did. A DELETE of a batch's rows costs a few µs; the pages it leaves
-- are reused by the next batches (a read of the table prunes them). A table grown past
-- STAGE_TRUNCATE_BYTES (a large batch) is truncated instead, so that what a scan reads
-- stays small.

-- A session made after this migration has these tables as below: msgstatus_reports()'s
-- own CREATE TEMP TABLE IF NOT EXISTS (009) then finds them made. Their columns are 005's
-- and 009's.
CREATE OR REPLACE FUNCTION msgstatus_session_setup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
		seq int NOT NULL,
		event_id text NOT NULL,
		event_time timestamptz NOT NULL,
		type smallint NOT NULL,
		dkey bigint NOT NULL,
		rkey bigint NOT NULL,
		source text NOT NULL,
		tracking_id text,
		queue_id text,
		message_id text,
		recipient text,                 -- NULL only in a message-level expiry
		orig_recipient text,
		sender text,
		sasl_user text,
		size bigint,
		details jsonb,
		xkey bigint NOT NULL DEFAULT 0,
		copies smallint NOT NULL DEFAULT 0
	);
	CREATE TEMP TABLE IF NOT EXISTS report_rows (LIKE ingest_stage);
	CREATE TEMP TABLE IF NOT EXISTS report_stage (
		seq int, event_id text, message bigint, tracking_id text, sender text,
		recipient text, rcpt text, kind text, status smallint, verified boolean,
		proof text, details jsonb, event_time timestamptz
	);
	CREATE TEMP TABLE IF NOT EXISTS report_used (message bigint, recipient text);
END $$;

-- Empty ingest_stage: DELETE, or TRUNCATE once it has grown past 256 kB (about 800 events
-- with their details), which costs a new file but is rare.
CREATE FUNCTION msgstatus_stage_empty() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF pg_relation_size('pg_temp.ingest_stage') > 262144 THEN
		TRUNCATE ingest_stage;
	ELSE
		DELETE FROM ingest_stage;
	END IF;
END $$;

-- 012's, and the staging table emptied for the next batch.
CREATE OR REPLACE FUNCTION msgstatus_ingest_end(h bigint, n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
	IF n < 0 OR NOT EXISTS (SELECT 1 FROM log_head l WHERE l.head = h) THEN
		RAISE EXCEPTION 'msgstatus_ingest_end: the log head is not %, or % events', h, n;
	END IF;
	IF n > 0 THEN
		UPDATE log_head SET head = h + n;
		PERFORM pg_notify('msgstatus_log', (h + n)::text);
	END IF;
	PERFORM msgstatus_stage_empty();
	RETURN h + n;
END $$;
