-- msgstatus schema 014: an event is in the federation outbox once (docs/federation.md,
-- "Sending a report").
--
-- msgstatus_outbox_add() (011) took for new the batch's events that were not in events
-- yet, each row of ingest_stage: a producer that sends again what it is not sure was
-- stored (a lost acknowledgement, its spool replayed) can bring the same event twice into
-- one batch, and both copies went to the outbox (seen as 48 rows for 24 events), although
-- msgstatus_ingest() stores the event once. Now the batch's events count once each, by
-- (event_time, event_id) as msgstatus_ingest() takes them (the first copy), and fed_outbox
-- takes an event id once: a row already there is kept, and the function returns the rows
-- it really added.

-- The copies already there go: the first of each event (lowest id) stays, with its place
-- in the destination's order.
DELETE FROM fed_outbox o
WHERE EXISTS (SELECT 1 FROM fed_outbox p WHERE p.event_id = o.event_id AND p.id < o.id);
CREATE UNIQUE INDEX fed_outbox_event ON fed_outbox (event_id);

-- The batch's events (in ingest_stage, before msgstatus_inbound() and msgstatus_ingest())
-- that concern remembered mail and may leave the site, into fed_outbox. The site policy
-- comes as a default level and per-domain levels (0 nothing, 1 delivered, 2 delivered and
-- what the user does with the message: read, unread, deleted), by the destination. A
-- recipient whose read receipts are off sends delivered only. Presence is never looked
-- at. An event stored before (a replay) adds nothing, nor does an event the batch has
-- twice or one already in the outbox (schema 014). An expunge counts only when it
-- leaves no copy of the message in the recipient's mailboxes (deleted, lib/status.h).
-- Mail the batch remembers (its inbound events, new) also brings the events of it that
-- were stored before: after an outage the producers' spools may deliver the plugin's
-- events ahead of the milter's inbound one (remembers: the batch has inbound events).
-- Returns the rows added, or -1 when this site remembers no mail at all (the caller may
-- then skip this step until a batch brings some).
CREATE OR REPLACE FUNCTION msgstatus_outbox_add(dflt integer, domains text[], levels integer[],
				     remembers boolean)
