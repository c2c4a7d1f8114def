"""A message's timeline (GET /api/v1/messages/{id}/timeline): a recipient who posts read
receipts in a loop adds one entry, not one per request, so they cannot push the later
events of other recipients out of it; a timeline longer than a page says so
(next_cursor) and pages on, every event exactly once, in time order."""
import http.client
import json
import unittest

from e2e import event, main
from msgsandbox import Sandbox

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
PAGE = 1000  # TIMELINE_MAX in statusd/api.c


class TimelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg, settings={"write_rate": "5000", "write_burst": "5000"})
        cls.alice = cls.sd.token(ALICE)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def send(self, evs):
        for k in range(0, len(evs), 2000):
            replies = self.sd.send_events(evs[k:k + 2000])
            self.assertTrue(all("ack" in r for r in replies), replies[:3])

    def page(self, tid, cursor=None):
        path = f"/api/v1/messages/{tid}/timeline" + (f"?cursor={cursor}" if cursor else "")
        code, doc = self.sd.api(path, self.alice)
        self.assertEqual(code, 200, doc)
        return doc

    def whole(self, tid):
        """Every page, following next_cursor; the pages and the events."""
        pages, events, cursor = 0, [], None
        while True:
            doc = self.page(tid, cursor)
            pages += 1
            events += doc["events"]
            cursor = doc["next_cursor"]
            if cursor is None:
                return pages, events
            self.assertEqual(len(doc["events"]), PAGE)
            self.assertLess(pages, 50)

    def test_receipts_in_a_loop_do_not_push_others_out(self):
        self.send([event("queued", tracking_id="flood1", recipient=r, sender=ALICE,
                         sasl_user=ALICE, offset_ms=-60000) for r in (BOB, CAROL)]
                  + [event("delivered", tracking_id="flood1", recipient=r, source="dovecot",
                           offset_ms=-50000) for r in (BOB, CAROL)])
        bob = self.sd.token(BOB)
        conn = http.client.HTTPConnection("127.0.0.1", self.sd.http_port, timeout=10)
        try:
            for _ in range(1001):
                conn.request("POST", "/api/v1/messages/flood1/receipt", body=b"{}",
                             headers={"Authorization": "Bearer " + bob,
                                      "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 202)
        finally:
            conn.close()
        # carol reads it after all of bob's receipts
        self.send([event("read", tracking_id="flood1", recipient=CAROL, source="dovecot")])
        doc = self.page("flood1")
        got = [(e["recipient"], e["status"]) for e in doc["events"]]
        self.assertEqual(got, [(BOB, "queued"), (CAROL, "queued"), (BOB, "delivered"),
                               (CAROL, "delivered"), (BOB, "read"), (CAROL, "read")])
        self.assertIsNone(doc["next_cursor"])
        rc = {r["recipient"]: r["status"] for r in doc["recipients"]}
        self.assertEqual(rc, {BOB: "read", CAROL: "read"})

    def test_a_long_timeline_pages_on(self):
        # 2,500 deferrals of one recipient (each with its own reply: each is shown), then a
        # delivery: three pages, every logged event once, in time order
        evs = [event("queued", tracking_id="long1", recipient=BOB, sender=ALICE,
                     sasl_user=ALICE, offset_ms=-3000000)]
        evs += [event("deferred", tracking_id="long1", recipient=BOB, source="postfix",
                      offset_ms=-2900000 + i * 1000,
                      details={"smtp_reply": f"451 4.7.1 try {i}"}) for i in range(2500)]
        evs.append(event("relayed", tracking_id="long1", recipient=BOB, source="postfix"))
        self.send(evs)
        pages, events = self.whole("long1")
        self.assertEqual(pages, 3)
        self.assertEqual(len(events), 2502)
        offsets = [e["offset"] for e in events]
        self.assertEqual(len(set(offsets)), len(offsets))
        logged = self.pg.scalar("SELECT count(*) FROM events e JOIN messages m ON m.id = e.message"
                                " WHERE m.tracking_id = 'long1' AND e.log_offset IS NOT NULL")
        self.assertEqual(str(len(events)), logged)
        times = [e["timestamp"] for e in events]
        self.assertEqual(times, sorted(times))
        self.assertEqual((events[0]["status"], events[-1]["status"]), ("queued", "relayed"))
        # a cursor is a number from next_cursor
        for bad in ("x", "-1", "0", "1.5", "99999999999999999999"):
            code, doc = self.sd.api(f"/api/v1/messages/long1/timeline?cursor={bad}", self.alice)
            self.assertEqual(code, 400, (bad, doc))


if __name__ == "__main__":
    main()
