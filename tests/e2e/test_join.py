"""How statusd joins events that carry no tracking id (Postfix's log) to messages: by queue
id within a time window (short queue ids are reused), else by Message-ID; a log line that
arrives before the milter's record waits and is folded in when the record comes, and so
does a Dovecot plugin event that names a message whose sender is not known yet (it must
reach the sender's live feed); an alias's expansion counts for the address the sender
used; addresses compare case-blind."""
import json
import unittest

import websocket  # Debian's python3-websocket

from e2e import event, main
from msgsandbox import Sandbox

DAY = 86400 * 1000
SENDER = "alice@example.org"


class JoinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def send(self, evs):
        replies = self.sd.send_events(evs)
        self.assertTrue(all("ack" in r for r in replies), replies)

    def status(self, tid):
        code, doc = self.sd.status(tid)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}

    def log_event(self, type_, queue_id, recipient, offset_ms=0, **kw):
        ev = event(type_, tracking_id=None, queue_id=queue_id, recipient=recipient,
                   offset_ms=offset_ms, source="postfix", **kw)
        return ev

    def test_log_line_before_the_milter_record(self):
        self.send([self.log_event("relayed", "4XjoinA1", "bob@example.net", -1000,
                                  details={"smtp_reply": "250 2.0.0 Ok", "mta": "mx"})])
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE queue_id = '4XjoinA1' AND message IS NULL"), "1")
        self.send([event("queued", tracking_id="joinA", queue_id="4XjoinA1",
                         recipient="bob@example.net", offset_ms=-2000, sender=SENDER)])
        bob = self.status("joinA")["bob@example.net"]
        self.assertEqual((bob["status"], bob["smtp_reply"]), ("relayed", "250 2.0.0 Ok"))
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE queue_id = '4XjoinA1' AND message IS NULL"), "0")

    def test_plugin_event_before_the_milter_record(self):
        """delivered and read from the plugin, then (statusd was away, the milter's spool
        comes later) the milter's queued: the sender's live feed gets all three, and no
        offset went by while nobody could be told whose event it was."""
        url = (f"ws://127.0.0.1:{self.sd.http_port}/api/v1/messages/stream?access_token="
               + self.sd.token(SENDER))
        ws = websocket.create_connection(url, timeout=10)
        try:
            self.assertEqual(json.loads(ws.recv())["type"], "hello")
            head = int(self.pg.scalar("SELECT head FROM log_head"))
            self.send([event("delivered", tracking_id="early1", recipient="bob@example.org",
                             offset_ms=-1000, source="dovecot"),
                       event("read", tracking_id="early1", recipient="bob@example.org",
                             source="dovecot")])
            self.assertEqual(self.pg.scalar("SELECT head FROM log_head"), str(head),
                             "an event of a message without an owner entered the log")
            self.assertEqual(self.sd.status("early1")[0], 404)
            self.send([event("queued", tracking_id="early1", queue_id="EARLY1",
                             recipient="bob@example.org", offset_ms=-2000, sender=SENDER)])
            got = [json.loads(ws.recv()) for _ in range(3)]
        finally:
            ws.close()
        self.assertEqual([(g["status"], g["offset"]) for g in got],
                         [("queued", head + 1), ("delivered", head + 2), ("read", head + 3)])
        self.assertEqual(self.status("early1")["bob@example.org"]["status"], "read")
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message "
            "WHERE m.tracking_id = 'early1' AND e.log_offset IS NULL"), "0")

    def test_queue_id_reuse(self):
        old, new = -70 * DAY, -60000
        self.send([event("queued", tracking_id="reuseOld", queue_id="ABC123",
                         recipient="x@example.net", offset_ms=old, sender=SENDER),
                   event("queued", tracking_id="reuseNew", queue_id="ABC123",
                         recipient="y@example.net", offset_ms=new, sender=SENDER)])
        self.send([self.log_event("bounced", "ABC123", "x@example.net", old + 60000),
                   self.log_event("relayed", "ABC123", "y@example.net", new + 1000)])
        self.assertEqual(self.status("reuseOld")["x@example.net"]["status"], "bounced")
        self.assertEqual(self.status("reuseNew")["y@example.net"]["status"], "relayed")
        self.assertNotIn("x@example.net", self.status("reuseNew"))

    def test_message_id_fallback(self):
        self.send([event("queued", tracking_id="midJoin", message_id="<mj@example.org>",
                         queue_id="QQ1", recipient="z@example.net", offset_ms=-5000,
                         sender=SENDER)])
        self.send([event("delivered", tracking_id=None, queue_id=None,
                         message_id="<mj@example.org>", recipient="z@example.net",
                         source="postfix")])
        self.assertEqual(self.status("midJoin")["z@example.net"]["status"], "delivered")

    def test_alias_expansion_counts_for_the_original_recipient(self):
        self.send([event("queued", tracking_id="alias1", queue_id="AL1",
                         recipient="team@example.org", offset_ms=-5000, sender=SENDER)])
        self.send([self.log_event("delivered", "AL1", "alice@example.org", -1000,
                                  orig_recipient="team@example.org"),
                   self.log_event("deferred", "AL1", "bob@example.org", -1000,
                                  orig_recipient="team@example.org")])
        rc = self.status("alias1")
        self.assertEqual(sorted(rc), ["team@example.org"])
        self.assertEqual(rc["team@example.org"]["status"], "delivered")

    def test_addresses_compare_without_case(self):
        self.send([event("queued", tracking_id="case1", queue_id="CS1",
                         recipient="Bob@Example.NET", offset_ms=-5000, sender=SENDER)])
        self.send([self.log_event("relayed", "CS1", "bob@example.net", -1000)])
        rc = self.status("case1")
        self.assertEqual(list(rc), ["bob@example.net"])
        self.assertEqual(rc["bob@example.net"]["status"], "relayed")


if __name__ == "__main__":
    main()