RETURNS bigint
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	n bigint;
BEGIN
	IF NOT remembers AND NOT EXISTS (SELECT 1 FROM inbound) THEN
		RETURN -1;
	END IF;
	WITH anew AS MATERIALIZED (
		-- the mail the batch remembers anew (msgstatus_inbound()'s conditions)
		SELECT DISTINCT ON (s.tracking_id, lower(s.recipient)) s.tracking_id,
		       lower(s.recipient) AS recipient, s.details->>'origin_tracking_id'
		       AS origin_tracking_id, lower(s.details->>'dkim_domain') AS dkim_domain
		FROM ingest_stage s
		WHERE remembers AND s.type = 14 AND s.tracking_id IS NOT NULL
		  AND s.recipient IS NOT NULL AND s.details->>'origin_tracking_id' IS NOT NULL
		  AND s.details->>'dkim_domain' IS NOT NULL AND s.details->>'aligned' IS NOT NULL
		  AND NOT EXISTS (SELECT 1 FROM inbound i WHERE i.tracking_id = s.tracking_id
				  AND i.recipient = lower(s.recipient))
		ORDER BY s.tracking_id, lower(s.recipient), s.seq
	), hit AS MATERIALIZED (
		-- the batch's events of remembered mail (stored, or remembered by the batch): one
		-- probe of inbound's key per event of a type that may count, nothing more for
		-- the others (all of them, on most batches); an event the batch has twice, once
		-- (its first copy, as msgstatus_ingest() stores it)
		SELECT DISTINCT ON (s.event_time, s.event_id) s.seq, s.event_id, s.event_time,
		       s.type, s.source, s.copies, s.tracking_id, r.recipient, r.origin_tracking_id,
		       r.dkim_domain
		FROM ingest_stage s
		CROSS JOIN LATERAL (
			(SELECT i.recipient, i.origin_tracking_id, lower(i.dkim_domain) AS dkim_domain
			 FROM inbound i
			 WHERE i.tracking_id = s.tracking_id AND i.recipient = lower(s.recipient))
			UNION ALL
			(SELECT o.recipient, o.origin_tracking_id, o.dkim_domain FROM anew o
			 WHERE remembers AND o.tracking_id = s.tracking_id
			   AND o.recipient = lower(s.recipient))
			LIMIT 1) r
		WHERE s.tracking_id IS NOT NULL
		  AND ((s.type = 4 AND s.source = 'dovecot') OR s.type IN (7, 8, 12, 13))
		ORDER BY s.event_time, s.event_id, s.seq
	), cand AS MATERIALIZED (
		-- of those, the new ones (a replay adds nothing)
		SELECT h.* FROM hit h
		WHERE NOT EXISTS (SELECT 1 FROM events e
				  WHERE e.event_time = h.event_time AND e.event_id = h.event_id)
	), late AS MATERIALIZED (
		-- the events stored before of the mail the batch remembers anew (none, normally)
		SELECT e.event_id, e.event_time, e.type, e.source, o.recipient,
		       o.origin_tracking_id, o.dkim_domain, m.id AS message
		FROM anew o
		JOIN messages m ON m.tracking_id = o.tracking_id AND remembers
		JOIN events e ON e.message = m.id AND lower(e.recipient) = o.recipient
	), picked AS (
		-- both, in their order (the stored ones first), with whether an expunge leaves no
		-- copy of the message in the recipient's mailboxes: counting the stored events'
		-- copies and the batch's new ones up to it (deliveries, copies, expunges); of the
		-- stored ones, the last expunge only
		SELECT 1 AS part, c.seq::bigint AS ord, c.event_id, c.event_time, c.type, c.source,
		       c.recipient, c.origin_tracking_id, c.dkim_domain,
		       c.type <> 13 OR
		       coalesce((SELECT sum(e.copies) FROM messages m JOIN events e ON e.message = m.id
				 WHERE m.tracking_id = c.tracking_id
				   AND lower(e.recipient) = c.recipient), 0)
		       + (SELECT sum(t.copies) FROM cand t
			  WHERE t.tracking_id = c.tracking_id AND t.recipient = c.recipient
			    AND t.seq <= c.seq) <= 0 AS counts
		FROM cand c
		UNION ALL
		SELECT 0, row_number() OVER (ORDER BY l.event_time, l.event_id), l.event_id,
		       l.event_time, l.type, l.source, l.recipient, l.origin_tracking_id,
		       l.dkim_domain,
		       l.type <> 13 OR
		       ((SELECT sum(e.copies) FROM events e
			 WHERE e.message = l.message AND lower(e.recipient) = l.recipient) <= 0
			AND NOT EXISTS (SELECT 1 FROM late o WHERE o.message = l.message
					AND o.recipient = l.recipient AND o.type = 13
					AND (o.event_time, o.event_id) > (l.event_time, l.event_id)))
		FROM late l
	)
	INSERT INTO fed_outbox (destination, reporter, event_id, status, origin_tracking_id,
				recipient, event_time)
	SELECT p.dkim_domain, split_part(p.recipient, '@', 2), p.event_id,
	       CASE WHEN p.type = 13 THEN 9 ELSE p.type END, p.origin_tracking_id, p.recipient,
	       p.event_time
	FROM picked p
	WHERE ((p.type = 4 AND p.source = 'dovecot') OR p.type IN (7, 8, 13)) AND p.counts
	  AND coalesce(levels[array_position(domains, p.dkim_domain)], dflt)
	      >= CASE WHEN p.type = 4 THEN 1 ELSE 2 END
	  AND (p.type = 4 OR NOT EXISTS (SELECT 1 FROM users u
					 WHERE u.name = p.recipient AND NOT u.read_receipts))
	  AND split_part(p.recipient, '@', 2) <> ''
	ORDER BY p.part, p.ord
	ON CONFLICT (event_id) DO NOTHING;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM pg_notify('msgstatus_outbox', '');
	END IF;
	RETURN n;
END $$;
