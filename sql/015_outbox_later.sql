-- msgstatus schema 015: a waiting event the destination answered "later" (docs/federation.md,
-- "Answers" and "Sending a report").
--
-- A receiver that does not know a reported message yet (its own event of the message is
-- still on its way to its ingest) names the event in its 200 answer's "later" list
-- instead of refusing the whole report. The sender keeps such a row and sends it again,
-- with the destination's other waiting rows, once not_before has passed; it is no failure
-- of the destination and holds up none of its newer rows (statusd/fedout.c). NULL: the row
-- may go at once.

ALTER TABLE fed_outbox ADD COLUMN IF NOT EXISTS not_before timestamptz;
