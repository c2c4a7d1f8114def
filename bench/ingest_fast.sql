-- What bench/ingest_floor.py's configuration "prototype" adds to the schema: the fast path's
-- functions are sql/019's (msgstatus_fast_begin, msgstatus_fast_fold, msgstatus_fast_slow;
-- their prototype was here, docs/performance.md "Ingest: what the writes alone cost"), and
-- the benchmark ends each batch with msgstatus_fast_end() below instead of
-- msgstatus_ingest_end(). Loaded after the schema.

-- msgstatus_ingest_end() without pg_notify(), for the benchmark only: the statusd that runs
-- beside it would take each notification for another instance's batch and read the batch
-- back from the log (5.8 ms of PostgreSQL's time per batch of 2,000), which the statusd
-- that stores a batch does not do (its feeds have the events already).
CREATE FUNCTION msgstatus_fast_end(h bigint, n bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	IF n < 0 OR NOT EXISTS (SELECT 1 FROM log_head l WHERE l.head = h) THEN
		RAISE EXCEPTION 'msgstatus_fast_end: the log head is not %, or % events', h, n;
	END IF;
	UPDATE log_head SET head = h + n WHERE n > 0;
	RETURN h + n;
END $$;
