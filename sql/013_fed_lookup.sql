-- msgstatus schema 013: the lookup of a report's events at the receiving site as one
-- function, whose plan each session makes once (docs/federation.md, "Receiving a report";
-- docs/performance.md, "Federation").
--
-- statusd sent the same query as a statement of its own with every report (008): PostgreSQL
-- planned it anew each time, which cost more than running it (the EXISTS on events is
-- planned over each of its partitions); and a planner whose statistics were behind (as
-- they are until the next ANALYZE) read, for every event of the report, all of the
-- reporting domain's rows of fed_events, or all of the recipient's rows of recipients.
-- Here each part is a probe of one key, made for each event or message (LATERAL ... LIMIT
-- 1 is not pulled up into a join), and PL/pgSQL keeps the generic plan for the session.

-- For each of a report's events (the MIMI msgid in hex, the recipient as reported, the
-- reporting domain's event id), in their order (item, from 1): whether this site sent
-- that message to that recipient (sent: the newest message with that msgid, by tracking
-- id or Message-ID, that has the recipient, lower case), its tracking id and Message-ID;
-- whether domain sent that event id before (taken) with the time it was remembered with
-- (taken_ms, ms since the epoch), and whether that event is in the log (stored).
CREATE FUNCTION msgstatus_fed_lookup(domain text, msgids text[], rcpts text[], eids text[])
RETURNS TABLE (item bigint, sent boolean, tracking_id text, message_id text, taken boolean,
	       taken_ms bigint, stored boolean)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT u.i, coalesce(m.hit, false), m.tracking_id, m.message_id, f.stored_id IS NOT NULL,
	       (extract(epoch FROM f.event_time) * 1000)::bigint, coalesce(s.hit, false)
	FROM unnest(msgids, rcpts, eids) WITH ORDINALITY AS u(msgid, rcpt, eid, i)
	LEFT JOIN LATERAL (
		-- the messages with that msgid first, through the indexes messages_fed_tid and
		-- _fed_mid (008), whose expressions these are (OFFSET 0: not by messages' key,
		-- newest first, hashing each, to stop at the first that has the recipient); then
		-- the recipient by recipients' key for each (as an EXISTS, a planner without
		-- statistics read every row of the recipient's)
		SELECT true AS hit, m.tracking_id, m.message_id
		FROM (SELECT m.id, m.tracking_id, m.message_id FROM messages m
		      WHERE msgstatus_fed_tid(m.tracking_id) = decode(u.msgid, 'hex')
			 OR msgstatus_fed_mid(m.message_id) = decode(u.msgid, 'hex')
		      OFFSET 0) m
		CROSS JOIN LATERAL (
			SELECT 1 FROM recipients r
			WHERE r.message = m.id AND r.recipient = lower(u.rcpt) LIMIT 1) r
		ORDER BY m.id DESC LIMIT 1) m ON true
	LEFT JOIN LATERAL (
		SELECT f.event_time, f.stored_id FROM fed_events f
		WHERE f.domain = msgstatus_fed_lookup.domain AND f.event_id = u.eid
		LIMIT 1) f ON true
	LEFT JOIN LATERAL (
		SELECT true AS hit FROM events e
		WHERE e.event_time = f.event_time AND e.event_id = f.stored_id
		LIMIT 1) s ON true
	ORDER BY u.i;
END $$;
