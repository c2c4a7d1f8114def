-- msgstatus schema 016: fewer tables emptied at each commit (docs/performance.md,
-- "Schema 016").
--
-- The three tables of the reports (sql/009) were ON COMMIT DELETE ROWS, like ingest_stage.
-- PostgreSQL empties every such table of a session at each commit of a transaction that
-- touched a temporary table, whether it holds rows or not, by truncating its files and
-- rebuilding its indexes (a TOAST table's too): about 0.2 ms a table on a quiet machine,
-- more under load. So once an ingest session had stored one report, every commit after it
-- paid for four tables, even an ingest of one event that had nothing to do with reports.
--
-- Now the report tables keep their rows (ON COMMIT PRESERVE ROWS): msgstatus_reports()
-- empties them at its start, as it did, and msgstatus_ingest_end() truncates them once they
-- have grown past 1 MB with their TOAST (a DELETE leaves pages that only a VACUUM would
-- offer again, and a TRUNCATE makes msgstatus_reports() plan its statements again: rare). ingest_stage stays
-- ON COMMIT DELETE ROWS: emptied by DELETE it grew by a batch per batch, and a TRUNCATE per
-- batch made every ingest statement plan again (3.5 µs per event more at 2,000 a batch).

-- Made before msgstatus_reports() first runs in a session, whose own CREATE TEMP TABLE IF
-- NOT EXISTS (009) then finds them; their columns are 009's.
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
	) ON COMMIT DELETE ROWS;
	CREATE TEMP TABLE IF NOT EXISTS report_rows (LIKE ingest_stage);
	CREATE TEMP TABLE IF NOT EXISTS report_stage (
		seq int, event_id text, message bigint, tracking_id text, sender text,
		recipient text, rcpt text, kind text, status smallint, verified boolean,
		proof text, details jsonb, event_time timestamptz
	);
	CREATE TEMP TABLE IF NOT EXISTS report_used (message bigint, recipient text);
END $$;

-- 012's, and the report tables truncated once they have grown past 1 MB.
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
	-- to_regclass: NULL, not an error, in a session set up before this migration without
	-- them (pg_total_relation_size(NULL) is NULL); TOAST included (a report's details)
	IF pg_total_relation_size(to_regclass('pg_temp.report_rows'))
	   + pg_total_relation_size(to_regclass('pg_temp.report_stage'))
	   + pg_total_relation_size(to_regclass('pg_temp.report_used')) > 1048576 THEN
		TRUNCATE report_rows, report_stage, report_used;
	END IF;
	RETURN h + n;
END $$;
