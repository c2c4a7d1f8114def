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
-- empties them at its start, as it did, and truncates them first once they have grown past
-- 1 MB with their TOAST (a DELETE leaves pages that only a VACUUM would offer again, and a
-- TRUNCATE makes its statements plan again: rare). ingest_stage stays ON COMMIT DELETE
-- ROWS: emptied by DELETE it grew by a batch per batch, and a TRUNCATE per batch made every
-- ingest statement plan again (3.5 µs per event more at 2,000 a batch).
--
-- Both functions below wrap the ones they replace, renamed: 005's set-up and 009's reports
-- stay as they were.

-- The session's set-up: 005's (ingest_stage), then the report tables, made before
-- msgstatus_reports() first runs in the session, whose own CREATE TEMP TABLE IF NOT EXISTS
-- (009) then finds them; their columns are 009's.
ALTER FUNCTION msgstatus_session_setup() RENAME TO msgstatus_stage_setup;
CREATE FUNCTION msgstatus_session_setup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM msgstatus_stage_setup();
	CREATE TEMP TABLE IF NOT EXISTS report_rows (LIKE ingest_stage);
	CREATE TEMP TABLE IF NOT EXISTS report_stage (
		seq int, event_id text, message bigint, tracking_id text, sender text,
		recipient text, rcpt text, kind text, status smallint, verified boolean,
		proof text, details jsonb, event_time timestamptz
	);
	CREATE TEMP TABLE IF NOT EXISTS report_used (message bigint, recipient text);
END $$;

-- A batch's reports: 009's, after the report tables are truncated if they have grown past
-- 1 MB. to_regclass: NULL, not an error, in a session set up before this migration, which
-- has them only once 009's function made them (pg_total_relation_size(NULL) is NULL).
ALTER FUNCTION msgstatus_reports() RENAME TO msgstatus_reports_run;
CREATE FUNCTION msgstatus_reports() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	IF pg_total_relation_size(to_regclass('pg_temp.report_rows'))
	   + pg_total_relation_size(to_regclass('pg_temp.report_stage'))
	   + pg_total_relation_size(to_regclass('pg_temp.report_used')) > 1048576 THEN
		TRUNCATE report_rows, report_stage, report_used;
	END IF;
	RETURN msgstatus_reports_run();
END $$;
