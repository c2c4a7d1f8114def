-- msgstatus schema 003: an event of a message whose sender is not known yet waits outside
-- the log. A message is created by the first event that names its tracking id; when that is
-- the Dovecot plugin's delivered or read (the milter's record comes later: statusd was away
-- and the milter's spool is sent after the plugin's pickup files), the message has no
-- owner yet, so the feeds could not tell whom to give the event and its offset went by for
-- everyone. Such an event is now stored with its message but without an offset, and enters
-- the log (is numbered, folded into its recipient, published) in the batch that brings the
-- owner, like a Postfix log line ahead of the milter's record. An event whose message never
-- gets an owner (a Msgstatus-Id that the milter did not write) never enters the log.
--
-- msgstatus_ingest() is replaced as a whole; it lived in 002 before.

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
	  AND NOT EXISTS (SELECT 1 FROM ingest_stage o
			  WHERE o.queue_id = s.queue_id AND o.type IN (3, 4, 5)
			    AND r.recipient IN (lower(o.recipient), lower(o.orig_recipient)));
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
		SELECT l.event_time, l.event_id, l.message, l.type, l.recipient, l.orig_recipient,
		       l.dkey, l.rkey, l.details, 0 AS late, l.seq AS ord
		FROM located l
		WHERE l.message IS NOT NULL
		  AND EXISTS (SELECT 1 FROM messages m WHERE m.id = l.message AND m.owner IS NOT NULL)
		UNION ALL
		SELECT e.event_time, e.event_id, w.message, e.type, e.recipient, e.orig_recipient,
		       e.dkey, e.rkey, e.details, 1, 0
		FROM waiting w JOIN events e
		     ON e.event_time = w.event_time AND e.event_id = w.event_id
	), keyed AS MATERIALIZED (
		-- the recipient an event counts for: the address the sender used. Postfix logs an
		-- alias's expansion with orig_to=, the Dovecot plugin the original recipient:
		-- those count for the original when the message was sent to it.
		SELECT nb.*, h + row_number() OVER (ORDER BY nb.late, nb.ord, nb.event_time,
							  nb.event_id) AS log_offset,
		       CASE WHEN nb.orig_recipient IS NOT NULL
			     AND lower(nb.orig_recipient) <> lower(nb.recipient)
			     AND (EXISTS (SELECT 1 FROM recipients r WHERE r.message = nb.message
					  AND r.recipient = lower(nb.orig_recipient))
				  OR EXISTS (SELECT 1 FROM ingest_stage st JOIN messages m
					     ON m.tracking_id = st.tracking_id
					     WHERE m.id = nb.message AND st.type = 1
					     AND lower(st.recipient) = lower(nb.orig_recipient)))
			    THEN lower(nb.orig_recipient)
			    -- an event of an address the sender did not use (no queued event for
			    -- it: an alias's expansion, a mailbox user's name) counts for the
			    -- address an earlier event of that recipient counted for: Postfix's
			    -- orig_to=, or the ORCPT of the plugin's delivered event
			    WHEN nb.type IN (4, 7, 8, 9)
			     AND NOT EXISTS (SELECT 1 FROM events q WHERE q.message = nb.message
					     AND q.type = 1 AND q.rcpt = lower(nb.recipient))
			     AND NOT EXISTS (SELECT 1 FROM ingest_stage st JOIN messages m
					     ON m.tracking_id = st.tracking_id
					     WHERE m.id = nb.message AND st.type = 1
					     AND lower(st.recipient) = lower(nb.recipient))
			    THEN coalesce((SELECT d.rcpt FROM events d
					   WHERE d.message = nb.message
					     AND lower(d.recipient) = lower(nb.recipient)
					     AND d.rcpt <> lower(nb.recipient)
					   ORDER BY d.log_offset LIMIT 1), lower(nb.recipient))
			    ELSE lower(nb.recipient) END AS rcpt
		FROM numbered nb
	), appended AS (
		INSERT INTO events (event_time, event_id, log_offset, type, source, message, dkey,
				    rkey, tracking_id, queue_id, message_id, recipient, orig_recipient,
				    rcpt, details)
		SELECT l.event_time, l.event_id, k.log_offset, l.type, l.source, l.message, l.dkey,
		       l.rkey, l.tracking_id, l.queue_id, l.message_id, l.recipient,
		       l.orig_recipient, k.rcpt, l.details
		FROM located l LEFT JOIN keyed k
		     ON k.late = 0 AND k.event_time = l.event_time AND k.event_id = l.event_id
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
