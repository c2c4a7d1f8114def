-- msgstatus schema 017: a small batch in one call (docs/performance.md, "Milter: Postfix
-- throughput with and without msgstatus-milter").
--
-- The mail path stores about one event per message, in batches of one or two: what it pays
-- is the fixed cost of a batch, not the cost of an event. Until now a batch was BEGIN, a
-- COPY into ingest_stage, msgstatus_ingest_begin(), msgstatus_ingest_append(h, known),
-- msgstatus_ingest_end(h, n), a read of log_head and COMMIT: seven statements, each a round
-- trip with its parse, its portal and a context switch on each side. For a batch of one
-- event (a private PostgreSQL 15, fsync on) the backend spent about 1.7 ms of CPU, of
-- which about 0.45 ms on the round trips and their statements, not the steps' work.
--
-- msgstatus_ingest_small(fields) is that batch in one statement: the rows statusd would
-- have COPYed, as the fields of a text array (18 a row, in ingest_stage's column order,
-- NULL for COPY's \N), are cast to ingest_stage's columns (the same input functions COPY
-- uses), staged, and the steps run: msgstatus_ingest_begin(), _append() and _end(); the
-- events that entered the log are returned as msgstatus_ingest_append() returns them.
-- statusd sends it and the read of log_head in one pipeline, in one implicit transaction:
-- one round trip. The rules are 006's and later ones, unchanged: the same step functions
-- run on the same staged rows. msgstatus_ingest_begin() (012's, replaced here) now skips
-- two of them when they have nothing to do, for every batch:
-- msgstatus_ingest_presence() acts only on presence (types 10, 11) and on read receipts
-- (7, 8), msgstatus_ingest_expiries() only on rows without a recipient (a message-level
-- expiry). statusd uses it for batches of up to 32 events with no inbound events, no
-- reports and no federation outbox step (statusd/store.c, store_ingest_small); every other
-- batch takes the COPY and the steps as before.
--
-- The commit still empties ingest_stage (ON COMMIT DELETE ROWS, about 0.2 ms): emptied by
-- DELETE the table grows under big batches, and a TRUNCATE makes every step plan again
-- (sql/016's header).

-- 012's first step, skipping the steps that have nothing to do in the batch
CREATE OR REPLACE FUNCTION msgstatus_ingest_begin(OUT h bigint, OUT known bigint)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
BEGIN
	SELECT l.head INTO h FROM log_head l FOR UPDATE;
	IF EXISTS (SELECT 1 FROM ingest_stage s WHERE s.type IN (7, 8, 10, 11)) THEN
		PERFORM msgstatus_ingest_presence();
	END IF;
	known := msgstatus_ingest_messages();
	IF EXISTS (SELECT 1 FROM ingest_stage s WHERE s.recipient IS NULL) THEN
		PERFORM msgstatus_ingest_expiries();
	END IF;
END $$;

CREATE FUNCTION msgstatus_ingest_small(fields text[])
RETURNS TABLE (log_offset bigint, event_id text, event_time timestamptz, type smallint,
	       recipient text, details jsonb, message bigint, tracking_id text,
	       message_id text, owner text, sender text)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
#variable_conflict use_column
DECLARE
	h bigint;
	known bigint;
	n bigint;
BEGIN
	IF coalesce(cardinality(fields), 0) % 18 <> 0 THEN
		RAISE EXCEPTION 'msgstatus_ingest_small: % fields, not 18 a row', cardinality(fields);
	END IF;
	INSERT INTO ingest_stage (seq, event_id, event_time, type, dkey, rkey, source, tracking_id,
				  queue_id, message_id, recipient, orig_recipient, sender, sasl_user,
				  size, details, xkey, copies)
	SELECT fields[o + 1]::int, fields[o + 2], fields[o + 3]::timestamptz,
	       fields[o + 4]::smallint, fields[o + 5]::bigint, fields[o + 6]::bigint,
	       fields[o + 7], fields[o + 8], fields[o + 9], fields[o + 10], fields[o + 11],
	       fields[o + 12], fields[o + 13], fields[o + 14], fields[o + 15]::bigint,
	       fields[o + 16]::jsonb, fields[o + 17]::bigint, fields[o + 18]::smallint
	FROM generate_series(0, coalesce(cardinality(fields), 0) - 18, 18) o;
	SELECT b.h, b.known INTO h, known FROM msgstatus_ingest_begin() b;
	RETURN QUERY SELECT * FROM msgstatus_ingest_append(h, known);
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM msgstatus_ingest_end(h, n);
END $$;
