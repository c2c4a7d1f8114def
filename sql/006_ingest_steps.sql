-- msgstatus schema 006: ingest in pieces, and fewer probes of every partition.
--
-- msgstatus_ingest() is now the sequence of its steps, each a function of its own, so that
-- a later migration replaces (CREATE OR REPLACE) only the step it changes:
--   msgstatus_ingest_presence()  presence, and the read receipts a recipient turned off
--   msgstatus_ingest_messages()  create and complete the batch's messages
--   msgstatus_ingest_expiries()  a message-level expiry for each recipient it concerns
--   msgstatus_ingest_append(h, known)  append the new events, fold them into recipients
-- The rules are 005's, unchanged.
--
-- What changes is how often a batch asks the events table by message. events is
-- partitioned by week of the event's time, and an index lookup by message cannot be
-- pruned to one partition (the message does not say the week): it probes all of them,
-- 15 with the default retention. Before, each batch did so for every message it
-- mentioned, up to three times (its stored queued recipients, its held events, its
-- events that tie an address). Now:
-- - a message created by this batch has no stored events: those lookups are skipped for
--   it (known: the highest message id before the batch; only ingest creates messages,
--   and it holds the lock on log_head while it does). known gates the lookups in events
--   and never filters a scan of messages: a generic plan made when messages was small
--   took "id <= known" for a cheap filter and scanned all of messages per batch;
-- - the addresses the sender used, stored, come from recipients (queued: a queued event
--   of that address was folded in), one lookup in recipients' primary key;
-- - held events (no offset yet) have an index of their own, small on every partition.
-- And each new event looks its message up once, with the columns the rest asks of it,
-- where it took four lookups (to join, for the owner, for the held ones, for the result);
-- the batch's messages are created and completed in one statement, from one aggregate.

-- recipients.queued: whether a queued event of this recipient was folded in, i.e. whether
-- the sender used this address (schema 005's rule). For existing rows, from the log: one
-- pass over its queued events.
ALTER TABLE recipients ADD COLUMN queued boolean NOT NULL DEFAULT false;
UPDATE recipients r SET queued = true
FROM (SELECT DISTINCT e.message, e.rcpt FROM events e
      WHERE e.type = 1 AND e.rcpt IS NOT NULL AND e.message IS NOT NULL) q
WHERE r.message = q.message AND r.recipient = q.rcpt;

-- the events not in the log yet that belong to a message (held, 005): looked up by message
CREATE INDEX events_held ON events (message) WHERE log_offset IS NULL AND message IS NOT NULL;

-- Presence (online 10, offline 11) and read receipts turned off: before anything is stored.
CREATE OR REPLACE FUNCTION msgstatus_ingest_presence() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
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

END $$;

-- The batch's messages. Returns the highest message id there was before: the messages
-- above it are new, created by this batch, and no stored event refers to them.
CREATE OR REPLACE FUNCTION msgstatus_ingest_messages() RETURNS bigint
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	known bigint;
BEGIN
	SELECT coalesce(max(m.id), 0) INTO known FROM messages m;
	-- Create the message of each new tracking id, and complete those that were created by
	-- an earlier event with less to say (a read before its queued); the update sees the
	-- messages there were before this statement. ON CONFLICT DO UPDATE would lock every
	-- known message the batch mentions, even when nothing changes. (No ON CONFLICT at
	-- all: only ingest creates messages, and it holds the lock on log_head.)
	WITH s AS MATERIALIZED (
		SELECT st.tracking_id, max(st.message_id) AS message_id, max(st.queue_id) AS queue_id,
		       max(st.sender) AS sender, max(st.sasl_user) AS sasl_user,
		       lower(coalesce(max(nullif(st.sasl_user, '')), max(st.sender))) AS owner,
		       max(st.size) AS size, min(st.event_time) FILTER (WHERE st.type = 1) AS queued_at
		FROM ingest_stage st WHERE st.tracking_id IS NOT NULL GROUP BY st.tracking_id
	), created AS (
		INSERT INTO messages (tracking_id, message_id, queue_id, sender, sasl_user, owner,
				      size, queued_at)
		SELECT s.tracking_id, s.message_id, s.queue_id, s.sender, s.sasl_user, s.owner,
		       s.size, s.queued_at
		FROM s WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.tracking_id = s.tracking_id)
	)
	UPDATE messages m SET
		message_id = coalesce(m.message_id, s.message_id),
		queue_id = coalesce(m.queue_id, s.queue_id),
		sender = coalesce(m.sender, s.sender),
		sasl_user = coalesce(m.sasl_user, s.sasl_user),
		owner = coalesce(m.owner, s.owner),
		size = coalesce(m.size, s.size),
		queued_at = least(m.queued_at, s.queued_at)
	FROM s
	WHERE m.tracking_id = s.tracking_id
	  AND ((m.message_id IS NULL AND s.message_id IS NOT NULL)
	    OR (m.queue_id IS NULL AND s.queue_id IS NOT NULL)
	    OR (m.owner IS NULL AND s.owner IS NOT NULL)
	    OR (m.size IS NULL AND s.size IS NOT NULL)
	    OR s.queued_at < m.queued_at
	    OR (m.queued_at IS NULL AND s.queued_at IS NOT NULL));

	RETURN known;
