-- msgstatus schema 004: ingest in time linear in the batch again, and independent of the
-- size of the tables. Hash and merge joins are off in msgstatus_ingest() (below), so a join
-- of two batch-sized sets is a nested loop, and plpgsql keeps the plans it made when the
-- tables were small. Measured with EXPLAIN (ANALYZE, BUFFERS) on batches of 2,000:
-- - the events insert joined the new events to their numbered copies: 2,000 x 2,000 rows,
--   0.87 s of the batch's 1 s. It now takes the numbered events as they are and the others
--   (not in the log yet) by the complement of the same condition.
-- - the recipient rules' EXISTS per event were planned as a hash of every queued event in
--   the log (80,000 rows per batch after 200,000 events), or else as a scan of the batch
--   per event. They now ask sets built once per batch, by index, for the batch's messages.
-- - the alias rule's earlier recipient (ORDER BY log_offset LIMIT 1) could walk the log in
--   offset order; the expiry of a message scanned the batch per recipient.
-- The join and alias rules are unchanged.
--
-- msgstatus_ingest() is replaced as a whole; it lived in 003 before.

-- Store the batch the caller has COPYed into ingest_stage in this transaction. Returns the
-- events that were new, with their log offsets; events stored before are skipped, which is
-- what makes a replay harmless. Set-based: one pass for messages, one statement that
-- appends the new events and folds them into their recipients.
-- A batch is always small next to the tables, and the staging table has no statistics:
-- hash and merge joins would scan whole tables per batch, so only index lookups are allowed.
CREATE OR REPLACE FUNCTION msgstatus_ingest()
RETURNS TABLE (log_offset bigint, event_id text, event_time timestamptz, type smallint,
	       recipient text, details jsonb, message bigint, tracking_id text,
	       message_id text, owner text, sender text)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off AS $$
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
	WHERE s.type >= 10
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
		-- events stored earlier that enter the log now: those without a message (a log
		-- line ahead of the milter's record) whose message this batch has brought, and
		-- those held because their message had no owner, which this batch has brought
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
			AND m.owner IS NOT NULL AND e.log_offset IS NULL) w
		ORDER BY w.event_time, w.event_id, w.message DESC
	), numbered AS MATERIALIZED (
		-- offsets for everything that enters the log now: new events joined to a message
		-- whose owner is known, in batch order, then the waiting ones in their time order
		-- (the new ones with all they store: the events insert takes them from here)
		SELECT l.event_time, l.event_id, l.message, l.type, l.recipient, l.orig_recipient,
		       l.dkey, l.rkey, l.details, 0 AS late, l.seq AS ord, l.source, l.tracking_id,
		       l.queue_id, l.message_id
		FROM located l
		WHERE l.message IS NOT NULL
		  AND EXISTS (SELECT 1 FROM messages m WHERE m.id = l.message AND m.owner IS NOT NULL)
		UNION ALL
		SELECT e.event_time, e.event_id, w.message, e.type, e.recipient, e.orig_recipient,
		       e.dkey, e.rkey, e.details, 1, 0, e.source, e.tracking_id, e.queue_id,
		       e.message_id
		FROM waiting w JOIN events e
		     ON e.event_time = w.event_time AND e.event_id = w.event_id
	), addressed AS MATERIALIZED (
		-- The sets the recipient rules below ask, built once per batch for the messages
		-- numbered now, and asked by hashed IN: an EXISTS per event would be planned by
		-- the batch's estimated size (the staging table has no statistics), as a scan of
		-- the batch per event or as a hash of a whole table per batch.
		-- addressed: the addresses the sender used, by the message's recipients and by the
		-- batch's queued events; queued: the same by queued events, stored or in the batch
		-- (LATERAL, and OFFSET 0 so that it stays so: each message's rows by its index,
		-- whatever the statistics say; plpgsql keeps the plan it made when tables were small)
		SELECT b.message, r.recipient AS rcpt
		FROM (SELECT DISTINCT nb.message FROM numbered nb) b
		CROSS JOIN LATERAL (SELECT r.recipient FROM recipients r
				    WHERE r.message = b.message OFFSET 0) r
		UNION
		SELECT m.id, lower(st.recipient)
		FROM ingest_stage st JOIN messages m ON m.tracking_id = st.tracking_id
		WHERE st.type = 1 AND st.recipient IS NOT NULL
	), queued AS MATERIALIZED (
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
		-- the recipient an event counts for: the address the sender used. Postfix logs an
		-- alias's expansion with orig_to=, the Dovecot plugin the original recipient:
		-- those count for the original when the message was sent to it.
		SELECT nb.*, h + row_number() OVER (ORDER BY nb.late, nb.ord, nb.event_time,
							  nb.event_id) AS log_offset,
		       CASE WHEN nb.orig_recipient IS NOT NULL
			     AND lower(nb.orig_recipient) <> lower(nb.recipient)
			     AND (nb.message, lower(nb.orig_recipient)) IN
				 (SELECT a.message, a.rcpt FROM addressed a)
			    THEN lower(nb.orig_recipient)
			    -- an event of an address the sender did not use (no queued event for
			    -- it: an alias's expansion, a mailbox user's name) counts for the
			    -- address an earlier event of that recipient counted for: Postfix's
			    -- orig_to=, or the ORCPT of the plugin's delivered event (the first by
			    -- offset; an aggregate, so that the events are found by their message,
			    -- not by walking the log in offset order)
			    WHEN nb.type IN (4, 7, 8, 9)
			     AND (nb.message, lower(nb.recipient)) NOT IN
				 (SELECT q.message, q.rcpt FROM queued q)
			    THEN coalesce((SELECT (array_agg(d.rcpt ORDER BY d.log_offset))[1]
					   FROM events d
					   WHERE d.message = nb.message
					     AND lower(d.recipient) = lower(nb.recipient)
					     AND d.rcpt <> lower(nb.recipient)), lower(nb.recipient))
			    ELSE lower(nb.recipient) END AS rcpt
		FROM numbered nb
	), appended AS (
		-- the new events: those numbered now with their offset and recipient, the rest
		-- (no message yet, or a message without an owner) without, by the complement of
		-- numbered's condition (a join of located and keyed would be a nested loop; a NOT
		-- EXISTS here may be planned as a hash of all of messages)
		INSERT INTO events (event_time, event_id, log_offset, type, source, message, dkey,
				    rkey, tracking_id, queue_id, message_id, recipient, orig_recipient,
				    rcpt, details)
		SELECT k.event_time, k.event_id, k.log_offset, k.type, k.source, k.message, k.dkey,
		       k.rkey, k.tracking_id, k.queue_id, k.message_id, k.recipient,
		       k.orig_recipient, k.rcpt, k.details
		FROM keyed k WHERE k.late = 0
		UNION ALL
		SELECT l.event_time, l.event_id, NULL, l.type, l.source, l.message, l.dkey, l.rkey,
		       l.tracking_id, l.queue_id, l.message_id, l.recipient, l.orig_recipient, NULL,
		       l.details
		FROM located l LEFT JOIN messages m ON m.id = l.message
		WHERE m.owner IS NULL
	), joined AS (
		UPDATE events e SET message = k.message, log_offset = k.log_offset, rcpt = k.rcpt
		FROM keyed k
		WHERE k.late = 1 AND e.event_time = k.event_time AND e.event_id = k.event_id
	), folded AS (
		-- each recipient's state: the maximum per axis (lib/status.h); details come from
		-- the event that set the delivery axis
		INSERT INTO recipients AS r (message, recipient, orig_recipient, dkey, rkey, displayed,
					     details)
		SELECT DISTINCT ON (k.message, k.rcpt)
		       k.message, k.rcpt, max(k.orig_recipient) OVER w, max(k.dkey) OVER w,
		       max(k.rkey) OVER w, bool_or(k.type = 7) OVER w,
		       CASE WHEN k.dkey > 0 THEN k.details END
		FROM keyed k
		WINDOW w AS (PARTITION BY k.message, k.rcpt)
		ORDER BY k.message, k.rcpt, k.dkey DESC
		ON CONFLICT (message, recipient) DO UPDATE SET
			dkey = greatest(r.dkey, EXCLUDED.dkey),
			rkey = greatest(r.rkey, EXCLUDED.rkey),
			displayed = r.displayed OR EXCLUDED.displayed,
			details = CASE WHEN EXCLUDED.dkey > r.dkey THEN EXCLUDED.details
				       ELSE r.details END,
			updated_at = now()
		WHERE EXCLUDED.dkey > r.dkey OR EXCLUDED.rkey > r.rkey
		   OR (EXCLUDED.displayed AND NOT r.displayed)
	)
	SELECT k.log_offset, k.event_id, k.event_time, k.type::smallint, k.rcpt, k.details,
	       k.message, m.tracking_id, m.message_id, m.owner, m.sender
	FROM keyed k JOIN messages m ON m.id = k.message
	ORDER BY k.log_offset;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		UPDATE log_head SET head = h + n;
		PERFORM pg_notify('msgstatus_log', (h + n)::text);
	END IF;
END $$;
