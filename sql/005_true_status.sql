-- msgstatus schema 005: what a sender sees is true.
--
-- Moves are not deletions. An expunge used to show the recipient deleted, so a message
-- moved to the Archive (IMAP MOVE, or COPY, \Deleted and EXPUNGE) showed deleted. Now the
-- Dovecot plugin reports each copy that enters a mailbox of the recipient (its delivered
-- events, and copied: 12) and each copy expunged (expunged: 13; an older plugin's
-- "deleted" is read as one). Each recipient keeps the latest expunge (xkey, a deleted key,
-- lib/status.h) and the sum of the copies (copies); deleted is shown when an expunge was
-- seen and no copy is left. A sum is order-independent, and each event is counted once,
-- when it enters the log, so replays are harmless.
--
-- Only the addresses the sender used. An event of an address the sender did not use used
-- to count for that address when nothing tied it to one the sender used yet (the plugin's
-- delivered for bob@ ahead of Postfix's orig_to=<robert@> line), and a copy delivered to
-- someone else (LMTP injection, a Sieve redirect or a forward that keeps the header) added
-- them to the sender's message. Now an event counts for a queued recipient of its message
-- (the address itself, its orig_recipient, or the address Postfix's orig_to= or LMTP's
-- ORCPT tied it to in another event of the message); any other is held, stored without an
-- offset, and looked at again when its message gets a queued recipient or such a tie.
--
-- Statuses shown before stay as they were: an expunge stored before counts as one copy
-- expunged, the plugin's deliveries as copies; recipients already added by an event of an
-- address the sender did not use are not removed.
--
-- msgstatus_ingest() and msgstatus_session_setup() are replaced as a whole; they lived in
-- 004 and 001 before.

ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (type BETWEEN 1 AND 9 OR type IN (12, 13));
ALTER TABLE events ADD COLUMN xkey bigint NOT NULL DEFAULT 0,  -- the mailbox axis (lib/status.h)
		   ADD COLUMN copies smallint NOT NULL DEFAULT 0; -- +1 a copy in, -1 one expunged
ALTER TABLE recipients ADD COLUMN xkey bigint NOT NULL DEFAULT 0,
		       ADD COLUMN copies integer NOT NULL DEFAULT 0;

-- The history in these terms: an expunge (type 9) was a deleted on the reading axis.
-- Events in the log are folded already; those that wait (no offset yet) are folded later
-- from these columns.
UPDATE events SET xkey = rkey, rkey = 0, copies = -1 WHERE type = 9 AND log_offset IS NULL;
UPDATE events SET copies = 1
WHERE type = 4 AND source = 'dovecot' AND log_offset IS NULL;
WITH c AS (
	SELECT e.message, e.rcpt, sum(CASE WHEN e.type = 9 THEN -1 ELSE 1 END) AS copies,
	       max(e.rkey) FILTER (WHERE e.type = 9) AS xkey
	FROM events e
	WHERE e.log_offset IS NOT NULL AND (e.type = 9 OR (e.type = 4 AND e.source = 'dovecot'))
	GROUP BY e.message, e.rcpt)
UPDATE recipients r SET
	copies = c.copies, xkey = coalesce(c.xkey, 0),
	rkey = CASE WHEN r.rkey & 15 <> 9 THEN r.rkey
		    ELSE coalesce((SELECT max(e.rkey) FROM events e
				   WHERE e.message = r.message AND e.rcpt = r.recipient
				     AND e.type IN (7, 8) AND e.log_offset IS NOT NULL), 0) END
FROM c WHERE r.message = c.message AND r.recipient = c.rcpt;

-- the shown status code (lib/status.h's status_view)
ALTER TABLE recipients DROP COLUMN status;
ALTER TABLE recipients ADD COLUMN status smallint GENERATED ALWAYS AS
	(((CASE WHEN xkey > 0 AND copies <= 0 THEN xkey
		WHEN rkey > 0 THEN rkey ELSE dkey END) & 15)::smallint) STORED;

-- Per-session set-up for ingest: the staging table statusd COPYs each batch into, now with
-- the mailbox axis at its end (a session that made it before gets the columns added).
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
	IF NOT EXISTS (SELECT 1 FROM pg_attribute
		       WHERE attrelid = 'pg_temp.ingest_stage'::regclass AND attname = 'copies') THEN
		ALTER TABLE ingest_stage ADD COLUMN xkey bigint NOT NULL DEFAULT 0,
					 ADD COLUMN copies smallint NOT NULL DEFAULT 0;
	END IF;
END $$;

-- Store the batch the caller has COPYed into ingest_stage in this transaction. Returns the
-- events that were new, with their log offsets; events stored before are skipped, which is
-- what makes a replay harmless. Set-based: one pass for messages, one statement that
-- appends the new events and folds them into their recipients.
-- A batch is always small next to the tables, and the staging table has no statistics:
-- hash and merge joins would scan whole tables per batch, so only index lookups are allowed.
-- No JIT: the plan's estimated cost (the held events' rules are subqueries per event) can
-- pass jit_above_cost, and compiling it took 1.5 s of a batch of one event that runs in
-- milliseconds.
CREATE OR REPLACE FUNCTION msgstatus_ingest()
RETURNS TABLE (log_offset bigint, event_id text, event_time timestamptz, type smallint,
	       recipient text, details jsonb, message bigint, tracking_id text,
	       message_id text, owner text, sender text)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
#variable_conflict use_column
DECLARE
	h bigint;
	n bigint;
BEGIN
	-- Serializes writers (also across statusd instances) and hands out offsets: offsets
	-- are gap-free and a reader that sees offset N has seen every offset below it.
	SELECT l.head INTO h FROM log_head l FOR UPDATE;

	-- Presence (online 10, offline 11) goes to the presence table, for users who opted in
	-- only, and never into the log.
	INSERT INTO presence AS p (name, online_until, last_seen, client)
	SELECT DISTINCT ON (lower(s.recipient)) lower(s.recipient),
	       CASE WHEN s.type = 10 THEN 'infinity'::timestamptz ELSE s.event_time END,
	       s.event_time, s.source
	FROM ingest_stage s JOIN users u ON u.name = lower(s.recipient) AND u.presence
	WHERE s.type IN (10, 11)
	ORDER BY lower(s.recipient), s.event_time DESC
	ON CONFLICT (name) DO UPDATE SET
		online_until = EXCLUDED.online_until, last_seen = EXCLUDED.last_seen,
		client = EXCLUDED.client
	WHERE p.last_seen IS NULL OR EXCLUDED.last_seen >= p.last_seen;
	-- Read receipts a recipient turned off are dropped here, before anything is stored:
	-- no read event of theirs reaches anyone.
	DELETE FROM ingest_stage s
	WHERE s.type IN (10, 11)
	   OR (s.type IN (7, 8) AND EXISTS (SELECT 1 FROM users u WHERE NOT u.read_receipts
					     AND u.name IN (lower(s.recipient),
							    lower(s.orig_recipient))));

	-- Create the message of each new tracking id, then complete those that were created by
	-- an earlier event with less to say (a read before its queued). ON CONFLICT DO UPDATE
	-- would lock every known message the batch mentions, even when nothing changes.
	INSERT INTO messages (tracking_id, message_id, queue_id, sender, sasl_user, owner, size,
			      queued_at)
	SELECT s.tracking_id, max(s.message_id), max(s.queue_id), max(s.sender),
	       max(s.sasl_user), lower(coalesce(max(nullif(s.sasl_user, '')), max(s.sender))),
	       max(s.size), min(s.event_time) FILTER (WHERE s.type = 1)
	FROM ingest_stage s WHERE s.tracking_id IS NOT NULL GROUP BY s.tracking_id
	ON CONFLICT (tracking_id) DO NOTHING;

	UPDATE messages m SET
		message_id = coalesce(m.message_id, s.message_id),
		queue_id = coalesce(m.queue_id, s.queue_id),
		sender = coalesce(m.sender, s.sender),
		sasl_user = coalesce(m.sasl_user, s.sasl_user),
		owner = coalesce(m.owner, s.owner),
		size = coalesce(m.size, s.size),
		queued_at = least(m.queued_at, s.queued_at)
	FROM (SELECT st.tracking_id, max(st.message_id) AS message_id, max(st.queue_id) AS queue_id,
		     max(st.sender) AS sender, max(st.sasl_user) AS sasl_user,
		     lower(coalesce(max(nullif(st.sasl_user, '')), max(st.sender))) AS owner,
		     max(st.size) AS size, min(st.event_time) FILTER (WHERE st.type = 1) AS queued_at
	      FROM ingest_stage st WHERE st.tracking_id IS NOT NULL GROUP BY st.tracking_id) s
	WHERE m.tracking_id = s.tracking_id
	  AND ((m.message_id IS NULL AND s.message_id IS NOT NULL)
	    OR (m.queue_id IS NULL AND s.queue_id IS NOT NULL)
	    OR (m.owner IS NULL AND s.owner IS NOT NULL)
	    OR (m.size IS NULL AND s.size IS NOT NULL)
	    OR s.queued_at < m.queued_at
	    OR (m.queued_at IS NULL AND s.queued_at IS NOT NULL));

	-- A message-level expiry (Postfix's qmgr logs no line per recipient for it) counts for
	-- each recipient of the message still queued or deferred that this batch does not
	-- itself relay, deliver or bounce. Each gets an event id derived from the expiry's, so
	-- that a replay is recognized; a replay finds them expired and adds nothing.
	INSERT INTO ingest_stage (seq, event_id, event_time, type, dkey, rkey, source, queue_id,
				  message_id, recipient, details)
	SELECT s.seq, s.event_id || '.' || substr(md5(r.recipient), 1, 12), s.event_time,
	       s.type, s.dkey, s.rkey, s.source, s.queue_id, s.message_id, r.recipient, s.details
	FROM ingest_stage s
	CROSS JOIN LATERAL (SELECT m.id FROM messages m WHERE m.queue_id = s.queue_id
			    AND m.queued_at BETWEEN s.event_time - interval '60 days'
						AND s.event_time + interval '1 hour'
			    ORDER BY m.id DESC LIMIT 1) m
	JOIN recipients r ON r.message = m.id AND r.status IN (1, 2)
	WHERE s.recipient IS NULL AND s.type = 6
	  -- one set for the whole batch (hashed), not a scan of the batch per recipient
	  AND (s.queue_id, r.recipient) NOT IN
		(SELECT o.queue_id, a.rcpt
		 FROM ingest_stage o
		 CROSS JOIN LATERAL (VALUES (lower(o.recipient)), (lower(o.orig_recipient))) a (rcpt)
		 WHERE o.type IN (3, 4, 5) AND o.queue_id IS NOT NULL AND a.rcpt IS NOT NULL);
	DELETE FROM ingest_stage s WHERE s.recipient IS NULL;

	RETURN QUERY
	WITH located AS MATERIALIZED (
		-- the new events and their message: by tracking id; else the newest with the
		-- queue id that was queued around the event's time (short queue ids are reused);
		-- else the same by Message-ID; else none yet (stored unjoined)
		SELECT s.*,
		       coalesce((SELECT m.id FROM messages m WHERE m.tracking_id = s.tracking_id),
				(SELECT m.id FROM messages m WHERE s.tracking_id IS NULL
				 AND m.queue_id = s.queue_id
				 AND m.queued_at BETWEEN s.event_time - interval '60 days'
						     AND s.event_time + interval '1 hour'
				 ORDER BY m.id DESC LIMIT 1),
				(SELECT m.id FROM messages m WHERE s.tracking_id IS NULL
				 AND m.message_id = s.message_id
				 AND m.queued_at BETWEEN s.event_time - interval '60 days'
						     AND s.event_time + interval '1 hour'
				 ORDER BY m.id DESC LIMIT 1)) AS message
		FROM (SELECT DISTINCT ON (st.event_time, st.event_id) st.*
		      FROM ingest_stage st ORDER BY st.event_time, st.event_id, st.seq) s
		WHERE NOT EXISTS (SELECT 1 FROM events e
				  WHERE e.event_time = s.event_time AND e.event_id = s.event_id)
	), waiting AS MATERIALIZED (
		-- events stored earlier that may enter the log now: those without a message (a
		-- log line ahead of the milter's record) whose message this batch has brought, and
		-- those held because their message had no owner, or because they named no address
		-- the sender used, when this batch brings the owner, a queued recipient, or an
		-- event that ties an address to one the sender used (orig_recipient)
		SELECT DISTINCT ON (w.event_time, w.event_id) w.event_time, w.event_id, w.message
		FROM (SELECT e.event_time, e.event_id, m.id AS message
		      FROM events e JOIN messages m ON e.queue_id = m.queue_id
		      WHERE e.message IS NULL
			AND m.tracking_id IN (SELECT st.tracking_id FROM ingest_stage st
					      WHERE st.type = 1 AND st.queue_id IS NOT NULL)
			AND e.event_time BETWEEN m.queued_at - interval '1 hour'
					     AND m.queued_at + interval '60 days'
		      UNION ALL
		      SELECT e.event_time, e.event_id, e.message
		      FROM messages m JOIN events e ON e.message = m.id
		      WHERE m.tracking_id IN (SELECT st.tracking_id FROM ingest_stage st
					      WHERE st.type = 1)
			AND m.owner IS NOT NULL AND e.log_offset IS NULL
		      UNION ALL
		      SELECT e.event_time, e.event_id, e.message
		      FROM (SELECT DISTINCT l.message FROM located l JOIN messages m
			    ON m.id = l.message AND m.owner IS NOT NULL
			    WHERE l.orig_recipient IS NOT NULL) t
		      CROSS JOIN LATERAL (SELECT e.event_time, e.event_id, e.message FROM events e
					  WHERE e.message = t.message AND e.log_offset IS NULL
					  OFFSET 0) e) w
		ORDER BY w.event_time, w.event_id, w.message DESC
	), numbered AS MATERIALIZED (
		-- the events that may enter the log now: new events joined to a message whose
		-- owner is known, in batch order, then the waiting ones in their time order (the
		-- new ones with all they store: the events insert takes them from here)
		SELECT l.event_time, l.event_id, l.message, l.type, l.recipient, l.orig_recipient,
		       l.dkey, l.rkey, l.details, 0 AS late, l.seq AS ord, l.source, l.tracking_id,
		       l.queue_id, l.message_id, l.xkey, l.copies
		FROM located l
		WHERE l.message IS NOT NULL
		  AND EXISTS (SELECT 1 FROM messages m WHERE m.id = l.message AND m.owner IS NOT NULL)
		UNION ALL
		SELECT e.event_time, e.event_id, w.message, e.type, e.recipient, e.orig_recipient,
		       e.dkey, e.rkey, e.details, 1, 0, e.source, e.tracking_id, e.queue_id,
		       e.message_id, e.xkey, e.copies
		FROM waiting w JOIN events e
		     ON e.event_time = w.event_time AND e.event_id = w.event_id
	), queued AS MATERIALIZED (
		-- The addresses the sender used: the recipients of the message's queued events,
		-- stored or in the batch, for the messages of the events above. Built once per
		-- batch and asked by hashed IN: an EXISTS per event would be planned by the
		-- batch's estimated size (the staging table has no statistics), as a scan of the
		-- batch per event or as a hash of a whole table per batch. (LATERAL, and OFFSET 0
		-- so that it stays so: each message's rows by its index, whatever the statistics
		-- say; plpgsql keeps the plan it made when tables were small.)
		SELECT b.message, q.rcpt
		FROM (SELECT DISTINCT nb.message FROM numbered nb) b
		CROSS JOIN LATERAL (SELECT q.rcpt FROM events q
				    WHERE q.message = b.message AND q.type = 1
				      AND q.rcpt IS NOT NULL OFFSET 0) q
		UNION
		SELECT m.id, lower(st.recipient)
		FROM ingest_stage st JOIN messages m ON m.tracking_id = st.tracking_id
		WHERE st.type = 1 AND st.recipient IS NOT NULL
	), keyed AS MATERIALIZED (
		-- The recipient each event counts for, and offsets for those that enter the log
		-- now: new events in batch order, then the waiting ones in their time order.
		-- The recipient is the address the sender used that the event names itself: a
		-- queued event's recipient; else its original recipient (Postfix's orig_to=,
		-- LMTP's ORCPT) when the sender used that; else its recipient when the sender used
		-- that. Else the address the mail system tied its recipient to, for this message:
		-- the original recipient, used by the sender, of another event of that recipient
		-- (an alias's expansion Postfix logged, the plugin's delivery with ORCPT), stored or
		-- in this batch; the smallest, so that arrival order does not choose. Else none:
		-- the event is held, stored without an offset, in no status, list, timeline, feed
		-- or webhook, and looked at again when its message gets a queued recipient or such
		-- a tie.
		-- (the running count of those with a recipient numbers them without a sort of its
		-- own; OFFSET 0 keeps the recipient a column, computed once per event)
		SELECT a.*,
		       CASE WHEN a.rcpt IS NOT NULL
			    THEN h + count(a.rcpt) OVER (ORDER BY a.late, a.ord, a.event_time,
							      a.event_id
							      ROWS UNBOUNDED PRECEDING) END AS log_offset
		FROM (SELECT nb.*,
			     CASE WHEN nb.type = 1 THEN lower(nb.recipient)
				  WHEN nb.orig_recipient IS NOT NULL
				   AND (nb.message, lower(nb.orig_recipient)) IN
				       (SELECT q.message, q.rcpt FROM queued q)
				  THEN lower(nb.orig_recipient)
				  WHEN (nb.message, lower(nb.recipient)) IN
				       (SELECT q.message, q.rcpt FROM queued q)
				  THEN lower(nb.recipient)
				  ELSE coalesce(
					(SELECT min(t.rcpt) FROM events t
					 WHERE t.message = nb.message
					   AND lower(t.recipient) = lower(nb.recipient)
					   AND t.orig_recipient IS NOT NULL
					   AND t.rcpt = lower(t.orig_recipient)),
					(SELECT min(lower(t.orig_recipient)) FROM numbered t
					 WHERE t.message = nb.message
					   AND lower(t.recipient) = lower(nb.recipient)
					   AND t.orig_recipient IS NOT NULL
					   AND (t.message, lower(t.orig_recipient)) IN
					       (SELECT q.message, q.rcpt FROM queued q))) END AS rcpt
		      FROM numbered nb OFFSET 0) a
	), appended AS (
		-- the new events: those of a message with an owner, with their offset and
		-- recipient (none if held); the rest (no message yet, or a message without an
		-- owner) without, by the complement of numbered's condition (a join of located and
		-- keyed would be a nested loop; a NOT EXISTS here may be planned as a hash of all
		-- of messages)
		INSERT INTO events (event_time, event_id, log_offset, type, source, message, dkey,
				    rkey, xkey, copies, tracking_id, queue_id, message_id, recipient,
				    orig_recipient, rcpt, details)
		SELECT k.event_time, k.event_id, k.log_offset, k.type, k.source, k.message, k.dkey,
		       k.rkey, k.xkey, k.copies, k.tracking_id, k.queue_id, k.message_id,
		       k.recipient, k.orig_recipient, k.rcpt, k.details
		FROM keyed k WHERE k.late = 0
		UNION ALL
		SELECT l.event_time, l.event_id, NULL, l.type, l.source, l.message, l.dkey, l.rkey,
		       l.xkey, l.copies, l.tracking_id, l.queue_id, l.message_id, l.recipient,
		       l.orig_recipient, NULL, l.details
		FROM located l LEFT JOIN messages m ON m.id = l.message
		WHERE m.owner IS NULL
	), joined AS (
		-- waiting events: those numbered now get their offset and recipient; a log line
		-- joined to its message that named no address of the sender's is held with it
		UPDATE events e SET message = k.message, log_offset = k.log_offset, rcpt = k.rcpt
		FROM keyed k
		WHERE k.late = 1 AND e.event_time = k.event_time AND e.event_id = k.event_id
		  AND (k.rcpt IS NOT NULL OR e.message IS NULL)
	), folded AS (
		-- each recipient's state: the maximum per axis and the sum of copies
		-- (lib/status.h); details come from the event that set the delivery axis
		INSERT INTO recipients AS r (message, recipient, orig_recipient, dkey, rkey, xkey,
					     copies, displayed, details)
		SELECT DISTINCT ON (k.message, k.rcpt)
		       k.message, k.rcpt, max(k.orig_recipient) OVER w, max(k.dkey) OVER w,
		       max(k.rkey) OVER w, max(k.xkey) OVER w, sum(k.copies) OVER w,
		       bool_or(k.type = 7) OVER w, CASE WHEN k.dkey > 0 THEN k.details END
		FROM keyed k WHERE k.rcpt IS NOT NULL
		WINDOW w AS (PARTITION BY k.message, k.rcpt)
		ORDER BY k.message, k.rcpt, k.dkey DESC
		ON CONFLICT (message, recipient) DO UPDATE SET
			dkey = greatest(r.dkey, EXCLUDED.dkey),
			rkey = greatest(r.rkey, EXCLUDED.rkey),
			xkey = greatest(r.xkey, EXCLUDED.xkey),
			copies = r.copies + EXCLUDED.copies,
			displayed = r.displayed OR EXCLUDED.displayed,
			details = CASE WHEN EXCLUDED.dkey > r.dkey THEN EXCLUDED.details
				       ELSE r.details END,
			updated_at = now()
		WHERE EXCLUDED.dkey > r.dkey OR EXCLUDED.rkey > r.rkey OR EXCLUDED.xkey > r.xkey
		   OR EXCLUDED.copies <> 0 OR (EXCLUDED.displayed AND NOT r.displayed)
	)
	SELECT k.log_offset, k.event_id, k.event_time, k.type::smallint, k.rcpt, k.details,
	       k.message, m.tracking_id, m.message_id, m.owner, m.sender
	FROM keyed k JOIN messages m ON m.id = k.message
	WHERE k.rcpt IS NOT NULL
	ORDER BY k.log_offset;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		UPDATE log_head SET head = h + n;
		PERFORM pg_notify('msgstatus_log', (h + n)::text);
	END IF;
END $$;
