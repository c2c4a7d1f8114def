-- msgstatus schema 019: a fast path for the plain batch (docs/performance.md, "Ingest: what
-- the writes alone cost"; bench/ingest_fast.sql was its prototype).
--
-- A batch whose events are all the plain case is stored without the staging table and
-- without msgstatus_ingest_append()'s joins: statusd numbers the events, COPYs them
-- straight into events (log_offset, message, rcpt filled in), folds them per recipient
-- itself (lib/status.c's merge) and upserts those rows. The plain case: each event names
-- its message by tracking id, the message has an owner, the event's address is one the
-- sender used, nothing stored waits for the batch (a log line without a message, a held
-- event, a held report), no read receipt comes from a recipient who turned them off. Then
-- today's path would do nothing but those writes. Every other batch takes today's steps
-- (sql/006, 012, 017, 018) in the same transaction, so the rules stay where they are.
--
-- Per batch, in one transaction (statusd/ingest_fast.c):
--  0. statusd's own checks, before any call (else: today's path from the start): every
--     event has a tracking id and a recipient (no message-level expiry), no presence, no
--     report or inbound event, no federation outbox step (it reads the staging table), no
--     orig_recipient (the alias ties of sql/005), no event twice in the batch, and the
--     message's fields the same in each of its events, an ASCII recipient (lower() is the
--     database's), no two events of a recipient with one delivery key and other details;
--  1. msgstatus_fast_begin(): the lock on log_head, the batch's messages created and
--     completed (msgstatus_messages_put(), which msgstatus_ingest_messages() now calls
--     too), and whether the batch may take the fast
--     path, with the messages' ids, owners, senders and Message-IDs for statusd;
--  2. fast: COPY of the events into events with log_offset (h + 1 ...), message and rcpt,
--     under a savepoint: a unique violation is a replay (the primary key, event time and
--     id): back to the savepoint, and today's path for the batch, which skips what was
--     stored; then msgstatus_fast_fold() of statusd's recipient rows;
--     slow: COPY into ingest_stage, msgstatus_fast_slow(h, known);
--  3. msgstatus_ingest_end(h, n) (sql/012).
-- statusd sends a plain batch of any size this way (a small one too: it costs less than
-- 017's one round trip), and one that is not plain as before; on a database before 019 it
-- keeps to the steps.

-- The batch's messages, from their aggregates per tracking id (as msgstatus_ingest_messages()
-- makes them from the staging table: the maximum of each field, the earliest queued event's
-- time), for both paths: the message of each new tracking id is created, with an id from the
-- identity sequence, in the order given (one look-up per tracking id), and those there were
-- are completed where the batch has more to say (a read before its queued). Returns per
-- tracking id the message's id and the id there was before (NULL: new).
CREATE FUNCTION msgstatus_messages_put(tids text[], mids text[], qids text[], senders text[],
				       sasls text[], sizes bigint[], qats timestamptz[],
				       OUT ids bigint[], OUT ex bigint[])
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	newids bigint[];
	seq regclass;
BEGIN
	SELECT array_agg(m.id ORDER BY t.ord) INTO ex
	FROM unnest(tids) WITH ORDINALITY t (tracking_id, ord)
	LEFT JOIN LATERAL (SELECT m.id FROM messages m WHERE m.tracking_id = t.tracking_id) m
	     ON true;
	-- the identity's sequence by the column, whatever its name (a restore may rename it)
	seq := pg_get_serial_sequence('messages', 'id')::regclass;
	newids := ARRAY(SELECT nextval(seq)
			FROM generate_series(1, cardinality(array_positions(ex, NULL))));
	SELECT array_agg(coalesce(x.id, newids[x.k]) ORDER BY x.ord) INTO ids
	FROM (SELECT e.id, e.ord, count(*) FILTER (WHERE e.id IS NULL) OVER (ORDER BY e.ord) AS k
	      FROM unnest(ex) WITH ORDINALITY e (id, ord)) x;
	IF cardinality(newids) > 0 THEN
		INSERT INTO messages (id, tracking_id, message_id, queue_id, sender, sasl_user, owner,
				      size, queued_at) OVERRIDING SYSTEM VALUE
		SELECT s.id, s.tracking_id, s.message_id, s.queue_id, s.sender, s.sasl_user,
		       lower(coalesce(nullif(s.sasl_user, ''), s.sender)), s.size, s.queued_at
		FROM unnest(ids, ex, tids, mids, qids, senders, sasls, sizes, qats)
		     s (id, ex, tracking_id, message_id, queue_id, sender, sasl_user, size, queued_at)
		WHERE s.ex IS NULL;
	END IF;
	IF cardinality(newids) < cardinality(tids) THEN
		-- the completion of the messages there were (006's)
		UPDATE messages m SET
			message_id = coalesce(m.message_id, s.message_id),
			queue_id = coalesce(m.queue_id, s.queue_id),
			sender = coalesce(m.sender, s.sender),
			sasl_user = coalesce(m.sasl_user, s.sasl_user),
			owner = coalesce(m.owner, s.owner),
			size = coalesce(m.size, s.size),
			queued_at = least(m.queued_at, s.queued_at)
		FROM (SELECT a.*, lower(coalesce(nullif(a.sasl_user, ''), a.sender)) AS owner
		      FROM unnest(ex, mids, qids, senders, sasls, sizes, qats)
			   a (id, message_id, queue_id, sender, sasl_user, size, queued_at)
		      WHERE a.id IS NOT NULL) s
		WHERE m.id = s.id
		  AND ((m.message_id IS NULL AND s.message_id IS NOT NULL)
		    OR (m.queue_id IS NULL AND s.queue_id IS NOT NULL)
		    OR (m.owner IS NULL AND s.owner IS NOT NULL)
		    OR (m.size IS NULL AND s.size IS NOT NULL)
		    OR s.queued_at < m.queued_at
		    OR (m.queued_at IS NULL AND s.queued_at IS NOT NULL));
	END IF;
END $$;

-- 006's step, now the aggregates of the staging table through msgstatus_messages_put().
-- The owner is 006's: lower(coalesce(nullif(max(sasl_user), ''), max(sender))), as the
-- maximum of sasl_user is '' only when none is more.
CREATE OR REPLACE FUNCTION msgstatus_ingest_messages() RETURNS bigint
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	known bigint;
	a record;
BEGIN
	SELECT coalesce(max(m.id), 0) INTO known FROM messages m;
	SELECT array_agg(s.tracking_id ORDER BY s.tracking_id) AS tids,
	       array_agg(s.message_id ORDER BY s.tracking_id) AS mids,
	       array_agg(s.queue_id ORDER BY s.tracking_id) AS qids,
	       array_agg(s.sender ORDER BY s.tracking_id) AS senders,
	       array_agg(s.sasl_user ORDER BY s.tracking_id) AS sasls,
	       array_agg(s.size ORDER BY s.tracking_id) AS sizes,
	       array_agg(s.queued_at ORDER BY s.tracking_id) AS qats
	INTO a
	FROM (SELECT st.tracking_id, max(st.message_id) AS message_id,
		     max(st.queue_id) AS queue_id, max(st.sender) AS sender,
		     max(st.sasl_user) AS sasl_user, max(st.size) AS size,
		     min(st.event_time) FILTER (WHERE st.type = 1) AS queued_at
	      FROM ingest_stage st WHERE st.tracking_id IS NOT NULL GROUP BY st.tracking_id) s;
	IF a.tids IS NOT NULL THEN
		PERFORM msgstatus_messages_put(a.tids, a.mids, a.qids, a.senders, a.sasls, a.sizes,
					       a.qats);
	END IF;
	RETURN known;
END $$;

-- Step 1, on arrays from the client:
--  per tracking id, the batch's aggregate as msgstatus_ingest_messages() makes it: tids,
--    mids (max Message-ID), qids (max queue id), senders, sasls, sizes, qats (the earliest
--    queued event's time; NULL if the batch has no queued event of the message);
--  per recipient row the client folded (one per message and address): fidx (the index of
--    its tracking id in tids), frcpts (the lower-case address its events name), fqueued
--    (whether a queued event of that address is among them);
--  readers: the lower-case recipients of the batch's read and unread events;
--  qmids: the Message-IDs of the batch's queued events.
-- fast is true when today's path would store exactly what the fast path stores:
--  - no held report (sql/018) is about a message the batch brings queued events of;
--  - no reader turned read receipts off (msgstatus_ingest_presence() would drop its event;
--    then nothing is created here, and today's path does it all);
--  - every message has an owner (else its events are held);
--  - every address is one the sender used: a queued event of it is in the batch, or stored
--    (recipients.queued) for a message there was before (else the alias rules, or held);
--  - no stored event waits for the batch: a log line without a message (events_unjoined)
--    with the queue id of a message the batch brings a queued event for, in the batch's
--    time window (wider than each message's: a superset of what msgstatus_ingest_append()
--    joins); a held event (events_held) of a message there was before that gets a queued
--    event now. (An orig_recipient, the third reason to look at held events again, takes
--    today's path from the start.)
-- The batch's messages are created and completed by msgstatus_messages_put(), as
-- msgstatus_ingest_messages() does.
-- Returns the head h before the batch, known (the highest message id before it: today's
-- path needs it), and per tracking id (in the order given) the message's id, owner, sender
-- and Message-ID, which the client needs for the events' rows and for its feeds.
CREATE FUNCTION msgstatus_fast_begin(tids text[], mids text[], qids text[], senders text[],
				     sasls text[], sizes bigint[], qats timestamptz[],
				     fidx int[], frcpts text[], fqueued boolean[], readers text[],
				     qmids text[],
				     OUT h bigint, OUT known bigint, OUT fast boolean,
				     OUT ids bigint[], OUT owners text[], OUT msenders text[],
				     OUT message_ids text[])
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	ex bigint[];     -- per tracking id: the message there was before, NULL if none
	wq text[];       -- the queue ids of the messages that get a queued event now
	held bigint[];   -- the messages there were that get a queued event now
	lo timestamptz;
	hi timestamptz;
BEGIN
	SELECT l.head INTO h FROM log_head l FOR UPDATE;
	SELECT coalesce(max(m.id), 0) INTO known FROM messages m;
	fast := NOT EXISTS (SELECT 1 FROM users u
			    WHERE u.name = ANY (readers) AND NOT u.read_receipts);
	-- a held report (sql/018) that the batch's queued events bring the message of: today's
	-- path, whose msgstatus_ingest_begin() puts it back into the batch (by tracking id; by
	-- Message-ID alone here, a superset of 018's Message-ID and recipient)
	IF fast AND EXISTS (SELECT 1 FROM report_held) THEN
		fast := NOT EXISTS (SELECT 1 FROM unnest(tids, qats) t (tracking_id, queued_at)
				    JOIN report_held r ON r.tracking_id = t.tracking_id
				    WHERE t.queued_at IS NOT NULL)
			AND NOT EXISTS (SELECT 1 FROM report_held r WHERE r.message_id = ANY (qmids));
	END IF;
	IF NOT fast THEN
		RETURN;
	END IF;

	SELECT p.ids, p.ex INTO ids, ex
	FROM msgstatus_messages_put(tids, mids, qids, senders, sasls, sizes, qats) p;

	-- what the client needs, and the messages' owners: a new message's from the arrays, a
	-- stored one's by its id
	SELECT array_agg(v.owner ORDER BY s.ord), array_agg(v.sender ORDER BY s.ord),
	       array_agg(v.message_id ORDER BY s.ord), bool_and(v.owner IS NOT NULL),
	       array_agg(v.queue_id) FILTER (WHERE s.bq IS NOT NULL AND v.queue_id IS NOT NULL),
	       array_agg(s.ex) FILTER (WHERE s.bq IS NOT NULL AND s.ex IS NOT NULL),
	       min(v.queued_at) FILTER (WHERE s.bq IS NOT NULL),
	       max(v.queued_at) FILTER (WHERE s.bq IS NOT NULL)
	INTO owners, msenders, message_ids, fast, wq, held, lo, hi
	FROM unnest(ex, mids, qids, senders, sasls, qats) WITH ORDINALITY
	     s (ex, message_id, queue_id, sender, sasl_user, bq, ord)
	CROSS JOIN LATERAL (
		SELECT lower(coalesce(nullif(s.sasl_user, ''), s.sender)) AS owner, s.sender,
		       s.message_id, s.queue_id, s.bq AS queued_at
		WHERE s.ex IS NULL
		UNION ALL
		SELECT m.owner, m.sender, m.message_id, m.queue_id, m.queued_at
		FROM messages m WHERE s.ex IS NOT NULL AND m.id = s.ex) v;
	IF NOT fast THEN
		RETURN;
	END IF;

	-- every address one the sender used: queued in the batch, or stored as queued (OFFSET
	-- 0: a look-up in recipients' primary key per row; without it the planner may hash the
	-- whole table once it has statistics, which it then scans per batch: 4.5 ms of a batch
	-- of 2,000 where the look-ups take 0.15)
	fast := NOT EXISTS (
		SELECT 1 FROM unnest(fidx, frcpts, fqueued) f (i, rcpt, queued)
		WHERE NOT f.queued
		  AND (ex[f.i] IS NULL
		       OR NOT EXISTS (SELECT 1 FROM recipients r
				      WHERE r.message = ex[f.i] AND r.recipient = f.rcpt AND r.queued
				      OFFSET 0)));
	-- nothing waits for the batch
	IF fast AND wq IS NOT NULL THEN
		fast := NOT EXISTS (SELECT 1 FROM events e
				    WHERE e.message IS NULL AND e.queue_id = ANY (wq)
				      AND e.event_time BETWEEN lo - interval '1 hour'
							   AND hi + interval '60 days');
	END IF;
	IF fast AND held IS NOT NULL THEN
		fast := NOT EXISTS (SELECT 1 FROM events e
				    WHERE e.message = ANY (held) AND e.log_offset IS NULL);
	END IF;
END $$;

-- Step 2 of the fast path: the client's recipient rows, one per (message, recipient) of
-- the batch, folded as lib/status.c's merge does (the maximum per axis, the sum of copies,
-- displayed, queued, the details of the event that set the delivery axis), into recipients
-- as msgstatus_ingest_append()'s fold does.
CREATE FUNCTION msgstatus_fast_fold(messages bigint[], rcpts text[], origs text[],
				    dkeys bigint[], rkeys bigint[], xkeys bigint[], copies int[],
				    displayed boolean[], queued boolean[], details jsonb[])
RETURNS void LANGUAGE plpgsql SET jit = off AS $$
BEGIN
	INSERT INTO recipients AS r (message, recipient, orig_recipient, dkey, rkey, xkey, copies,
				     displayed, queued, details)
	SELECT * FROM unnest(messages, rcpts, origs, dkeys, rkeys, xkeys, copies, displayed,
			     queued, details)
	ON CONFLICT (message, recipient) DO UPDATE SET
		dkey = greatest(r.dkey, EXCLUDED.dkey),
		rkey = greatest(r.rkey, EXCLUDED.rkey),
		xkey = greatest(r.xkey, EXCLUDED.xkey),
		copies = r.copies + EXCLUDED.copies,
		displayed = r.displayed OR EXCLUDED.displayed,
		queued = r.queued OR EXCLUDED.queued,
		details = CASE WHEN EXCLUDED.dkey > r.dkey THEN EXCLUDED.details ELSE r.details END,
		updated_at = now()
	WHERE EXCLUDED.dkey > r.dkey OR EXCLUDED.rkey > r.rkey OR EXCLUDED.xkey > r.xkey
	   OR EXCLUDED.copies <> 0 OR (EXCLUDED.displayed AND NOT r.displayed)
	   OR (EXCLUDED.queued AND NOT r.queued);
END $$;

-- Step 2 of the slow path, after msgstatus_fast_begin() (which holds the lock and may have
-- created the batch's messages: msgstatus_ingest_messages() completes what it did not) and
-- the COPY of the batch into ingest_stage: today's steps, msgstatus_ingest_begin() (017's
-- steps and 018's held reports; its lock is held already, its h is h, its known is not the
-- one before the batch) and msgstatus_ingest_append(h, known). known is
-- msgstatus_fast_begin()'s, the highest message id before the batch. Returns
-- msgstatus_ingest_append()'s rows.
CREATE FUNCTION msgstatus_fast_slow(h bigint, known bigint)
RETURNS TABLE (log_offset bigint, event_id text, event_time timestamptz, type smallint,
	       recipient text, details jsonb, message bigint, tracking_id text,
	       message_id text, owner text, sender text)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
BEGIN
	PERFORM msgstatus_ingest_begin();
	RETURN QUERY SELECT * FROM msgstatus_ingest_append(h, known);
END $$;
