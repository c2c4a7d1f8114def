-- A prototype of a cheaper ingest, measured by bench/ingest_floor.py (configuration
-- "prototype"); not a migration: statusd does not use it (docs/performance.md, "Ingest: what
-- the writes alone cost"). Loaded after the schema (sql/ up to 016).
--
-- A batch takes the fast path when all of its events are the plain case: each names a
-- message, by tracking id, whose owner is known, and a recipient the sender used; nothing
-- stored waits for the batch; no read receipt of a recipient who turned them off. Then the
-- client (statusd) numbers the events, COPYs them straight into events, and folds them per
-- recipient itself (lib/status.c's merge). Every other batch takes today's path
-- (msgstatus_ingest_presence, _messages, _expiries, _append of sql/006 and sql/012) from
-- the staging table, in the same transaction. The rules stay where they are; the fast path
-- only recognizes the batches for which today's path would do nothing but the writes.
--
-- Per batch, in one transaction:
--  0. the client's own checks, before any call (else: today's path from the start): every
--     event has a tracking id and a recipient (no message-level expiry, sql/006), no
--     presence (10, 11), no report or inbound event, no orig_recipient (the alias ties of
--     sql/005 are today's path's), no event twice in the batch; the federation outbox step
--     (sql/011) reads the staging table, so a site with federation peers stages as today;
--  1. msgstatus_fast_begin(): the lock on log_head, the batch's messages created and
--     completed (as msgstatus_ingest_messages()), and whether the batch may take the fast
--     path, with the messages' ids, owners, senders and Message-IDs for the client;
--  2. fast: COPY of the events into events with log_offset (h + 1 ...), message and rcpt;
--     a unique violation is a replay (the primary key, event time and id): roll back to a
--     savepoint taken before the COPY, and take today's path for the batch, which skips
--     what was stored; then msgstatus_fast_fold() of the client's recipient rows;
--     slow: COPY into ingest_stage, msgstatus_fast_slow(h, known);
--  3. msgstatus_ingest_end(h, n) (sql/012); in the benchmark msgstatus_fast_end(h, n), the
--     same without its NOTIFY (below).

-- Step 1, on arrays from the client:
--  per tracking id, the batch's aggregate as msgstatus_ingest_messages() makes it: tids,
--    mids (max Message-ID), qids (max queue id), senders, sasls, sizes, qats (the earliest
--    queued event's time; NULL if the batch has no queued event of the message);
--  per recipient row the client folded (one per message and address): fidx (the index of
--    its tracking id in tids), frcpts (the lower-case address its events name), fqueued
--    (whether a queued event of that address is among them);
--  readers: the lower-case recipients of the batch's read and unread events.
-- fast is true when today's path would store exactly what the fast path stores:
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
-- The batch's messages are created (ids from the identity sequence, in the order given)
-- and completed as msgstatus_ingest_messages() does, with one look-up per tracking id.
-- Returns the head h before the batch, known (the highest message id before it: today's
-- path needs it), and per tracking id (in the order given) the message's id, owner, sender
-- and Message-ID, which the client needs for the events' rows and for its feeds.
CREATE FUNCTION msgstatus_fast_begin(tids text[], mids text[], qids text[], senders text[],
				     sasls text[], sizes bigint[], qats timestamptz[],
				     fidx int[], frcpts text[], fqueued boolean[], readers text[],
				     OUT h bigint, OUT known bigint, OUT fast boolean,
				     OUT ids bigint[], OUT owners text[], OUT msenders text[],
				     OUT message_ids text[])
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	ex bigint[];     -- per tracking id: the message there was before, NULL if none
	newids bigint[];
	wq text[];       -- the queue ids of the messages that get a queued event now
	held bigint[];   -- the messages there were that get a queued event now
	lo timestamptz;
	hi timestamptz;
BEGIN
	SELECT l.head INTO h FROM log_head l FOR UPDATE;
	SELECT coalesce(max(m.id), 0) INTO known FROM messages m;
	fast := NOT EXISTS (SELECT 1 FROM users u
			    WHERE u.name = ANY (readers) AND NOT u.read_receipts);
	IF NOT fast THEN
		RETURN;
	END IF;

	SELECT array_agg(m.id ORDER BY t.ord) INTO ex
	FROM unnest(tids) WITH ORDINALITY t (tracking_id, ord)
	LEFT JOIN LATERAL (SELECT m.id FROM messages m WHERE m.tracking_id = t.tracking_id) m
	     ON true;
	newids := ARRAY(SELECT nextval('messages_id_seq')
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
		-- msgstatus_ingest_messages()'s completion of the messages there were
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

	-- every address one the sender used: queued in the batch, or stored as queued
	fast := NOT EXISTS (
		SELECT 1 FROM unnest(fidx, frcpts, fqueued) f (i, rcpt, queued)
		WHERE NOT f.queued
		  AND (ex[f.i] IS NULL
		       OR NOT EXISTS (SELECT 1 FROM recipients r
				      WHERE r.message = ex[f.i] AND r.recipient = f.rcpt AND r.queued)));
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

-- Step 2 of the slow path, after msgstatus_fast_begin() (which may have created the
-- batch's messages: msgstatus_ingest_messages() completes what it did not) and the COPY of
-- the batch into ingest_stage: today's steps. known is msgstatus_fast_begin()'s, the
-- highest message id before the batch. Returns msgstatus_ingest_append()'s rows.
CREATE FUNCTION msgstatus_fast_slow(h bigint, known bigint)
RETURNS TABLE (log_offset bigint, event_id text, event_time timestamptz, type smallint,
	       recipient text, details jsonb, message bigint, tracking_id text,
	       message_id text, owner text, sender text)
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
BEGIN
	PERFORM msgstatus_ingest_presence();
	PERFORM msgstatus_ingest_messages();
	PERFORM msgstatus_ingest_expiries();
	RETURN QUERY SELECT * FROM msgstatus_ingest_append(h, known);
END $$;

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
