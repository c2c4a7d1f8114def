-- msgstatus schema 007: mail from other sites that this site remembers (docs/federation.md,
-- "Correlation").
--
-- When mail from another site carries that site's tracking id (Msgstatus-Id) and a valid
-- DKIM signature aligned with its sender's domain, msgstatus-milter tags it with a tracking
-- id of this site (so that the Dovecot plugin reports its delivered, read, ... as for any
-- tagged message) and sends one "inbound" event (type 14) per recipient that ties the two
-- ids together. Those events are not statuses: msgstatus_inbound() moves them out of the
-- batch into this table before msgstatus_ingest() sees the batch. Unauthenticated mail has
-- no row here, and nothing of it can ever be reported to anyone.

CREATE TABLE inbound (
	tracking_id text NOT NULL,         -- this site's tag (the plugin's events carry it)
	recipient text NOT NULL,           -- lower case
	origin_tracking_id text NOT NULL,  -- the sending site's Msgstatus-Id
	dkim_domain text NOT NULL,         -- d= of the signature that authenticated it
	from_domain text,                  -- the From header's domain, as OpenDKIM read it
	aligned text NOT NULL,             -- "envelope", "from" or "envelope,from"
	sender text,                       -- envelope sender
	message_id text,
	queue_id text,
	event_id text NOT NULL,
	received_at timestamptz NOT NULL,  -- the event's time: when the milter saw the mail
	PRIMARY KEY (tracking_id, recipient)
);
CREATE INDEX inbound_origin ON inbound (dkim_domain, origin_tracking_id);
CREATE INDEX inbound_received ON inbound (received_at);

-- Move the batch's inbound events (type 14) from ingest_stage into inbound; a replay (the
-- same tracking id and recipient) changes nothing. Called by statusd in the ingest
-- transaction, after the COPY and before msgstatus_ingest(). Returns the rows added.
CREATE FUNCTION msgstatus_inbound() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	INSERT INTO inbound (tracking_id, recipient, origin_tracking_id, dkim_domain, from_domain,
			     aligned, sender, message_id, queue_id, event_id, received_at)
	SELECT s.tracking_id, lower(s.recipient), s.details->>'origin_tracking_id',
	       s.details->>'dkim_domain', s.details->>'from_domain', s.details->>'aligned',
	       s.sender, s.message_id, s.queue_id, s.event_id, s.event_time
	FROM ingest_stage s
	WHERE s.type = 14 AND s.tracking_id IS NOT NULL AND s.recipient IS NOT NULL
	  AND s.details->>'origin_tracking_id' IS NOT NULL AND s.details->>'dkim_domain' IS NOT NULL
	  AND s.details->>'aligned' IS NOT NULL
	ON CONFLICT (tracking_id, recipient) DO NOTHING;
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM ingest_stage s WHERE s.type = 14;
	RETURN n;
END $$;

-- Maintenance (statusd's, and statusctl maintain): an inbound row goes when its mail is
-- older than event_retention, like the events of that time. Returns the rows removed.
CREATE FUNCTION msgstatus_maintain_inbound(retention interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM inbound WHERE received_at < now() - retention;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
