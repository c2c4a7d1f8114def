-- msgstatus schema 009: DSNs and MDNs from other mail systems (docs/security.md, "Reports
-- from other mail systems").
--
-- msgstatus-milter reads the delivery status notifications (RFC 3464) and message
-- disposition notifications (RFC 8098) that come back to this site and sends one "report"
-- event (type 15) per recipient entry (milter/reportin.h). msgstatus_reports() moves them
-- out of the batch before msgstatus_ingest() sees it: every entry about a message of ours
-- is kept here, for the timeline and the API; an entry that counts (verified) also stays
-- in the batch as an ordinary status event of the type it maps to, with source "dsn" or
-- "mdn", and changes the recipient's status like any other. An unverified one changes
-- nothing.

CREATE TABLE reports (
	event_id text PRIMARY KEY,        -- the report event's id: a replay changes nothing
	report_id text NOT NULL,          -- one per report (the milter's random id)
	message bigint NOT NULL,          -- the message it is about
	recipient text NOT NULL,          -- the address the report names (domain lower case)
	rcpt text,                        -- the recipient of the message it counts for (lower
					  -- case, an address the sender used); NULL if none
	kind text NOT NULL,               -- dsn | mdn
	status smallint,                  -- the status it says (lib/msevent.h), NULL for none
	verified boolean NOT NULL,
	proof text NOT NULL,              -- dkim, envid; or why not: not_recipient, unproven
	details jsonb NOT NULL,           -- the event's details, without the raw report
	event_time timestamptz NOT NULL,  -- when the milter read it
	received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reports_message ON reports (message);
CREATE INDEX reports_report ON reports (report_id);
CREATE INDEX reports_time ON reports (event_time);

-- The report as it came (as much of it as the milter could send), one row per report.
CREATE TABLE report_raw (
	report_id text PRIMARY KEY,
	message bigint NOT NULL,
	raw text NOT NULL,
	truncated boolean NOT NULL DEFAULT false,
	event_time timestamptz NOT NULL
);
CREATE INDEX report_raw_time ON report_raw (event_time);

-- The domain of an address, lower case ('' for none).
CREATE FUNCTION msgstatus_addr_domain(addr text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT lower(coalesce(substring(addr FROM '@([^@]*)$'), ''))
$$;

-- Does a DKIM signature of d= sig authenticate domain dom (docs/federation.md,
-- "Correlation"; milter/dkimverify.h dkimverify_aligned)? Equal, or dom a subdomain of
-- sig, and sig has two labels or more. Case-insensitive, a final dot ignored.
CREATE FUNCTION msgstatus_dkim_aligned(sig text, dom text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT s <> '' AND d <> '' AND s LIKE '%_._%' AND (d = s OR right(d, length(s) + 1) = '.' || s)
	FROM (SELECT rtrim(lower(sig), '.') AS s, rtrim(lower(dom), '.') AS d) x
$$;

-- Is rcpt, a recipient of message, one whose status the site knows first-hand, so that no
-- DKIM signature may speak for it? Any user of rcpt's domain can have a report signed with
-- that domain's key (the site signs its own users' outgoing mail): a co-recipient could
-- write one about another. So: rcpt is in the sender's own domain, or in the domain of a
-- user statusd knows (users: the site's logins), or the Dovecot plugin has an event of
-- rcpt for this message (delivered here).
CREATE FUNCTION msgstatus_report_own(message bigint, rcpt text, sender text) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT msgstatus_addr_domain(rcpt) = msgstatus_addr_domain(sender)
	    OR EXISTS (SELECT 1 FROM users u
		       WHERE msgstatus_addr_domain(u.name) = msgstatus_addr_domain(rcpt))
	    OR EXISTS (SELECT 1 FROM events e
		       WHERE e.message = msgstatus_report_own.message
			 AND e.rcpt = msgstatus_report_own.rcpt AND e.source = 'dovecot')
$$;
CREATE INDEX users_domain ON users (msgstatus_addr_domain(name));

-- Move the batch's report events (type 15) from ingest_stage into reports, and turn those
-- that count into status events in the batch. Called by statusd in the ingest transaction,
-- after the COPY and before msgstatus_ingest(), only for a batch that holds report events.
-- Returns the entries kept.
--
-- A report can come in the same batch as its message's queued events (Postfix's own bounce
-- follows the milter's record within milliseconds): so the report rows leave the batch
-- first, the batch's messages are created (msgstatus_ingest_messages(), under the lock on
-- log_head that ingest holds for that; msgstatus_ingest() calls it again and finds nothing
-- left to do), and the addresses the sender used are those stored and those of the batch's
-- queued events.
--
-- The rule (docs/security.md), in this order:
-- 1. The message: by the tracking id (from a valid ENVID, else the returned Msgstatus-Id),
--    else by Message-ID: the newest queued in the 60 days around that lists the entry's
--    recipient as a queued recipient, if all such messages have one owner (anyone can
--    send a message with another's Message-ID: with owners that differ, no message).
--    None: the entry is dropped.
-- 2. The recipient: the address the report names must be one the sender used (a queued
--    recipient of that message, schema 005's rule). Else unverified.
-- 3. The origin, proven for that recipient's domain R by either
--    (a) a valid DKIM signature (the milter's check) whose d= aligns with R, unless the
--        recipient is one of the site's own (msgstatus_report_own()), or
--    (b) a DSN whose ENVID carries this site's mac (envid_ok) for this message, when every
--        recipient of the message outside the sender's own domain is in R: then only R's
--        mail systems ever saw the ENVID.
--    Else unverified.
-- A verified entry whose status is known goes back into the batch as that status event:
-- source the report's kind, recipient the one it counts for, details reporting_mta, dsn,
-- smtp_reply (and disposition for an MDN) and report_id; its keys were computed by statusd
-- (lib/status.h status_report_key).
CREATE FUNCTION msgstatus_reports() RETURNS bigint
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	n bigint;
BEGIN
	-- the session's own tables, made once and emptied at each commit, like ingest_stage
	-- (no catalog rows per batch)
	CREATE TEMP TABLE IF NOT EXISTS report_rows (LIKE ingest_stage) ON COMMIT DELETE ROWS;
	CREATE TEMP TABLE IF NOT EXISTS report_stage (
		seq int, event_id text, message bigint, tracking_id text, sender text,
		recipient text, rcpt text, kind text, status smallint, verified boolean,
		proof text, details jsonb, event_time timestamptz
	) ON COMMIT DELETE ROWS;
	CREATE TEMP TABLE IF NOT EXISTS report_used (message bigint, recipient text)
		ON COMMIT DELETE ROWS;
	DELETE FROM report_rows;
	DELETE FROM report_stage;
	DELETE FROM report_used;

	PERFORM 1 FROM log_head FOR UPDATE;
	WITH moved AS (DELETE FROM ingest_stage s WHERE s.type = 15 RETURNING s.*)
	INSERT INTO report_rows SELECT * FROM moved;
	PERFORM msgstatus_ingest_messages();

	INSERT INTO report_stage
	SELECT s.seq, s.event_id, m.id, m.tracking_id, m.sender, lower(s.recipient), NULL,
	       coalesce(s.details->>'kind', 'dsn'),
	       CASE s.details->>'status' WHEN 'deferred' THEN 2 WHEN 'relayed' THEN 3
		    WHEN 'delivered' THEN 4 WHEN 'bounced' THEN 5 WHEN 'read' THEN 7
		    WHEN 'deleted' THEN 9 END,
	       false, 'unproven', s.details, s.event_time
	FROM report_rows s
	CROSS JOIN LATERAL (
		(SELECT m.id, m.tracking_id, m.sender FROM messages m
		 WHERE m.tracking_id = s.tracking_id)
		UNION ALL
		(SELECT c.id, c.tracking_id, c.sender
		 FROM (SELECT m.id, m.tracking_id, m.sender,
			      min(coalesce(m.owner, '')) OVER () AS o1,
			      max(coalesce(m.owner, '')) OVER () AS o2
		       FROM messages m
		       WHERE s.message_id IS NOT NULL AND m.message_id = s.message_id
			 AND m.queued_at BETWEEN s.event_time - interval '60 days'
					     AND s.event_time + interval '1 hour'
			 AND (EXISTS (SELECT 1 FROM recipients r
				      WHERE r.message = m.id AND r.queued
					AND r.recipient = lower(s.recipient))
			      OR EXISTS (SELECT 1 FROM ingest_stage q
					 WHERE q.type = 1 AND q.tracking_id = m.tracking_id
					   AND lower(q.recipient) = lower(s.recipient)))) c
		 WHERE c.o1 = c.o2
		 ORDER BY c.id DESC LIMIT 1)
		LIMIT 1) m
	WHERE s.recipient IS NOT NULL;

	-- the addresses the sender used, stored and in this batch
	INSERT INTO report_used
	SELECT r.message, r.recipient
	FROM (SELECT DISTINCT message FROM report_stage) t
	JOIN recipients r ON r.message = t.message AND r.queued
	UNION
	SELECT m.id, lower(st.recipient)
	FROM ingest_stage st JOIN messages m ON m.tracking_id = st.tracking_id
	WHERE st.type = 1 AND st.recipient IS NOT NULL
	  AND m.id IN (SELECT message FROM report_stage);
	UPDATE report_stage r SET rcpt = r.recipient
	WHERE EXISTS (SELECT 1 FROM report_used u
		      WHERE u.message = r.message AND u.recipient = r.recipient);

	UPDATE report_stage r SET verified = true, proof = 'dkim'
	WHERE r.rcpt IS NOT NULL
	  AND EXISTS (SELECT 1 FROM regexp_split_to_table(coalesce(r.details->>'dkim', ''), ' ') d
		      WHERE msgstatus_dkim_aligned(d, msgstatus_addr_domain(r.rcpt)))
	  -- DKIM proves the domain, not the user: never for a recipient of the site's own
	  AND NOT msgstatus_report_own(r.message, r.rcpt, r.sender);
	UPDATE report_stage r SET verified = true, proof = 'envid'
	WHERE r.rcpt IS NOT NULL AND NOT r.verified AND r.kind = 'dsn'
	  AND r.details->'envid_ok' = 'true'::jsonb
	  AND NOT EXISTS (SELECT 1 FROM report_used o
			  WHERE o.message = r.message
			    AND msgstatus_addr_domain(o.recipient) <> msgstatus_addr_domain(r.sender)
			    AND msgstatus_addr_domain(o.recipient) <> msgstatus_addr_domain(r.rcpt));
	UPDATE report_stage r SET proof = 'not_recipient' WHERE r.rcpt IS NULL;

	INSERT INTO reports (event_id, report_id, message, recipient, rcpt, kind, status, verified,
			     proof, details, event_time)
	SELECT r.event_id, coalesce(r.details->>'report_id', r.event_id), r.message, r.recipient,
	       r.rcpt, r.kind, r.status, r.verified, r.proof,
	       r.details - 'raw' - 'raw_truncated', r.event_time
	FROM report_stage r
	ON CONFLICT (event_id) DO NOTHING;
	GET DIAGNOSTICS n = ROW_COUNT;
	INSERT INTO report_raw (report_id, message, raw, truncated, event_time)
	SELECT coalesce(r.details->>'report_id', r.event_id), r.message, r.details->>'raw',
	       coalesce((r.details->>'raw_truncated')::boolean, false), r.event_time
	FROM report_stage r WHERE r.details->>'raw' IS NOT NULL
	ON CONFLICT (report_id) DO NOTHING;

	-- the verified ones with a status go back into the batch as status events
	INSERT INTO ingest_stage (seq, event_id, event_time, type, dkey, rkey, source, tracking_id,
				  queue_id, message_id, recipient, orig_recipient, sender, sasl_user,
				  size, details, xkey, copies)
	SELECT s.seq, s.event_id, s.event_time, r.status, s.dkey, s.rkey, r.kind, r.tracking_id,
	       NULL, s.message_id, r.rcpt, NULL, NULL, NULL, NULL,
	       jsonb_strip_nulls(jsonb_build_object(
			'reporting_mta', r.details->>'reporting_mta', 'dsn', r.details->>'dsn',
			'smtp_reply', r.details->>'smtp_reply',
			'disposition', r.details->>'disposition',
			'report_id', r.details->>'report_id')),
	       s.xkey, 0
	FROM report_rows s JOIN report_stage r ON r.seq = s.seq AND r.event_id = s.event_id
	WHERE r.verified AND r.status IS NOT NULL;
	RETURN n;
END $$;

-- Maintenance (statusd's, and statusctl maintain): reports go when they are older than
-- event_retention, like the events of that time. Returns the rows removed.
CREATE FUNCTION msgstatus_maintain_reports(retention interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM reports WHERE event_time < now() - retention;
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM report_raw WHERE event_time < now() - retention;
	RETURN n;
END $$;
