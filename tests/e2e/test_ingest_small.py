"""A small batch in one call (schema 017, msgstatus_ingest_small) stores what the COPY and
the steps store: the same events, offsets, recipients, messages and presence, and returns
the same events, batch after batch, for a log line before its message, a held event, a
replayed batch, a read receipt turned off, presence and a message-level expiry. And
statusd's rows reach it intact through the array (tabs, newlines, backslashes, quotes).
"""
import datetime
import json
import subprocess
import unittest

from e2e import event, main
from msgsandbox import Sandbox
from msgsandbox.core import wait_for

BOB, ALIAS, CAROL = "bob@example.net", "bob.alias@example.net", "carol@example.net"
DAVE, EVE, ALICE = "dave@example.net", "eve@example.net", "alice@example.org"
COLUMNS = ("seq", "event_id", "event_time", "type", "dkey", "rkey", "source", "tracking_id",
           "queue_id", "message_id", "recipient", "orig_recipient", "sender", "sasl_user",
           "size", "details", "xkey", "copies")
ODD = 'tab\there, line\nbreak, cr\rx, back\\slash \\t, "quoted", \u00e9\u4e2d'


def row(seq, event_id, minute, type_, dkey=0, rkey=0, source="test", tracking_id=None,
        queue_id=None, message_id=None, recipient=None, orig_recipient=None, sender=None,
        sasl_user=None, size=None, details=None, xkey=0, copies=0):
    when = (BASE + datetime.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return (seq, event_id, when, type_, dkey, rkey, source, tracking_id, queue_id, message_id,
            recipient, orig_recipient, sender, sasl_user, size,
            json.dumps(details) if details is not None else None, xkey, copies)


BASE = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
def K(code):
    """A status key: its order counts here, and its status code (the low 4 bits)."""
    return (code << 40) | code


BATCHES = [
    # a log line ahead of the milter's record: stored without a message
    [row(1, "l1", 1, 4, dkey=K(4), source="postfix", queue_id="Q1", recipient=ALIAS,
         orig_recipient=BOB, details={"dsn": "2.0.0", "note": ODD})],
    # its message: the line joins it; carol's delivery is held (the sender never used carol)
    [row(1, "q1", 0, 1, dkey=K(1), tracking_id="T1", queue_id="Q1", message_id="<m1@x>",
         recipient=BOB, sender=ALICE, sasl_user=ALICE, size=4096),
     row(2, "q2", 0, 1, dkey=K(1), tracking_id="T2", queue_id="Q2", message_id="<m2@x>",
         recipient=DAVE, sender=ALICE, sasl_user=ALICE, size=100),
     row(3, "q3", 0, 1, dkey=K(1), tracking_id="T2", queue_id="Q2", message_id="<m2@x>",
         recipient=EVE, sender=ALICE, sasl_user=ALICE, size=100),
     row(4, "c1", 2, 4, dkey=K(4), source="postfix", tracking_id="T1", recipient=CAROL)],
    # the same batch again: nothing new
    None,
    # a read with odd details, a read from dave (who turned read receipts off); eve online
    [row(1, "r1", 3, 7, rkey=K(7), source="dovecot", tracking_id="T1", recipient=BOB,
         details={"mailbox": ODD}),
     row(2, "r2", 3, 7, rkey=K(7), source="dovecot", tracking_id="T2", recipient=DAVE)],
    [row(1, "p1", 3, 10, source="dovecot", recipient=EVE)],
    # a message-level expiry of Q2: for each recipient still queued
    [row(1, "x1", 4, 6, dkey=K(6), source="postfix", queue_id="Q2")],
    # a tie from carol's address to bob's: the held delivery enters the log
    [row(1, "t1", 5, 4, dkey=K(4), source="dovecot", tracking_id="T1", recipient=CAROL,
         orig_recipient=BOB, copies=1)],
]
BATCHES[2] = BATCHES[1]


def copy_text(rows):
    def field(v):
        if v is None:
            return "\\N"
        s = str(v)
        for a, b in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            s = s.replace(a, b)
        return s
    return "".join("\t".join(field(v) for v in r) + "\n" for r in rows)


def array_literal(rows):
    def field(v):
        if v is None:
            return "NULL"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "{" + ",".join(field(v) for r in rows for v in r) + "}"


RESULT = ("log_offset, event_id, event_time, type, recipient, details, message, tracking_id,"
          " message_id, owner, sender")
SETUP = "\\set ON_ERROR_STOP 1\nSET client_min_messages = warning;\nSET TIME ZONE 'UTC';\n" \
        "SELECT msgstatus_session_setup() \\g /dev/null\n"


class IngestSmallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres(settings={"track_functions": "'pl'"})
        cls.sd = cls.sb.statusd(cls.pg)
        cls.steps_db = cls.pg.database("steps")
        cls.small_db = cls.pg.database("small")
        for name, db in (("steps", cls.steps_db), ("small", cls.small_db)):
            sd = cls.sb.statusd(db, name=f"statusd-{name}")  # migrates it
            sd.stop()
        for db in (cls.steps_db, cls.small_db):
            db.psql(f"INSERT INTO users (name, read_receipts, presence) VALUES "
                    f"('{DAVE}', false, false), ('{EVE}', true, true)")

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def session(self, db, script):
        """Run a psql script in one session of db; its output."""
        res = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-h", self.pg.dir,
                              "-p", str(self.pg.port), "-U", self.pg.superuser, "-d",
                              db.dbname], input=SETUP + script, capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout

    def steps(self, rows):
        """The batch as statusd stores a big one: COPY, then the three steps."""
        return self.session(self.steps_db, (
            "BEGIN;\nCOPY ingest_stage FROM STDIN;\n" + copy_text(rows) + "\\.\n"
            "SELECT h, known FROM msgstatus_ingest_begin() \\gset\n"
            f"CREATE TEMP TABLE got AS SELECT {RESULT} FROM msgstatus_ingest_append(:h, :known);\n"
            "SELECT msgstatus_ingest_end(:h, (SELECT count(*) FROM got)) \\g /dev/null\n"
            "SELECT * FROM got ORDER BY log_offset;\nCOMMIT;\n"))

    def small(self, rows):
        lit = array_literal(rows).replace("'", "''")
        return self.session(self.small_db,
                            f"SELECT {RESULT} FROM msgstatus_ingest_small('{lit}'::text[]);\n")

    def dump(self, db):
        tables = {
            "events": "SELECT to_jsonb(e) - 'received_at' FROM events e"
                      " ORDER BY event_time, event_id",
            "messages": "SELECT to_jsonb(m) - 'created_at' FROM messages m ORDER BY id",
            "recipients": "SELECT to_jsonb(r) - 'updated_at' FROM recipients r"
                          " ORDER BY message, recipient",
            "presence": "SELECT to_jsonb(p) FROM presence p ORDER BY name",
            "log_head": "SELECT head FROM log_head",
        }
        return {t: db.psql(q) for t, q in tables.items()}

    def test_same_results_and_tables_as_the_steps(self):
        for i, rows in enumerate(BATCHES):
            got, want = self.small(rows), self.steps(rows)
            self.assertEqual(got, want, f"batch {i + 1}: small got / steps want")
        small, steps = self.dump(self.small_db), self.dump(self.steps_db)
        for table in steps:
            self.assertEqual(small[table], steps[table], table)
        # what the batches are about happened (not two empty logs that agree)
        events = {e["event_id"]: e for e in (json.loads(r[0]) for r in small["events"])}
        self.assertEqual(events["l1"]["rcpt"], BOB, "the early line joined its message")
        self.assertEqual(events["l1"]["details"]["note"], ODD)
        self.assertEqual(events["r1"]["details"]["mailbox"], ODD)
        self.assertNotIn("r2", events, "dave's read receipt is dropped")
        self.assertIsNotNone(events["c1"]["log_offset"], "carol's delivery entered the log "
                             "once tied to bob's address")
        self.assertEqual(sum(1 for e in events if e.startswith("x1.")), 2,
                         "the expiry counts for dave and eve")
        self.assertEqual(len(small["presence"]), 1)
        self.assertEqual(int(small["log_head"][0][0]),
                         sum(1 for e in events.values() if e["log_offset"] is not None))

    def test_a_held_event_waits_in_the_same_way(self):
        rows = [row(1, "h1", 6, 4, dkey=K(4), source="postfix", tracking_id="T9",
                    recipient=CAROL)]
        self.assertEqual(self.small(rows), self.steps(rows))
        for db in (self.small_db, self.steps_db):
            self.assertEqual(db.psql("SELECT log_offset IS NULL, rcpt IS NULL FROM events"
                                     " WHERE event_id = 'h1'"), [["t", "t"]])

    def test_a_row_that_does_not_fit_is_refused_whole(self):
        res = subprocess.run(["psql", "-X", "-q", "-h", self.pg.dir, "-p", str(self.pg.port),
                              "-U", self.pg.superuser, "-d", self.small_db.dbname, "-c",
                              "SELECT msgstatus_session_setup(); SELECT * FROM"
                              " msgstatus_ingest_small('{1,2,3}')"],
                             capture_output=True, text=True)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("not 18 a row", res.stderr)

    def test_statusd_sends_a_small_batch_in_one_call_intact(self):
        # (events that no other site may be told of: a batch with a delivery or a read
        # first takes the outbox step, and the COPY, until that step has said that the
        # site remembers no other site's mail; and a log line without a tracking id, which
        # makes the batch one that the fast path of schema 019 leaves to the steps)
        calls = "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions" \
                " WHERE funcname = 'msgstatus_ingest_small'"
        before = int(self.pg.scalar(calls))
        reply = "451 4.3.0 Try\tagain\r\n later"
        evs = [event(tracking_id="odd1", recipient=BOB, sender=ALICE, sasl_user=ALICE,
                     message_id='<a"b\\c@x>', details={"note": ODD, "n": 1}),
               event("deferred", tracking_id="odd1", recipient=BOB,
                     details={"smtp_reply": reply}),
               event("deferred", tracking_id=None, queue_id="QODD", recipient=BOB,
                     source="postfix")]
        replies = self.sd.send_events(evs)
        self.assertTrue(all("ack" in r for r in replies), replies)
        # (a backend reports its function calls when idle, within seconds)
        wait_for("statusd's call of msgstatus_ingest_small", lambda: int(self.pg.scalar(calls))
                 > before, timeout=30)

        def lit(v):  # a standard string literal (backslashes are themselves)
            return "'" + v.replace("'", "''") + "'"
        got = self.pg.psql(
            "SELECT e.type, e.source = 'test', m.message_id = " + lit('<a"b\\c@x>') +
            ", coalesce(e.details->>'note' = " + lit(ODD) + ", e.details->>'smtp_reply' = " +
            lit(reply) + "), e.log_offset IS NOT NULL FROM events e"
            " JOIN messages m ON m.id = e.message WHERE e.tracking_id = 'odd1' ORDER BY e.type")
        self.assertEqual(got, [["1", "t", "t", "t", "t"], ["2", "t", "t", "t", "t"]])
    def test_a_commit_that_fails_is_said_and_retried(self):
        """An error at the implicit transaction's commit (here a deferred check, once,
        with a transient SQLSTATE) comes after the call's result: statusd reports that
        error, retries the batch, and stores its event once."""
        self.pg.psql("""
            CREATE SEQUENCE commit_fail;  -- not undone by the rollback: once
            CREATE FUNCTION commit_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.tracking_id = 'cfail1' AND nextval('commit_fail') = 1 THEN
                    RAISE EXCEPTION 'deferred check says no' USING ERRCODE = '40001';
                END IF;
                RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER commit_fail AFTER INSERT ON messages
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_fail();
        """)
        calls = "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions" \
                " WHERE funcname = 'msgstatus_ingest_small'"
        before = int(self.pg.scalar(calls))
        try:
            # (with a log line without a tracking id: a batch the fast path of schema 019
            # leaves to the steps, so that it goes in 017's one call)
            replies = self.sd.send_events([
                event(tracking_id="cfail1", recipient=BOB, sender=ALICE, sasl_user=ALICE),
                event("deferred", tracking_id=None, queue_id="QCFAIL", recipient=BOB,
                      source="postfix")])
            self.assertTrue(all("ack" in r for r in replies), replies)
            self.assertEqual(self.pg.scalar(
                "SELECT count(*) FROM events WHERE tracking_id = 'cfail1'"), "1")
            wait_for("statusd's calls of msgstatus_ingest_small",
                     lambda: int(self.pg.scalar(calls)) > before, timeout=30)
            log = self.sd.child.log()
            self.assertIn("will retry", log)
            self.assertIn("deferred check says no", log)
        finally:
            self.pg.psql("DROP TRIGGER commit_fail ON messages; DROP FUNCTION commit_fail();"
                         " DROP SEQUENCE commit_fail;")


if __name__ == "__main__":
    main()
