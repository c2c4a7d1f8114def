-- msgstatus schema 018: a report that comes before its message is held, not dropped
-- (docs/reports.md, "Before their message").
--
-- When statusd was down, the milter's spool (which holds the reports it read) and another
-- producer's spool (the message's queued events, from another milter, say) are replayed in
-- any order: a report entry can reach msgstatus_reports() (sql/009) before the message it
-- is about exists (009 drops such an entry), or before its queued events (009 keeps it as
-- not_recipient, for good). Now it is held here, as the row of the batch it came in, and
-- when a later batch brings queued events of its message (its tracking id, or its
-- Message-ID with the entry's recipient as a queued recipient) it goes back into that
-- batch as the report event it was, once the batch's messages are stored: 009's rule then
-- matches, verifies and stores it, and turns it into the status event it would have been
-- had it come after its message (same event id, time and keys). It is tried once per
-- batch that brings such queued events; one still about no message (a Message-ID whose
-- messages have different owners) is held again.
--
-- Bounded: only an entry that could ever be matched is held (a recipient, and a tracking
-- id or a Message-ID); the maintenance removes held entries whose time is older than 60
-- days (009's Message-ID window) or event_retention, whichever is shorter, and an entry
-- with no tracking id (a Message-ID only: anyone can send such a report, and backscatter
-- about mail that is not ours looks the same) one day after it was held: spools replayed
-- in any order bring its message within the outage's replay, not weeks later. A replay of a
-- held entry (same event id) is held once; a held entry whose event id is stored in
-- reports by then is removed.
--
-- Cost: a batch pays only the test whether anything is held (an empty table: one look),
-- and, while something is, one index lookup per queued event of the batch.
--
-- Privacy: a held entry changes no status and is shown by no API (it names no message);
-- only the database has it.

CREATE TABLE report_held (
	event_id text PRIMARY KEY,        -- the report event's id: a replay is held once
	event_time timestamptz NOT NULL,  -- when the milter read it
	dkey bigint NOT NULL,             -- the keys of the status it says (lib/status.h
	rkey bigint NOT NULL,             -- status_report_key), as statusd computed them
	xkey bigint NOT NULL DEFAULT 0,
	source text NOT NULL,
	tracking_id text,
	message_id text,
	recipient text NOT NULL,
	details jsonb,                    -- as it came, with the raw report if it had it
	held_at timestamptz NOT NULL DEFAULT now() -- when it was (last) held
);
CREATE INDEX report_held_tracking ON report_held (tracking_id) WHERE tracking_id IS NOT NULL;
CREATE INDEX report_held_message_id ON report_held (message_id, lower(recipient))
	WHERE message_id IS NOT NULL;
CREATE INDEX report_held_time ON report_held (event_time);

-- A batch's reports: 016's (009's after the trim), then the entries to hold: those 009
-- found no message for, and those about a message not queued yet (only the Dovecot
-- plugin's events of it have come: they name no recipient the sender used, so 009 kept
-- them as not_recipient; they leave reports and report_raw again). report_rows has the
-- batch's report events, report_stage the entries 009 found a message for.
ALTER FUNCTION msgstatus_reports() RENAME TO msgstatus_reports_found;
CREATE FUNCTION msgstatus_reports() RETURNS bigint
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	n bigint;
	early bigint;
BEGIN
	n := msgstatus_reports_found();
	INSERT INTO report_held (event_id, event_time, dkey, rkey, xkey, source, tracking_id,
				 message_id, recipient, details)
	SELECT s.event_id, s.event_time, s.dkey, s.rkey, s.xkey, s.source, s.tracking_id,
	       s.message_id, s.recipient, s.details
	FROM report_rows s
	WHERE s.recipient IS NOT NULL AND (s.tracking_id IS NOT NULL OR s.message_id IS NOT NULL)
	  AND NOT EXISTS (SELECT 1 FROM report_stage r JOIN messages m ON m.id = r.message
			  WHERE r.seq = s.seq AND r.event_id = s.event_id
			    AND m.queued_at IS NOT NULL)
	ON CONFLICT (event_id) DO NOTHING;
	IF EXISTS (SELECT 1 FROM report_stage r JOIN messages m ON m.id = r.message
		   WHERE m.queued_at IS NULL) THEN
		DELETE FROM reports x USING report_stage r, messages m
		WHERE m.id = r.message AND m.queued_at IS NULL AND x.event_id = r.event_id;
		GET DIAGNOSTICS early = ROW_COUNT;
		n := n - early;
		DELETE FROM report_raw x USING report_stage r, messages m
		WHERE m.id = r.message AND m.queued_at IS NULL AND x.message = r.message
		  AND x.report_id = coalesce(r.details->>'report_id', r.event_id);
	END IF;
	RETURN n;
END $$;

-- Does the batch in ingest_stage bring queued events of a message that has a held entry?
-- If so, those entries leave report_held for the batch, as report events after its own
-- events (those stored in reports already are only removed). Returns the entries put back.
CREATE FUNCTION msgstatus_reports_unhold() RETURNS bigint
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	n bigint;
BEGIN
	WITH due AS (
		SELECT h.event_id FROM ingest_stage q JOIN report_held h ON h.tracking_id = q.tracking_id
		WHERE q.type = 1 AND q.tracking_id IS NOT NULL
		UNION
		SELECT h.event_id FROM ingest_stage q
		JOIN report_held h ON h.message_id = q.message_id
				  AND lower(h.recipient) = lower(q.recipient)
		WHERE q.type = 1 AND q.message_id IS NOT NULL AND q.recipient IS NOT NULL
	), moved AS (
		DELETE FROM report_held h WHERE h.event_id IN (SELECT d.event_id FROM due d)
		RETURNING h.*
	), b AS (SELECT coalesce(max(st.seq), 0) AS seq FROM ingest_stage st)
	INSERT INTO ingest_stage (seq, event_id, event_time, type, dkey, rkey, source, tracking_id,
				  queue_id, message_id, recipient, orig_recipient, sender, sasl_user,
				  size, details, xkey, copies)
	SELECT b.seq + row_number() OVER (ORDER BY m.event_time, m.event_id), m.event_id,
	       m.event_time, 15, m.dkey, m.rkey, m.source, m.tracking_id, NULL, m.message_id,
	       m.recipient, NULL, NULL, NULL, NULL, m.details, m.xkey, 0
	FROM moved m CROSS JOIN b
	WHERE NOT EXISTS (SELECT 1 FROM reports r WHERE r.event_id = m.event_id);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;

-- The ingest's first step: 017's (012's steps, those with nothing to do skipped), then the
-- held entries the batch has brought the message of go through msgstatus_reports(), as
-- they would have in a batch of their own after it. Both of statusd's ways of storing a
-- batch run it (the steps, and msgstatus_ingest_small() of 017). After those steps, under their lock on log_head, which msgstatus_reports() takes too
-- before it holds an entry: so an entry held by a batch that commits while this one waits
-- for the lock is seen here. What those steps do before is the same for these entries
-- either way: the messages are the batch's; presence and expiries touch no status event of
-- a report (a read of a user of the site's, whose receipts may be off, never counts from a
-- report: msgstatus_report_own(); expiries look at events with a queue id).
ALTER FUNCTION msgstatus_ingest_begin() RENAME TO msgstatus_ingest_begin_steps;
CREATE FUNCTION msgstatus_ingest_begin(OUT h bigint, OUT known bigint)
LANGUAGE plpgsql AS $$
BEGIN
	SELECT b.h, b.known INTO h, known FROM msgstatus_ingest_begin_steps() b;
	IF EXISTS (SELECT 1 FROM report_held) AND msgstatus_reports_unhold() > 0 THEN
		PERFORM msgstatus_reports();
	END IF;
END $$;

-- Maintenance: 009's, then the held entries past their window (a day for an entry with a
-- Message-ID only).
ALTER FUNCTION msgstatus_maintain_reports(interval) RENAME TO msgstatus_maintain_reports_kept;
CREATE FUNCTION msgstatus_maintain_reports(retention interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	held bigint;
BEGIN
	n := msgstatus_maintain_reports_kept(retention);
	DELETE FROM report_held
	WHERE event_time < now() - least(retention, interval '60 days')
	   OR (tracking_id IS NULL AND held_at < now() - interval '1 day');
	GET DIAGNOSTICS held = ROW_COUNT;
	RETURN n + held;
END $$;
