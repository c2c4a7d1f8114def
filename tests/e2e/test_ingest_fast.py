"""The fast path of a batch (schema 019, statusd/ingest_fast.c) stores what the ingest's
steps store. The same batches go through statusd's socket to two statusd, each with a
database of its own: one on schema 019, one on schema 018 (whose statusd takes the steps,
as they were before 019). Every table the ingest writes must then be the same, batch after
batch, through every rule: held events and the batch that releases them, a log line
before its message, an alias's expansion and a later event tied by it, a read receipt
turned off, presence, a replay, an event of a message stored before, an address the
sender did not use, a message-level expiry, a message whose queued events come in two
batches, a report held before its message and the batch that brings it, and batches that
statusd sends the steps' way itself. Most batches are made bigger than a small batch
(STORE_SMALL_BATCH) by plain messages of their own, and the way statusd stored each (its
metrics) is checked. The sender's live feed gets the same events from both (on the fast
path statusd makes them itself, where the steps return them). The first batch runs the
federation outbox step, so it goes first, on the steps' way.
"""
import json
import os
import re
import shutil
import time
import unittest

import websocket
from e2e import main
from msgsandbox import Sandbox, paths

DOMAIN = "fast.example"
PAD_MESSAGES = 7  # 5 events each: 35 plain events besides each batch's own


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


BASE = time.time() - 3600


def msg(k):
    return {"tracking_id": f"fast{k}", "message_id": f"<fast{k}@{DOMAIN}>",
            "queue_id": f"5F{k:08d}"}


def ev(eid, kind, t, rcpt, m=None, **kw):
    d = {"v": 1, "source": "test", "id": eid, "type": kind, "time": rfc3339(BASE + t)}
    if rcpt is not None:
        d["recipient"] = rcpt
    if m is not None:
        d.update(msg(m))
    d.update(kw)
    return d


def queued(m, r, t):
    return ev(f"f{m}q{r}", "queued", t, f"{r}@{DOMAIN}", m, sender=f"alice@{DOMAIN}",
              sasl_user=f"alice@{DOMAIN}", size=4096)


def plain(m, t):
    return [queued(m, "bob", t), queued(m, "carol", t),
            ev(f"f{m}s", "relayed", t + 0.2, f"carol@{DOMAIN}", m,
               details={"mta": "mx.remote.example[192.0.2.7]:25", "dsn": "2.0.0",
                        "note": "tab\there \\ \"quoted\" \u00e9"}),
            ev(f"f{m}d", "delivered", t + 0.1, f"bob@{DOMAIN}", m),
            ev(f"f{m}r", "read", t + 5, f"Bob@{DOMAIN}", m)]


def report(m, t):
    """A DSN about message m (held while m has no queued events: sql/018)."""
    return ev(f"f{m}dsn", "report", t, f"bob@{DOMAIN}", None, tracking_id=msg(m)["tracking_id"],
              source="milter", details={"kind": "dsn", "status": "delivered", "dkim": DOMAIN,
                                        "reporting_mta": f"mx.{DOMAIN}", "dsn": "2.0.0",
                                        "smtp_reply": "250 2.0.0 Ok", "envid_ok": False,
                                        "report_id": f"rep{m}", "raw": "Action: delivered\r\n"})


