"""GET /api/v1/messages/{id}/status and /healthz against statusd on a private PostgreSQL:
the derived status per recipient, whatever order events arrive in, and clear errors."""

from e2e import StatusdTest, event, main, schema_version


class StatusApiTest(StatusdTest):
    def recipients(self, msg_id):
        status, doc = self.sd.status(msg_id)
        self.assertEqual(status, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}

    def test_multi_recipient_message(self):
        t = "multi1"
        common = dict(tracking_id=t, message_id="<multi1@example.org>", queue_id="4Xyz1",
                      sender="alice@example.org", sasl_user="alice@example.org", size=1234)
        rcpts = ["bob@example.net", "carol@example.com", "dave@example.org", "erin@example.net"]
        self.send([event("queued", recipient=r, offset_ms=-5000, **common) for r in rcpts])
        self.send([
            event("relayed", tracking_id=t, recipient="bob@example.net", offset_ms=-4000,
                  details={"mta": "mx.example.net[192.0.2.1]:25", "dsn": "2.0.0",
                           "smtp_reply": "250 2.0.0 Ok: queued as ABC"}),
            event("bounced", tracking_id=t, recipient="carol@example.com", offset_ms=-4000,
                  details={"dsn": "5.1.1", "smtp_reply": "550 5.1.1 no such user"}),
            event("delivered", tracking_id=t, recipient="dave@example.org", offset_ms=-3000),
            event("read", tracking_id=t, recipient="dave@example.org", offset_ms=-2000),
            event("deferred", tracking_id=t, recipient="erin@example.net", offset_ms=-3000,
                  details={"smtp_reply": "451 4.3.0 try later"}),
        ])
        status, doc = self.sd.status(t)
        self.assertEqual(status, 200)
        self.assertEqual(doc["message_id"], "<multi1@example.org>")
        self.assertEqual(doc["sender"], "alice@example.org")
        self.assertEqual(doc["size"], 1234)
        got = {r["recipient"]: (r["status"], r["delivered"], r["displayed"], r["smtp_reply"])
               for r in doc["recipients"]}
        want = {
            "bob@example.net": ("relayed", "unknown", "unknown", "250 2.0.0 Ok: queued as ABC"),
            "carol@example.com": ("bounced", "no", "unknown", "550 5.1.1 no such user"),
            "dave@example.org": ("read", "yes", "yes", None),
            "erin@example.net": ("deferred", "queued", "unknown", "451 4.3.0 try later"),
        }
        self.assertEqual(got, want)
        bob = {r["recipient"]: r for r in doc["recipients"]}["bob@example.net"]
        self.assertEqual(bob["details"]["mta"], "mx.example.net[192.0.2.1]:25")
        self.assertEqual(bob["details"]["dsn"], "2.0.0")
        self.assertTrue(900 <= bob["details"]["latency_ms"] <= 1200, bob["details"])
        self.assertRegex(bob["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_out_of_order_and_duplicates(self):
        # read arrives before delivered and before queued, one event arrives twice
        t = "ooo1"
        q = event("queued", tracking_id=t, offset_ms=-3000, message_id="<ooo1@example.org>",
                  sender="alice@example.org")
        d = event("delivered", tracking_id=t, offset_ms=-2000)
        r = event("read", tracking_id=t, offset_ms=-1000)
        self.send([r])
        # no owner known yet: nobody can see the message
        self.assertEqual(self.sd.status(t)[0], 404)
        self.send([d, q, r, d])
        rc = self.recipients(t)["bob@example.net"]
        self.assertEqual((rc["status"], rc["delivered"], rc["displayed"]), ("read", "yes", "yes"))
        # unread after read, then a late deferred: still unread, displayed stays yes
        self.send([event("unread", tracking_id=t, offset_ms=-500),
                   event("deferred", tracking_id=t, offset_ms=-2500)])
        rc = self.recipients(t)["bob@example.net"]
        self.assertEqual((rc["status"], rc["delivered"], rc["displayed"]),
                         ("unread", "yes", "yes"))
        self.assertEqual(int(self.pg.scalar(
            "SELECT count(*) FROM events WHERE tracking_id = 'ooo1'")), 5)

    def test_lookup_by_message_id(self):
        self.send([event("queued", tracking_id="mid1", message_id="<a/b+c@example.org>",
                         sender="alice@example.org")])
        for ref in ("<a/b+c@example.org>", "a/b+c@example.org", "mid1"):
            status, doc = self.sd.status(ref)
            self.assertEqual(status, 200, f"lookup by {ref!r}: {doc}")
            self.assertEqual(doc["tracking_id"], "mid1")

    def test_errors(self):
        cases = [  # (path, method, status)
            ("/api/v1/messages/nosuchmessage/status", "GET", 404),
            ("/api/v1/messages/%01bad/status", "GET", 400),
            ("/api/v1/messages/x/status", "DELETE", 405),
            ("/api/v1/nothing", "GET", 404),
            ("/healthz", "POST", 405),
            ("/api/v1/messages/events", "POST", 405),
            # the WebSocket feed's path takes only an upgrade, a dashboard file only GET
            ("/api/v1/messages/stream", "GET", 404),
            ("/app.js", "POST", 404),
        ]
        token = self.sd.token("alice@example.org")
        for path, method, want in cases:
            status, doc = self.sd.api(path, token, method=method)
            self.assertEqual(status, want, f"{method} {path}: got {status} {doc}")
            self.assertEqual(doc["status"], want)
            self.assertIn("title", doc)

    def test_healthz(self):
        status, doc = self.sd.http("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(doc["database"], "up")
        self.assertEqual(doc["schema_version"], schema_version())
        self.assertGreater(doc["log"]["epoch"], 0)
        self.assertGreaterEqual(doc["log"]["head"], 0)


if __name__ == "__main__":
    main()
