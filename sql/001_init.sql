-- msgstatus schema 1: the event log, messages, recipients and their derived status.
--
-- Applied by statusd at start (db_migrate = yes) or by "statusctl migrate", in one
-- transaction, under an advisory lock, and recorded in schema_version (created by the
-- migrator). Never edit a released migration: add the next numbered file.

-- The log's head. Offsets are handed out under this row's lock, inside the transaction
-- that stores the events, so they are gap-free and become visible in order: a reader that
-- has seen offset N has seen every offset below it (seed 004 "fast sync"). The epoch names
-- this log; it changes only if the log is reset, so a client can tell a reset from a gap.
CREATE TABLE log_head (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	epoch bigint NOT NULL,
	head bigint NOT NULL DEFAULT 0 CHECK (head >= 0)
);
INSERT INTO log_head (epoch) VALUES ((extract(epoch FROM clock_timestamp()) * 1000)::bigint);

-- One row per tracked message. A message is created by the first event that names its
-- tracking id, whichever that is (a read can overtake its queued), and completed by later ones.
CREATE TABLE messages (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tracking_id text UNIQUE,      -- the Msgstatus-Id header
	message_id text,              -- RFC 5322 Message-ID, with angle brackets
	queue_id text,                -- Postfix queue id
	sender text,                  -- envelope sender ('' for the null sender)
	sasl_user text,               -- SASL login of the submitter
	owner text,                   -- who may see the status: the SASL login, else the sender
	size bigint,
	queued_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_message_id ON messages (message_id);
CREATE INDEX messages_queue_id ON messages (queue_id);
CREATE INDEX messages_owner ON messages (owner, queued_at DESC, id DESC);

-- The derived status of each recipient of a message (lib/status.h): the largest key seen on
-- each axis, so that the result does not depend on the order events arrive in.
-- No foreign key to messages: msgstatus_ingest() only writes rows for messages it has just
-- looked up in the same transaction, and a per-row RI check costs a third of ingest time.
CREATE TABLE recipients (
	message bigint NOT NULL,
	recipient text NOT NULL,
	orig_recipient text,
	dkey bigint NOT NULL DEFAULT 0,         -- delivery axis
	rkey bigint NOT NULL DEFAULT 0,         -- reading axis
	displayed boolean NOT NULL DEFAULT false,
	-- the shown status code (lib/msevent.h); the code is the key's low four bits
	status smallint GENERATED ALWAYS AS
		(((CASE WHEN rkey > 0 THEN rkey ELSE dkey END) & 15)::smallint) STORED,
	details jsonb,                          -- details of the event that set dkey
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (message, recipient)
);
CREATE INDEX recipients_recipient ON recipients (recipient);

-- The append-only event log. Partitioned by the event's own time, by week, so that
-- expiring old events is dropping a partition (msgstatus_maintain). The primary key makes
-- storing idempotent: a replayed event carries the same id and time. An event enters the
-- log (gets its offset) when it is joined to a message: only then can the feeds tell whose
-- it is. Until then (a Postfix log line ahead of the milter's record) it waits unjoined.
CREATE TABLE events (
	event_time timestamptz NOT NULL,
	event_id text NOT NULL,
	log_offset bigint,            -- its place in the log; NULL until joined to a message
	received_at timestamptz NOT NULL DEFAULT now(),
	type smallint NOT NULL CHECK (type BETWEEN 1 AND 9), -- presence (10, 11) is not logged
	source text NOT NULL,
	message bigint,               -- NULL while the event cannot be joined to a message yet
	dkey bigint NOT NULL DEFAULT 0, -- the event's status keys (lib/status.h), kept so that an
	rkey bigint NOT NULL DEFAULT 0, -- event joined late can still be folded into its recipient
	tracking_id text,
	queue_id text,
	message_id text,
	recipient text NOT NULL,
	orig_recipient text,
	rcpt text,                    -- the recipient it counts for (lower case); NULL until joined
	details jsonb,
	PRIMARY KEY (event_time, event_id)
) PARTITION BY RANGE (event_time);
CREATE INDEX events_log_offset ON events (log_offset);
CREATE INDEX events_message ON events (message);
CREATE INDEX events_unjoined ON events (queue_id) WHERE message IS NULL;

-- Users, their preferences and API tokens (filled in by the API; here so that the schema
-- has its shape from the start).
CREATE TABLE users (
	name text PRIMARY KEY,                  -- the login, as the SASL login / Dovecot user
	read_receipts boolean NOT NULL DEFAULT true,
	presence boolean NOT NULL DEFAULT false,
	domain_admin text[] NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE api_tokens (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	username text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	token_hash bytea NOT NULL UNIQUE,       -- SHA-256 of the token; the token itself is never stored
	label text,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz,
	revoked_at timestamptz
);

-- Presence (opt-in, users.presence): set from IMAP logins (Dovecot plugin) and webmail.
CREATE TABLE presence (
	name text PRIMARY KEY,
	online_until timestamptz,     -- online while now() < online_until
	last_seen timestamptz,
	client text,                  -- "imap", "webmail", ...
	typing_to text,               -- the address being written to, while typing_until
	typing_until timestamptz
);

-- How far each configured webhook endpoint has been delivered (survives restarts).
CREATE TABLE webhook_cursors (
	url text PRIMARY KEY,
	log_offset bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- Create the weekly partitions that the accepted time window needs, drop those that lie
-- wholly before it, and drop events that never joined a message. statusd calls this at
-- start and hourly; it is safe to run at any time.
CREATE FUNCTION msgstatus_maintain(retention interval, ahead interval DEFAULT '14 days',
				   unjoined_max interval DEFAULT '1 day')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	w timestamptz := date_trunc('week', now() - retention);
	stop timestamptz := now() + ahead;
	part record;
	name text;
BEGIN
	WHILE w < stop LOOP
		name := 'events_' || to_char(w AT TIME ZONE 'UTC', 'YYYYMMDD');
		IF to_regclass(name) IS NULL THEN
			EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
				name, w, w + interval '1 week');
		END IF;
		w := w + interval '1 week';
	END LOOP;
	FOR part IN
		SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass
	LOOP
		-- bound reads FOR VALUES FROM ('...') TO ('...')
		IF substring(part.bound FROM 'TO \(''([^'']+)''\)')::timestamptz <= now() - retention THEN
			EXECUTE format('DROP TABLE %I', part.relname);
		END IF;
	END LOOP;
	-- Events that found no message within a day are about mail the milter did not track
	-- (Postfix logs every message): they will never join, so they go.
	DELETE FROM events e WHERE e.message IS NULL AND e.received_at < now() - unjoined_max;
END $$;

-- Per-session set-up for ingest: the staging table statusd COPYs each batch into.
CREATE FUNCTION msgstatus_session_setup() RETURNS void LANGUAGE plpgsql AS $$
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
		details jsonb
	) ON COMMIT DELETE ROWS;
END $$;