END $$;

CREATE OR REPLACE FUNCTION msgstatus_ingest_expiries() RETURNS void
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
BEGIN
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

END $$;

-- Append the staged events after offset h and fold them into their recipients; known is
-- msgstatus_ingest_messages()'s. Returns the events that entered the log, in offset order.
CREATE OR REPLACE FUNCTION msgstatus_ingest_append(h bigint, known bigint)
RETURNS TABLE (log_offset bigint, event_id text, event_time timestamptz, type smallint,
	       recipient text, details jsonb, message bigint, tracking_id text,
	       message_id text, owner text, sender text)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH located AS MATERIALIZED (
		-- the new events and their message: by tracking id; else the newest with the
		-- queue id that was queued around the event's time (short queue ids are reused);
		-- else the same by Message-ID; else none yet (stored unjoined). With the message
		-- come the columns the rest of the statement asks of it (m_*): one lookup of the
		-- message per event.
		SELECT s.*, mm.id AS message, mm.tracking_id AS m_tracking_id,
		       mm.message_id AS m_message_id, mm.owner AS m_owner, mm.sender AS m_sender
		FROM (SELECT DISTINCT ON (st.event_time, st.event_id) st.*
		      FROM ingest_stage st ORDER BY st.event_time, st.event_id, st.seq) s
		LEFT JOIN LATERAL (
			(SELECT m.id, m.tracking_id, m.message_id, m.owner, m.sender
			 FROM messages m WHERE m.tracking_id = s.tracking_id)
			UNION ALL
			(SELECT m.id, m.tracking_id, m.message_id, m.owner, m.sender
			 FROM messages m WHERE s.tracking_id IS NULL
			 AND m.queue_id = s.queue_id
			 AND m.queued_at BETWEEN s.event_time - interval '60 days'
					     AND s.event_time + interval '1 hour'
			 ORDER BY m.id DESC LIMIT 1)
			UNION ALL
			(SELECT m.id, m.tracking_id, m.message_id, m.owner, m.sender
			 FROM messages m WHERE s.tracking_id IS NULL
			 AND m.message_id = s.message_id
			 AND m.queued_at BETWEEN s.event_time - interval '60 days'
					     AND s.event_time + interval '1 hour'
			 ORDER BY m.id DESC LIMIT 1)
			LIMIT 1) mm ON true
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
		      FROM (SELECT DISTINCT st.tracking_id FROM ingest_stage st
			    WHERE st.type = 1) t
		      CROSS JOIN LATERAL (SELECT m.id FROM messages m
					  WHERE m.tracking_id = t.tracking_id
					    AND m.owner IS NOT NULL OFFSET 0) m
		      CROSS JOIN LATERAL (SELECT e.event_time, e.event_id, e.message FROM events e
					  WHERE m.id <= known AND e.message = m.id
					    AND e.log_offset IS NULL OFFSET 0) e
		      UNION ALL
		      SELECT e.event_time, e.event_id, e.message
		      FROM (SELECT DISTINCT l.message FROM located l
			    WHERE l.orig_recipient IS NOT NULL AND l.m_owner IS NOT NULL
			      AND l.message <= known) t
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
		       l.queue_id, l.message_id, l.xkey, l.copies, l.m_tracking_id, l.m_message_id,
		       l.m_owner, l.m_sender
		FROM located l
		WHERE l.m_owner IS NOT NULL
		UNION ALL
		SELECT e.event_time, e.event_id, w.message, e.type, e.recipient, e.orig_recipient,
		       e.dkey, e.rkey, e.details, 1, 0, e.source, e.tracking_id, e.queue_id,
		       e.message_id, e.xkey, e.copies, m.tracking_id, m.message_id, m.owner, m.sender
		FROM waiting w JOIN events e
		     ON e.event_time = w.event_time AND e.event_id = w.event_id
		JOIN messages m ON m.id = w.message
	), queued AS MATERIALIZED (
		-- The addresses the sender used: the recipients of the message's queued events,
		-- stored (recipients.queued) or in the batch, for the messages of the events
		-- above; a message new in this batch has none stored. Built once per batch and
		-- asked by hashed IN: an EXISTS per event would be planned by the batch's
		-- estimated size (the staging table has no statistics), as a scan of the batch
		-- per event or as a hash of a whole table per batch. (LATERAL, and OFFSET 0 so
		-- that it stays so: each message's rows by its index, whatever the statistics
		-- say; plpgsql keeps the plan it made when tables were small.)
		SELECT b.message, q.recipient AS rcpt
		FROM (SELECT DISTINCT nb.message FROM numbered nb WHERE nb.message <= known) b
		CROSS JOIN LATERAL (SELECT q.recipient FROM recipients q
				    WHERE q.message = b.message AND q.queued OFFSET 0) q
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
					 WHERE nb.message <= known AND t.message = nb.message
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
		-- keyed would be a nested loop)
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
		FROM located l WHERE l.m_owner IS NULL
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
					     copies, displayed, queued, details)
		SELECT DISTINCT ON (k.message, k.rcpt)
		       k.message, k.rcpt, max(k.orig_recipient) OVER w, max(k.dkey) OVER w,
		       max(k.rkey) OVER w, max(k.xkey) OVER w, sum(k.copies) OVER w,
		       bool_or(k.type = 7) OVER w, bool_or(k.type = 1) OVER w,
		       CASE WHEN k.dkey > 0 THEN k.details END
		FROM keyed k WHERE k.rcpt IS NOT NULL
		WINDOW w AS (PARTITION BY k.message, k.rcpt)
		ORDER BY k.message, k.rcpt, k.dkey DESC
		ON CONFLICT (message, recipient) DO UPDATE SET
			dkey = greatest(r.dkey, EXCLUDED.dkey),
			rkey = greatest(r.rkey, EXCLUDED.rkey),
			xkey = greatest(r.xkey, EXCLUDED.xkey),
			copies = r.copies + EXCLUDED.copies,
			displayed = r.displayed OR EXCLUDED.displayed,
			queued = r.queued OR EXCLUDED.queued,
			details = CASE WHEN EXCLUDED.dkey > r.dkey THEN EXCLUDED.details
				       ELSE r.details END,
			updated_at = now()
		WHERE EXCLUDED.dkey > r.dkey OR EXCLUDED.rkey > r.rkey OR EXCLUDED.xkey > r.xkey
		   OR EXCLUDED.copies <> 0 OR (EXCLUDED.displayed AND NOT r.displayed)
		   OR (EXCLUDED.queued AND NOT r.queued)
	)
	SELECT k.log_offset, k.event_id, k.event_time, k.type::smallint, k.rcpt, k.details,
	       k.message, k.m_tracking_id, k.m_message_id, k.m_owner, k.m_sender
	FROM keyed k
	WHERE k.rcpt IS NOT NULL
	ORDER BY k.log_offset;
END $$;

-- Store the batch the caller has COPYed into ingest_stage in this transaction. Returns the
-- events that were new, with their log offsets; events stored before are skipped, which is
-- what makes a replay harmless.
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
DECLARE
	h bigint;
	n bigint;
	known bigint;
BEGIN
	-- Serializes writers (also across statusd instances) and hands out offsets: offsets
	-- are gap-free and a reader that sees offset N has seen every offset below it.
	SELECT l.head INTO h FROM log_head l FOR UPDATE;
	PERFORM msgstatus_ingest_presence();
	known := msgstatus_ingest_messages();
	PERFORM msgstatus_ingest_expiries();
	RETURN QUERY SELECT * FROM msgstatus_ingest_append(h, known);
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		UPDATE log_head SET head = h + n;
		PERFORM pg_notify('msgstatus_log', (h + n)::text);
	END IF;
END $$;
