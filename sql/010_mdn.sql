-- msgstatus schema 010: message disposition notifications sent by the server (docs/mdn.md).
--
-- When a local user reads a message that asks for a disposition notification (RFC 8098
-- Disposition-Notification-To), the Dovecot plugin sends statusd an "mdn" event (type 16).
-- statusd decides with the user's preference (users.mdn; NULL: the administrator's default
-- from the userdb, which the event carries) and the rules of RFC 8098 section 2.1, and
-- records the decision here, once per user and Message-ID: the first decision stands, so
-- that a message gets at most one notification, whatever is read again, restarted or
-- replayed. A decision "send" is a notification to write: statusd's MDN sender hands it to
-- sendmail, retrying while sendmail fails.

ALTER TABLE users ADD COLUMN mdn text CHECK (mdn IN ('never', 'always'));

CREATE TABLE mdn (
	recipient text NOT NULL,        -- the mailbox user (Final-Recipient), as Dovecot names it
	message_id text NOT NULL,       -- the read message's Message-ID (Original-Message-ID)
	decision text NOT NULL CHECK (decision IN ('send', 'declined', 'refused')),
	reason text NOT NULL,
	notify_to text,                 -- where the notification goes (decision send)
	subject text,                   -- the read message's, cut and cleaned
	mailbox text,                   -- where the message was read
	uid bigint,
	event_id text NOT NULL,
	read_at timestamptz NOT NULL,   -- the event's time
	decided_at timestamptz NOT NULL DEFAULT now(),
	-- the sender's progress: none (not to send), pending (due at next_attempt), sending
	-- (handed to sendmail, no answer yet), sent, failed (gave up), unknown (sending for
	-- longer than a sendmail run may take: statusd stopped meanwhile; never tried again,
	-- so that nothing goes twice)
	state text NOT NULL CHECK (state IN ('none', 'pending', 'sending', 'sent', 'failed',
					     'unknown')),
	attempts integer NOT NULL DEFAULT 0,
	claimed_at timestamptz,         -- when the latest attempt was handed to sendmail
	next_attempt timestamptz,
	last_error text,
	sent_at timestamptz,
	PRIMARY KEY (recipient, message_id)
);
CREATE INDEX mdn_due ON mdn (next_attempt) WHERE state = 'pending';
CREATE INDEX mdn_sending ON mdn (claimed_at) WHERE state = 'sending';
