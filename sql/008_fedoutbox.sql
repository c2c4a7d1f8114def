-- msgstatus schema 008: the federation outbox (docs/federation.md, "Sending a report" and
-- "Operations").
--
-- When this site remembers mail from another site (the inbound table, sql/007), the
-- Dovecot plugin's events for it (delivered, read, unread, and the expunge of its last
-- copy: deleted) are reported to that site. msgstatus_outbox_add() puts each such event
-- that may leave the site into fed_outbox, in the transaction that stores the batch, so
-- that no event is reported that was not stored and none stored is forgotten; statusd's
-- sender (statusd/fedout.c) sends the rows of each destination in id order and deletes
-- them once the destination acknowledged them. fed_peers is the sender's state per
-- destination, for statusctl federation peers and for the backoff across restarts.

CREATE TABLE fed_outbox (
	id bigserial PRIMARY KEY,
	destination text NOT NULL,         -- the sending site's domain (inbound.dkim_domain)
	reporter text NOT NULL,            -- the recipient's domain: reports it, signs for it
	event_id text NOT NULL,            -- this site's event id
	status smallint NOT NULL,          -- 4 delivered, 7 read, 8 unread, 9 deleted
	origin_tracking_id text NOT NULL,  -- the sending site's Msgstatus-Id
	recipient text NOT NULL,           -- lower case
	event_time timestamptz NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	failed_at timestamptz,             -- refused for good by the destination (kept to be seen)
	failure text
);
CREATE INDEX fed_outbox_waiting ON fed_outbox (destination, id) WHERE failed_at IS NULL;

CREATE TABLE fed_peers (
	destination text PRIMARY KEY,
	endpoint text,                     -- u= of its _msgstatus record, when last looked up
	last_success timestamptz,
	last_error text,                   -- sanitized, one line
	last_error_at timestamptz,
	failures integer NOT NULL DEFAULT 0,  -- failed attempts in a row
	next_try timestamptz               -- no report before this (backoff, Retry-After)
);

-- The batch's events (in ingest_stage, before msgstatus_ingest()) that concern remembered
-- mail and may leave the site, into fed_outbox. The site policy comes as a default level
-- and per-domain levels (0 nothing, 1 delivered, 2 delivered and what the user does with
-- the message: read, unread, deleted), by the destination. A recipient whose read receipts
-- are off sends delivered only. Presence is never looked at. An event stored before (a
-- replay) adds nothing. An expunge counts only when it leaves no copy of the message in
-- the recipient's mailboxes (deleted, lib/status.h). Returns the rows added, or -1 when
-- this site remembers no mail at all (the caller may then skip this step until it does).
CREATE FUNCTION msgstatus_outbox_add(dflt integer, domains text[], levels integer[])
RETURNS bigint
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
	n bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM inbound) THEN
		RETURN -1;
	END IF;
	WITH cand AS MATERIALIZED (
		SELECT s.seq, s.event_id, s.event_time, s.type, s.source, s.copies, s.tracking_id,
		       i.recipient, i.origin_tracking_id, i.dkim_domain,
		       coalesce(levels[array_position(domains, i.dkim_domain)], dflt) AS level
		FROM ingest_stage s
		JOIN inbound i ON i.tracking_id = s.tracking_id AND i.recipient = lower(s.recipient)
		WHERE s.tracking_id IS NOT NULL
		  AND s.type IN (4, 7, 8, 12, 13)
		  AND NOT EXISTS (SELECT 1 FROM events e
				  WHERE e.event_time = s.event_time AND e.event_id = s.event_id)
	)
	INSERT INTO fed_outbox (destination, reporter, event_id, status, origin_tracking_id,
				recipient, event_time)
	SELECT c.dkim_domain, split_part(c.recipient, '@', 2), c.event_id,
	       CASE WHEN c.type = 13 THEN 9 ELSE c.type END, c.origin_tracking_id, c.recipient,
	       c.event_time
	FROM cand c
	WHERE ((c.type = 4 AND c.source = 'dovecot') OR c.type IN (7, 8, 13))
	  AND c.level >= CASE WHEN c.type = 4 THEN 1 ELSE 2 END
	  AND (c.type = 4 OR NOT EXISTS (SELECT 1 FROM users u
					 WHERE u.name = c.recipient AND NOT u.read_receipts))
	  -- an expunge: deleted once no copy is left (the stored events' copies and the
	  -- batch's new ones up to it: deliveries, copies, expunges)
	  AND (c.type <> 13 OR
	       coalesce((SELECT sum(e.copies) FROM messages m JOIN events e ON e.message = m.id
			 WHERE m.tracking_id = c.tracking_id AND lower(e.recipient) = c.recipient),
			0)
	       + (SELECT sum(t.copies) FROM cand t
		  WHERE t.tracking_id = c.tracking_id AND t.recipient = c.recipient
		    AND t.seq <= c.seq) <= 0)
	  AND split_part(c.recipient, '@', 2) <> ''
	ORDER BY c.seq;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM pg_notify('msgstatus_outbox', '');
	END IF;
	RETURN n;
END $$;
