-- msgstatus schema 008: reports from other sites about this site's mail (docs/federation.md,
-- "Receiving a report").
--
-- A report's events are stored as ordinary status events (source "federation") through the
-- normal ingest. What the receiver needs besides: the nonces of signatures it has seen, so
-- that a replay is refused across restarts, and the events it has taken by the reporting
-- domain's own event id, so that a report sent twice is stored once.

-- A signature's (keyid, nonce), kept until two minutes after the signature expired (by
-- statusd's clock, which judges a signature's freshness).
CREATE TABLE fed_nonces (
	keyid text NOT NULL,
	nonce text NOT NULL,
	expires timestamptz NOT NULL,
	PRIMARY KEY (keyid, nonce)
);
CREATE INDEX fed_nonces_expires ON fed_nonces (expires);

-- An event a reporting domain sent, under the (time, id) it was stored with in events.
-- Written before the event goes to the ingest: a row whose event is not in events (the
-- ingest failed) is not a duplicate, and the event is stored again under the same
-- (time, id), which the ingest takes once.
CREATE TABLE fed_events (
	domain text NOT NULL,
	event_id text NOT NULL,       -- the reporting domain's id
	event_time timestamptz NOT NULL,
	stored_id text NOT NULL,      -- events.event_id
	PRIMARY KEY (domain, event_id)
);
CREATE INDEX fed_events_time ON fed_events (event_time);

-- MIMI's 32-byte message id of a tracking id or Message-ID (docs/federation.md, "Message
-- ids"; federation/mimistatus.c computes the same): 0x01 and the first 31 bytes of
-- SHA-256(label || 0x00 || id). IMMUTABLE so that messages can be indexed by it.
CREATE FUNCTION msgstatus_fed_msgid(label text, id text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT decode('01', 'hex') ||
	       substr(sha256(convert_to(label, 'UTF8') || decode('00', 'hex') ||
	                     convert_to(id, 'UTF8')), 1, 31)
$$;
-- The two below, which index messages, call only pg_catalog's functions: PostgreSQL 17
-- builds an index with search_path = pg_catalog, pg_temp, where msgstatus_fed_msgid()
-- would not be found.
CREATE FUNCTION msgstatus_fed_tid(tracking_id text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT decode('01', 'hex') ||
	       substr(sha256(convert_to('msgstatus tracking-id', 'UTF8') || decode('00', 'hex') ||
	                     convert_to(tracking_id, 'UTF8')), 1, 31)
$$;
-- messages.message_id has its angle brackets; the hash is over what is between them.
CREATE FUNCTION msgstatus_fed_mid(message_id text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT decode('01', 'hex') ||
	       substr(sha256(convert_to('rfc5322 msg-id', 'UTF8') || decode('00', 'hex') ||
	                     convert_to(CASE WHEN message_id LIKE '<%>' AND length(message_id) > 2
	                                     THEN substr(message_id, 2, length(message_id) - 2)
	                                     ELSE message_id END, 'UTF8')), 1, 31)
$$;
CREATE INDEX messages_fed_tid ON messages (msgstatus_fed_tid(tracking_id));
CREATE INDEX messages_fed_mid ON messages (msgstatus_fed_mid(message_id));