def batches():
    """(the batch's own events, the path statusd takes) in order."""
    first = plain(1, 0) + plain(2, 1)
    return [
        (first, "fast"),
        ([ev("f3r", "read", 12, f"bob@{DOMAIN}", 3)], "declined"),        # no owner: held
        ([queued(3, "bob", 10), queued(3, "carol", 10),                   # releases it
          ev("f3d", "delivered", 11, f"bob@{DOMAIN}", 3)], "declined"),
        ([ev("f5d", "delivered", 21, f"carol@{DOMAIN}", None, source="postfix",
             queue_id=msg(5)["queue_id"])], "today"),                     # no message yet
        ([queued(5, "carol", 20), queued(5, "bob", 20)], "declined"),      # joins it
        ([queued(6, "alias", 30),                                         # an alias
          ev("f6d", "delivered", 31, f"real@{DOMAIN}", 6,
             orig_recipient=f"alias@{DOMAIN}")], "today"),
        ([ev("f6r", "read", 35, f"real@{DOMAIN}", 6)], "declined"),       # tied to alias@
        ([queued(7, "dave", 40), ev("f7d", "delivered", 41, f"dave@{DOMAIN}", 7),
          ev("f7r", "read", 42, f"dave@{DOMAIN}", 7)], "declined"),       # receipts off
        ([ev("f8p", "online", 45, f"erin@{DOMAIN}", source="dovecot")], "today"),  # presence
        (None, "replay"),                                                 # the first again
        ([ev("f2d2", "delivered", 3, f"carol@{DOMAIN}", 2)], "fast"),     # a known message
        # the mailbox axis and the copies: a copy, an unread, an expunge of one copy,
        # of both, in one batch (folded by statusd on the fast path)
        ([ev("f1c", "copied", 7, f"bob@{DOMAIN}", 1, source="dovecot"),
          ev("f1u", "unread", 8, f"bob@{DOMAIN}", 1, source="dovecot"),
          ev("f1x", "expunged", 9, f"bob@{DOMAIN}", 1, source="dovecot"),
          ev("f1y", "expunged", 10, f"bob@{DOMAIN}", 1, source="dovecot")], "fast"),
        ([ev("f2z", "read", 6, f"zed@{DOMAIN}", 2)], "declined"),         # not used: held
        ([queued(9, "bob", 50), queued(9, "carol", 50)], "fast"),
        ([ev("f9x", "expired", 60, None, queue_id=msg(9)["queue_id"],
             source="postfix")], "today"),                                # message-level
        ([queued(10, "bob", 70)], "fast"),                                # split queued
        ([queued(10, "carol", 70), ev("f10d", "delivered", 71, f"carol@{DOMAIN}", 10)],
         "fast"),
        (plain(11, 80) + [ev("f11z", "read", 86, f"zed@{DOMAIN}", 11)], "declined"),
        ([report(12, 95)], "today"),                                      # held report
        (plain(12, 90), "declined"),                                      # brings it back
        # statusd's own checks: a recipient that is not ASCII (PostgreSQL's lower() is the
        # database's), a message whose events say different things of it
        ([ev("f13q", "queued", 100, f"\u00dcber@{DOMAIN}", 13, sender=f"alice@{DOMAIN}"),
          ev("f13d", "delivered", 101, f"\u00dcBER@{DOMAIN}", 13)], "today"),
        ([queued(14, "bob", 110), dict(queued(14, "carol", 110), size=100)], "today"),
        # small batches (not padded): on the fast path too, or 017's one round trip; the
        # fields reach the tables intact (quotes, backslashes, tabs, line breaks)
        ([dict(e, message_id='<a"b\\c@x>') for e in plain(15, 120)]
         + [ev("f15y", "deferred", 121, f"bob@{DOMAIN}", 15, message_id='<a"b\\c@x>',
               details={"smtp_reply": "451 4.3.0 Try\tagain\r\n later"})], "fast small"),
        ([ev("f15z", "read", 126, f"zed@{DOMAIN}", 15)], "declined small"),
        ([ev("f16d", "delivered", 130, f"carol@{DOMAIN}", None, source="postfix",
             queue_id=msg(15)["queue_id"])], "today small"),
    ]


DUMPS = [
    "SELECT e.event_id, e.event_time, e.log_offset, e.type, m.tracking_id, e.rcpt, e.dkey, "
    "e.rkey, e.xkey, e.copies, e.recipient, e.orig_recipient, e.queue_id, e.message_id, "
    "e.tracking_id, e.source, e.details FROM events e LEFT JOIN messages m ON m.id = e.message "
    "ORDER BY 1, 2",
    "SELECT m.tracking_id, r.recipient, r.orig_recipient, r.dkey, r.rkey, r.xkey, r.copies, "
    "r.displayed, r.queued, r.status, r.details FROM recipients r "
    "JOIN messages m ON m.id = r.message ORDER BY 1, 2",
    "SELECT tracking_id, message_id, queue_id, sender, sasl_user, owner, size, queued_at "
    "FROM messages ORDER BY 1",
    "SELECT name, online_until, last_seen, client FROM presence ORDER BY 1",
    "SELECT r.event_id, m.tracking_id, r.verified, r.status, r.rcpt, r.kind FROM reports r "
    "JOIN messages m ON m.id = r.message ORDER BY 1",
    "SELECT event_id FROM report_held ORDER BY 1",
    "SELECT head FROM log_head",
]
COUNTERS = {"fast": "msgstatus_db_batches_fast_total",
            "declined": "msgstatus_db_batches_fast_declined_total",
            "replay": "msgstatus_db_batches_fast_replay_total"}


class IngestFastTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.dbs = {"fast": cls.pg.database("fast"), "today": cls.pg.database("today")}
        # the reference: schema 018's ingest, as statusd runs it on a database of 018
        old = cls.sb.mkdir("sql-018")
        for name in sorted(os.listdir(os.path.join(paths.source, "sql"))):
            if re.match(r"0(0[1-9]|1[0-8])_.*\.sql$", name):
                shutil.copy(os.path.join(paths.source, "sql", name), old)
        cls.sds = {"fast": cls.sb.statusd(cls.dbs["fast"], name="statusd-fast"),
                   "today": cls.sb.statusd(cls.dbs["today"], name="statusd-today",
                                           settings={"sql_dir": old})}
        for db in cls.dbs.values():
            db.psql(f"INSERT INTO users (name, read_receipts, presence) VALUES "
                    f"('dave@{DOMAIN}', false, false), ('erin@{DOMAIN}', true, true)")
        assert cls.dbs["today"].scalar("SELECT max(version) FROM schema_version") == "18"

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def counters(self, sd):
        text = sd.http("/metrics")[1]
        return {k: int(float(re.search(rf"^{v} (\S+)$", text, re.M).group(1)))
                for k, v in COUNTERS.items()}

    def feed(self, ws):
        """What the live feed sent until it is quiet for a second."""
        docs = []
        ws.settimeout(1.0)
        while True:
            try:
                docs.append(json.loads(ws.recv()))
            except websocket.WebSocketTimeoutException:
                return docs

    def test_same_tables_both_paths(self):
        # the sender's live feed on each: the fast path makes its events itself
        feeds = {}
        for name, sd in self.sds.items():
            feeds[name] = sd.stream(sd.token(f"alice@{DOMAIN}"))
            self.addCleanup(feeds[name].close)
            self.assertEqual(json.loads(feeds[name].recv())["type"], "hello")
        # the first batch runs the federation outbox step (it learns that the site
        # remembers no other site's mail), which needs the staging table: today's path
        for sd in self.sds.values():
            self.assertTrue(all("ack" in r for r in sd.send_events(plain(99, 99))))
        sent = []
        pad = 100
        for i, (events, want) in enumerate(batches()):
            want, small = want.split()[0], want.endswith(" small")
            if events is None:
                events = sent[0]  # a replay of the first batch, its padding too
            elif not small:
                for _ in range(PAD_MESSAGES):
                    events = events + plain(pad, 100 + pad)
                    pad += 1
            sent.append(events)
            took = {}
            for name, sd in self.sds.items():
                before = self.counters(sd)
                replies = sd.send_events(events)
                self.assertTrue(all("ack" in r for r in replies), (i, name, replies))
                after = self.counters(sd)
                took[name] = [k for k in COUNTERS if after[k] != before[k]]
            for q in DUMPS:
                self.assertEqual(self.dbs["fast"].psql(q), self.dbs["today"].psql(q),
                                 f"batch {i}: {q}")
            self.assertEqual(took["today"], [], f"batch {i}: the database has no fast path")
            self.assertEqual(took["fast"], [] if want == "today" else [want], f"batch {i}")
        # the same but for the log's epoch, which is each database's own
        got = {name: [dict(d, epoch=None) for d in self.feed(ws)] for name, ws in feeds.items()}
        logged = self.dbs["fast"].scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message "
            f"WHERE m.owner = 'alice@{DOMAIN}' AND e.log_offset IS NOT NULL")
        self.assertEqual(len(got["fast"]), int(logged))
        self.assertEqual(got["fast"], got["today"])
        held = self.dbs["fast"].psql("SELECT count(*) FROM events WHERE log_offset IS NULL")
        self.assertNotEqual(held, [["0"]], "some events are held")
        self.assertEqual(self.dbs["fast"].psql("SELECT count(*) FROM reports"), [["1"]])


if __name__ == "__main__":
    main()
