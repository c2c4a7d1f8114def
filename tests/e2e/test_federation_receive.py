"""The report endpoint of the sender's site (docs/federation.md, "Receiving a report"):
statusd at example.org with its PostgreSQL, the reporting domains' keys (made by
"statusctl key make", published by "statusctl key records") served by a private Knot DNS on
loopback, statusd's dns_server pointed at it. Reports are built and signed as another site
would (tests/tools/fedreport: federation/mimistatus + httpsig) and POSTed over HTTP:

- a valid report about a message example.org sent to bob@example.net changes bob's status
  and reaches alice's live feed with its reporter, and her dashboard shows who reported it
  (in a headless Chromium, where there is one); a msgid of a Message-ID works too;
- the same events again are duplicates, stored once;
- signed with the wrong key, with an unpublished or a revoked keyid, by another domain's
  key, unsigned, stale, replayed (also after a restart), for a recipient in another domain,
  with the wrong media type: each gets its status and code and changes nothing;
- an event about a message never sent to that recipient is refused in a 200; one about a
  message this site does not know yet (its own event still on its way to the ingest), or
  for a recipient a message stored less than federation_unknown_window ago does not have
  yet, is named "later" in the 200, the report's other events are stored, and sent again
  once the message is known it is accepted, nothing counted twice; an unknown message's
  events are judged by their code and time first (ignored, or refused, never "later");
- the lookup of a report's events reads by key, however much mail the recipient has;
- a reporting domain over federation_rate/federation_burst gets 429 with Retry-After;
- a client address over federation_client_rate/federation_client_burst gets 429 with
  Retry-After before any DNS lookup (a DNS server of the test's own counts them);
- without federation_endpoint the signed URL is https:// and the Host; a DNS server that
  does not answer is 503 with Retry-After; the default without an endpoint takes no reports;
- old nonces are deleted on a timer, also when no report comes;
- the counters in /metrics.
"""
import hashlib
import http.client
import json
import os
import re
import select
import shutil
import subprocess
import threading
import time
import unittest

from e2e import event, main
from msgsandbox import Sandbox, paths
from msgsandbox import browser as browser_mod
from msgsandbox.core import free_port, wait_for
from msgsandbox.knot import available

from test_api import Sse
from test_resolver import SlowDns

STATUSCTL = paths.binary("statusd/statusctl")
FEDREPORT = paths.binary("tests/fedreport")
ENDPOINT = "https://status.example.org/api/v1/federation/reports"
PATH = "/api/v1/federation/reports"
ALICE, BOB, DAVE = "alice@example.org", "bob@example.net", "dave@example.net"
CAROL = "carol@other.example"
BURST = 25
UNKNOWN_WINDOW = 2  # s, federation_unknown_window


class FederationReceiveTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not available():
            print("skipped: knotd is not installed (scripts/deps)")
            raise SystemExit(77)
        cls.sb = Sandbox()
        cls.keydir = os.path.join(cls.sb.mkdir("fedkeys"), "keys")
        cls.workdir = cls.sb.mkdir("reports")
        cls.ctlconf = os.path.join(cls.sb.mkdir("ctl"), "statusd.conf")
        with open(cls.ctlconf, "w") as f:
            f.write(f"federation_key_dir = {cls.keydir}\n")
        zones = {}
        for domain, selectors in (("example.net", ["s1", "s2"]), ("other.example", ["o1"]),
                                  ("rate.example", ["r1"])):
            for sel in selectors:
                cls.statusctl("key", "make", domain, sel)
            # s2 is made but never published: a key example.net does not vouch for
            zones[domain] = [line for line in cls.records(domain) if not line.startswith("s2.")]
        # a revoked key (empty p=), as "statusctl key retire" publishes it
        zones["example.net"].append(
            'rv._msgstatus-key.example.net. 300 IN TXT "v=MSK1; k=ed25519; p="')
        cls.dns = cls.sb.knot(zones)
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg, settings={
            "dns_server": cls.dns.server, "federation_endpoint": ENDPOINT,
            "federation_rate": "1", "federation_burst": str(BURST),
            "federation_unknown_window": f"{UNKNOWN_WINDOW}s"})
        cls.sd_up = time.time()  # statusd started before this
        cls.alice = cls.sd.token(ALICE)
        replies = cls.sd.send_events(
            [event("queued", tracking_id=t, recipient=r, sender=ALICE, sasl_user=ALICE,
                   message_id=f"<{t}@example.org>", offset_ms=-60000)
             for t, r in (("fm1", BOB), ("fm2", BOB), ("fm3", BOB), ("fm4", BOB),
                          ("fm5", "rob@rate.example"), ("fm6", BOB), ("fm7", BOB),
                          ("fm8", BOB), ("fm9", BOB), ("fm10", BOB))])
        assert all("ack" in r for r in replies), replies

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    @classmethod
    def statusctl(cls, *args):
        return subprocess.run([STATUSCTL, "-c", cls.ctlconf, *args], check=True,
                              capture_output=True, text=True).stdout

    @classmethod
    def records(cls, domain):
        """The zone-file lines of "statusctl key records" for domain."""
        return [line for line in cls.statusctl("key", "records", domain).splitlines()
                if line and not line.startswith(";")]

    def key(self, domain, sel):
        return os.path.join(self.keydir, f"{sel}._msgstatus-key.{domain}.pem")

    def build(self, events, domain="example.net", sel="s1", keyfile=None, created=None,
              expires=None, report_domain=None, url=ENDPOINT):
        """(body, headers) of a report of events: (kind, id, code, event id, recipient,
        time ms) each, from report_domain (default domain), signed with sel's key of domain
        (or keyfile) under sel's keyid."""
        body_file = os.path.join(self.workdir, "report-%s.cbor" % os.urandom(4).hex())
        args = [FEDREPORT, "-k", keyfile or self.key(domain, sel),
                "-i", f"{sel}._msgstatus-key.{domain}", "-u", url,
                "-d", report_domain or domain,
                "-o", body_file]
        if created is not None:
            args += ["-c", str(created), "-e", str(expires)]
        args += ["|".join(str(x) for x in ev) for ev in events]
        res = subprocess.run(args, capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        out = res.stdout
        headers = dict(line.split(": ", 1) for line in out.splitlines())
        with open(body_file, "rb") as f:
            return f.read(), headers

    def post(self, body, headers, sd=None):
        """(status, JSON document, Retry-After) of a POST to the endpoint (of sd)."""
        conn = http.client.HTTPConnection("127.0.0.1", (sd or self.sd).http_port, timeout=15)
        try:
            conn.request("POST", PATH, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            doc = json.loads(data) if data else None
            return resp.status, doc, resp.getheader("Retry-After")
        finally:
            conn.close()

    def report(self, events, **kw):
        return self.post(*self.build(events, **kw))

    def timeline(self, tracking_id):
        status, doc = self.sd.api(f"/api/v1/messages/{tracking_id}/timeline",
                                  token=self.alice)
        self.assertEqual(status, 200, doc)
        return [e for e in doc["events"] if e["source"] == "federation"]

    def bob_status(self, tracking_id):
        status, doc = self.sd.api(f"/api/v1/messages/{tracking_id}/status", token=self.alice)
        self.assertEqual(status, 200, doc)
        return [r for r in doc["recipients"] if r["recipient"] == BOB][0]

    def now_ms(self):
        return int(time.time() * 1000)

    def assert_refused(self, result, status, code, tracking_id="fm2"):
        got_status, doc, _ = result
        self.assertEqual((got_status, doc.get("code")), (status, code), doc)
        self.assertEqual(doc["status"], status)
        self.assertEqual(self.timeline(tracking_id), [])
        self.assertEqual(self.bob_status(tracking_id)["status"], "queued")

    # --- accepted --------------------------------------------------------------------------

    def test_valid_report_reaches_status_and_feed(self):
        sse = Sse(self.sd, token=self.alice)
        try:
            t = self.now_ms()
            status, doc, _ = self.report([("t", "fm1", 1, "ev-1-d", BOB, t - 2000),
                                          ("t", "fm1", 2, "ev-1-r", BOB, t - 1000)])
            self.assertEqual((status, doc), (200, {"accepted": 2, "duplicate": 0, "refused": 0}))
            seen = {}
            while len(seen) < 2:
                _, _, data = sse.next()
                if data and data.get("tracking_id") == "fm1" and data["status"] != "queued":
                    seen[data["status"]] = data
        finally:
            sse.close()
        self.assertEqual(set(seen), {"delivered", "read"})
        for ev in seen.values():
            self.assertEqual(ev["recipient"], BOB)
            self.assertEqual(ev["details"]["reporter"], "example.net")
        self.assertEqual(seen["read"]["details"]["event_id"], "ev-1-r")
        rcpt = self.bob_status("fm1")
        self.assertEqual((rcpt["status"], rcpt["displayed"]), ("read", "yes"))

    def test_duplicate_is_stored_once(self):
        t = self.now_ms()
        events = [("t", "fm3", 1, "ev-3-d", BOB, t - 1000)]
        self.assertEqual(self.report(events)[:2],
                         (200, {"accepted": 1, "duplicate": 0, "refused": 0}))
        # sent again (a new request: new nonce), and twice within one report
        self.assertEqual(self.report(events + events)[:2],
                         (200, {"accepted": 0, "duplicate": 2, "refused": 0}))
        self.assertEqual([e["event_id"] for e in self.timeline("fm3")],
                         [self.timeline("fm3")[0]["event_id"]])

    def test_duplicate_while_the_first_is_stored(self):
        # the same event again while the first report's copy waits for the ingest (held up
        # by a lock on events): a duplicate, not accepted twice
        locker = threading.Thread(target=self.pg.psql, args=(
            "BEGIN; LOCK TABLE events IN EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT;",))
        locker.start()
        try:
            wait_for("the lock on events", lambda: self.pg.scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = 'events' AND l.mode = 'ExclusiveLock' AND l.granted")
                == "1")
            events = [("t", "fm9", 1, "ev-9-d", BOB, self.now_ms())]
            first = self.build(events)
            again = self.build(events)
            answers = {}
            poster = threading.Thread(target=lambda: answers.update(first=self.post(*first)))
            poster.start()
            wait_for("the first report's event taken", lambda: self.pg.scalar(
                "SELECT count(*) FROM fed_events WHERE event_id = 'ev-9-d'") == "1")
            self.assertEqual(self.post(*again)[:2],
                             (200, {"accepted": 0, "duplicate": 1, "refused": 0}))
        finally:
            locker.join()
        poster.join()
        self.assertEqual(answers["first"][:2], (200, {"accepted": 1, "duplicate": 0, "refused": 0}))
        self.assertEqual(len(self.timeline("fm9")), 1)

    def test_message_id_msgid(self):
        t = self.now_ms()
        self.assertEqual(self.report([("m", "<fm4@example.org>", 1, "ev-4-d", BOB, t)])[:2],
                         (200, {"accepted": 1, "duplicate": 0, "refused": 0}))
        self.assertEqual(self.bob_status("fm4")["status"], "delivered")

    def test_not_sent_to_that_recipient_is_refused(self):
        # a message never sent, at an event time and a statusd start older than
        # federation_unknown_window: refused for good; so is a recipient the message did not
        # have, once the message was stored longer ago than that
        stored = float(self.pg.scalar("SELECT extract(epoch FROM created_at) FROM messages"
                                      " WHERE tracking_id = 'fm2'"))
        time.sleep(max(0.0, max(self.sd_up, stored) + UNKNOWN_WINDOW + 0.5 - time.time()))
        t = self.now_ms()
        old = t - (UNKNOWN_WINDOW + 1) * 1000
        status, doc, _ = self.report([("t", "fm2", 2, "ev-2-dave", DAVE, t),
                                      ("t", "never-sent", 2, "ev-2-none", BOB, old),
                                      ("t", "fm2", 7, "ev-2-unknown-code", BOB, t)])
        self.assertEqual((status, doc), (200, {"accepted": 1, "duplicate": 0, "refused": 2}))
        self.assertEqual(self.timeline("fm2"), [])  # code 7: acknowledged, not stored
        self.assertEqual(self.bob_status("fm2")["status"], "queued")

    def test_message_not_known_yet_is_sent_again(self):
        # B's delivered overtakes A's own queued event of the message (the milter hands it
        # to statusd asynchronously): not refused for good, but named "later" in the 200
        # (counted as refused for a sender that reads only the counts); the report's other
        # event is stored
        t = self.now_ms()
        events = [("t", "fm10", 1, "ev-10-d", BOB, t - 500),
                  ("t", "late1", 1, "ev-late1-d", BOB, t)]
        later_before = self.metric("msgstatus_federation_events_later_total")
        refused_before = self.metric("msgstatus_federation_events_refused_total")
        status, doc, _ = self.report(events)
        self.assertEqual((status, doc), (200, {"accepted": 1, "duplicate": 0, "refused": 1,
                                               "later": ["ev-late1-d"]}))
        self.assertEqual([e["status"] for e in self.timeline("fm10")], ["delivered"])
        # A's own event arrives; the sender sends the later event again (here with the
        # other): the one stored is a duplicate, the other is taken now
        replies = self.sd.send_events([event("queued", tracking_id="late1", recipient=BOB,
                                             sender=ALICE, sasl_user=ALICE,
                                             message_id="<late1@example.org>",
                                             offset_ms=-2000)])
        self.assertTrue(all("ack" in r for r in replies), replies)
        self.assertEqual(self.report(events)[:2],
                         (200, {"accepted": 1, "duplicate": 1, "refused": 0}))
        self.assertEqual(self.bob_status("late1")["status"], "delivered")
        self.assertEqual([e["details"]["event_id"] for e in self.timeline("late1")],
                         ["ev-late1-d"])
        self.assertEqual(len(self.timeline("fm10")), 1)
        # counted as answered later, not as refused, and no report refused for it
        self.assertEqual(self.metric("msgstatus_federation_events_later_total"),
                         later_before + 1)
        self.assertEqual(self.metric("msgstatus_federation_events_refused_total"),
                         refused_before)
        _, text = self.sd.http("/metrics")
        self.assertNotIn("message-unknown", text)

    def test_recipient_not_stored_yet_is_sent_again(self):
        # A's queued events of one message can reach two ingest batches: a report for the
        # recipient of the second, between the two, is answered "later" while the message
        # was stored less than federation_unknown_window ago, and taken when it comes again
        t = self.now_ms()
        replies = self.sd.send_events([event("queued", tracking_id="split1", recipient=BOB,
                                             sender=ALICE, sasl_user=ALICE, offset_ms=-1000)])
        self.assertTrue(all("ack" in r for r in replies), replies)
        events = [("t", "split1", 1, "ev-split1-dave", DAVE, t)]
        self.assertEqual(self.report(events)[:2],
                         (200, {"accepted": 0, "duplicate": 0, "refused": 1,
                                "later": ["ev-split1-dave"]}))
        replies = self.sd.send_events([event("queued", tracking_id="split1", recipient=DAVE,
                                             sender=ALICE, sasl_user=ALICE, offset_ms=-1000)])
        self.assertTrue(all("ack" in r for r in replies), replies)
        self.assertEqual(self.report(events)[:2],
                         (200, {"accepted": 1, "duplicate": 0, "refused": 0}))
        self.assertEqual([e["details"]["event_id"] for e in self.timeline("split1")],
                         ["ev-split1-dave"])

    def test_unknown_message_code_and_time_first(self):
        # events about a message this site does not know, within federation_unknown_window:
        # a code this site does not store is acknowledged, a time more than a day ahead is
        # refused (as for a known message), and so is one ahead by more than the window (it
        # would be waited for until its own time passed); none is answered "later"
        t = self.now_ms()
        status, doc, _ = self.report([("t", "late2", 7, "ev-late2-code", BOB, t),
                                      ("t", "late2", 1, "ev-late2-hour", BOB, t + 3600000),
                                      ("t", "late2", 1, "ev-late2-days", BOB,
                                       t + 2 * 86400000)])
        self.assertEqual((status, doc), (200, {"accepted": 1, "duplicate": 0, "refused": 2}))

    def metric(self, name):
        _, text = self.sd.http("/metrics")
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def test_lookup_reads_by_key_whatever_the_statistics(self):
        """The lookup of a report's events (sql/013) probes keys, per event and per message
        found: what it reads does not grow with the recipient's other mail, also while
        PostgreSQL's statistics do not know that mail yet (3,000 new messages to one
        recipient, no ANALYZE)."""
        rcpt, n = "many@example.net", 3000
        tids = [f"fl{os.getpid()}-{i}" for i in range(n)]
        for i in range(0, n, 500):
            replies = self.sd.send_events(
                [event("queued", tracking_id=t, recipient=rcpt, sender=ALICE,
                       sasl_user=ALICE, offset_ms=-60000) for t in tids[i:i + 500]])
            self.assertTrue(all("ack" in r for r in replies), replies[:3])
        k = 20
        msgids = ",".join("01" + hashlib.sha256(b"msgstatus tracking-id\0" + t.encode())
                          .digest()[:31].hex() for t in tids[-k:])
        call = (f"msgstatus_fed_lookup('example.net', '{{{msgids}}}',"
                f" '{{{','.join([rcpt] * k)}}}',"
                f" '{{{','.join(f'ev-fl-{i}' for i in range(k))}}}')")
        # the second call of the session: the first plans the query (catalog reads)
        rows = self.pg.psql(f"SELECT count(*) FROM {call};"
                            f" EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM {call}")
        self.assertEqual(rows[0], [str(k)])
        plan = json.loads("\n".join(r[0] for r in rows[1:]))[0]["Plan"]
        blocks = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
        # about 10 an event: the two msgid indexes and the message, the recipient, fed_events
        self.assertLess(blocks, 30 * k, f"{blocks} blocks for {k} events")
        self.assertEqual(plan["Actual Rows"], k)

    def test_dashboard_shows_the_reporter(self):
        why = browser_mod.available()
        if why:
            self.skipTest(why)
        t = self.now_ms()
        self.assertEqual(self.report([("t", "fm7", 2, "ev-7-r", BOB, t)])[0], 200)
        b = browser_mod.Browser(self.sb, name="browser-alice")
        b.open(f"{self.sd.url}/#token={self.alice}")
        b.wait("fm7 in the list", lambda: b.js(
            "return !!document.querySelector('li.msg[data-id=\"fm7\"]')"))
        b.js("document.querySelector('li.msg[data-id=\"fm7\"] > button').click()")
        row = "li.msg[data-id=\"fm7\"] ol.timeline > li[data-status=\"read\"]"
        b.wait("the read in its timeline",
               lambda: b.js(f"return !!document.querySelector('{row}')"))
        self.assertIn("reported by example.net",
                      b.js(f"return document.querySelector('{row}').textContent"))

    # --- refused as a whole ------------------------------------------------------------------

    def ev(self, eid):
        return [("t", "fm2", 2, eid, BOB, self.now_ms())]

    def test_wrong_key(self):
        self.assert_refused(self.report(self.ev("ev-wk"), keyfile=self.key("example.net", "s2")),
                            401, "signature-invalid")

    def test_unpublished_key(self):
        self.assert_refused(self.report(self.ev("ev-up"), sel="s2"), 403, "key-unknown")

    def test_revoked_key(self):
        self.assert_refused(self.report(self.ev("ev-rv"), sel="rv",
                                        keyfile=self.key("example.net", "s1")),
                            403, "key-revoked")

    def test_other_domains_key(self):
        # a report of example.net's, signed with other.example's (published) key
        self.assert_refused(self.report(self.ev("ev-od"), domain="other.example", sel="o1",
                                        report_domain="example.net"), 403, "domain-mismatch")

    def test_unsigned(self):
        body, headers = self.build(self.ev("ev-us"))
        del headers["Signature"], headers["Signature-Input"]
        self.assert_refused(self.post(body, headers), 401, "signature-missing")

    def test_stale(self):
        now = int(time.time())
        self.assert_refused(self.report(self.ev("ev-st"), created=now - 1000,
                                        expires=now - 700), 401, "stale")

    def test_recipient_in_another_domain(self):
        self.assert_refused(self.report([("t", "fm2", 2, "ev-od", CAROL, self.now_ms())]),
                            403, "recipient-domain")

    def test_wrong_media_type(self):
        body, headers = self.build(self.ev("ev-ct"))
        headers["Content-Type"] = "application/cbor"
        self.assert_refused(self.post(body, headers), 415, "content-type")

    def test_replay(self):
        body, headers = self.build([("t", "fm6", 1, "ev-6-d", BOB, self.now_ms())])
        self.assertEqual(self.post(body, headers)[:2],
                         (200, {"accepted": 1, "duplicate": 0, "refused": 0}))
        before = self.timeline("fm6")
        status, doc, _ = self.post(body, headers)
        self.assertEqual((status, doc["code"]), (409, "replay"), doc)
        # the nonce is in PostgreSQL: a restart does not forget it
        self.sd.stop()
        self.sd.start()
        type(self).sd_up = time.time()
        status, doc, _ = self.post(body, headers)
        self.assertEqual((status, doc["code"]), (409, "replay"), doc)
        self.assertEqual(self.timeline("fm6"), before)

    def test_replay_near_expiry(self):
        # the nonce's row says it has expired by PostgreSQL's clock (which may run ahead of
        # statusd's, or be read a moment later): statusd's clock says the signature lives,
        # so the same request again is still a replay
        body, headers = self.build([("t", "fm6", 1, "ev-6-x", BOB, self.now_ms())])
        self.assertEqual(self.post(body, headers)[0], 200)
        nonce = re.search(r';nonce="([^"]+)"', headers["Signature-Input"]).group(1)
        self.assertEqual(self.pg.psql(
            f"UPDATE fed_nonces SET expires = now() - interval '1 second'"
            f" WHERE nonce = '{nonce}' RETURNING 1"), [["1"]])
        before = self.timeline("fm6")
        status, doc, _ = self.post(body, headers)
        self.assertEqual((status, doc.get("code")), (409, "replay"), doc)
        self.assertEqual(self.timeline("fm6"), before)

    def test_rate_limit(self):
        # built first, then sent as fast as they go: 1 report a second refills the bucket
        reports = [self.build([("t", "fm5", 1, f"ev-5-{i}", "rob@rate.example", self.now_ms())],
                              domain="rate.example", sel="r1") for i in range(BURST + 20)]
        results = []
        for body, headers in reports:
            results.append(self.post(body, headers))
            if results[-1][0] == 429:
                break
        status, doc, retry = results[-1]
        self.assertEqual((status, doc["code"]), (429, "rate-limited"), doc)
        self.assertRegex(retry or "", r"^[1-9][0-9]*$")
        self.assertGreaterEqual(len(results), BURST + 1)  # not before the burst is used
        self.assertTrue(all(r[0] == 200 for r in results[:-1]), results)

    # --- settings and unavailable services ----------------------------------------------

    def other_statusd(self, name, **settings):
        sd = self.sb.statusd(self.pg, name=name, settings=settings)
        self.addCleanup(sd.stop)
        return sd

    def test_without_endpoint_signed_for_host(self):
        # federation_accept = yes without federation_endpoint: the signed URL is https://
        # and the request's Host
        sd = self.other_statusd("statusd-host", federation_accept="yes",
                                dns_server=self.dns.server)
        url = f"https://127.0.0.1:{sd.http_port}{PATH}"
        events = [("t", "fm8", 1, "ev-8-d", BOB, self.now_ms())]
        self.assertEqual(self.post(*self.build(events, url=url), sd=sd)[:2],
                         (200, {"accepted": 1, "duplicate": 0, "refused": 0}))
        status, doc, _ = self.post(*self.build(events), sd=sd)  # signed for another URL
        self.assertEqual((status, doc["code"]), (401, "signature-invalid"), doc)

    def test_dns_unavailable(self):
        sd = self.other_statusd("statusd-nodns", federation_accept="yes",
                                dns_server=f"127.0.0.1@{free_port()}", dns_timeout="300ms")
        url = f"https://127.0.0.1:{sd.http_port}{PATH}"
        status, doc, retry = self.post(*self.build(self.ev("ev-dns"), url=url), sd=sd)
        self.assertEqual((status, doc["code"]), (503, "dns-unavailable"), doc)
        self.assertRegex(retry or "", r"^[1-9][0-9]*$")
        self.assertEqual(self.timeline("fm2"), [])

    def test_client_rate_limit_before_dns(self):
        # one client, reports under made-up keyids: each costs a DNS lookup until the
        # client's burst is used up, then 429 at once, without a lookup
        dns = SlowDns(0)
        self.addCleanup(dns.close)
        sd = self.other_statusd("statusd-clients", federation_accept="yes",
                                dns_server=dns.server, federation_client_rate="1",
                                federation_client_burst="3")
        url = f"https://127.0.0.1:{sd.http_port}{PATH}"
        reports = [self.unpublished(url, f"made-up{i}.example", f"ev-cl{i}")
                   for i in range(6)]
        results = [self.post(*request, sd=sd) for request in reports]
        self.assertEqual([(s, d.get("code")) for s, d, _ in results],
                         [(403, "key-unknown")] * 3 + [(429, "client-rate-limited")] * 3)
        for _, _, retry in results[3:]:
            self.assertRegex(retry or "", r"^[1-9][0-9]*$")
        self.assertEqual(sorted(dns.counts),
                         [f"x._msgstatus-key.made-up{i}.example" for i in range(3)])
        _, text = sd.http("/metrics")
        self.assertRegex(text, r'msgstatus_federation_reports_refused_total'
                               r'\{reason="client-rate-limited"\} 3')
        # logged once for the three (at most a line a minute), with the number refused
        lines = [line for line in sd.child.log().splitlines()
                 if "federation_client_rate" in line]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("refused 1 report(s)", lines[0])

    def test_older_schema_takes_no_report(self):
        # database_migrate = no on a database of an older schema (12: no lookup function,
        # sql/013): the endpoint waits for the ingest's check of the schema like the other
        # workers, so a report is answered 503 storage-unavailable at once, its nonce is not
        # recorded, and what is logged is the schema check's line, not a failing statement
        pg = self.pg.database("older")
        old = self.sb.mkdir("sql-012")
        for name in sorted(os.listdir(os.path.join(paths.source, "sql"))):
            if re.match(r"0(0[1-9]|1[0-2])_.*\.sql$", name):
                shutil.copy(os.path.join(paths.source, "sql", name), old)
        sd = self.sb.statusd(pg, name="statusd-older", settings={"sql_dir": old})
        sd.stop()
        self.assertEqual(pg.scalar("SELECT max(version) FROM schema_version"), "12")
        sd = self.sb.statusd(pg, name="statusd-older2", start=False, settings={
            "sql_dir": old, "database_migrate": "no", "dns_server": self.dns.server,
            "federation_endpoint": ENDPOINT})
        sd.start(wait_db=False)
        self.addCleanup(sd.stop)
        request = self.build([("t", "fm1", 1, "ev-older-d", BOB, self.now_ms())])
        status, doc, retry = self.post(*request, sd=sd)
        self.assertEqual((status, doc.get("code")), (503, "storage-unavailable"), doc)
        self.assertRegex(retry or "", r"^[1-9][0-9]*$")
        self.assertEqual(pg.scalar("SELECT count(*) FROM fed_nonces"), "0")
        wait_for("the schema check logged",
                 lambda: "database schema version is 12" in sd.child.log(), timeout=10)
        self.assertNotIn("msgstatus_fed_lookup", sd.child.log())

    def test_old_nonces_go_without_reports(self):
        # a nonce whose signature expired long ago goes with the next clean-up, which runs
        # every maintenance_interval (when shorter than 10 minutes), not only when a
        # report comes (none does here); a live one stays
        self.pg.psql("INSERT INTO fed_nonces (keyid, nonce, expires) VALUES"
                     " ('x._msgstatus-key.old.example', 'old-nonce', now() - interval '1 hour'),"
                     " ('x._msgstatus-key.old.example', 'live-nonce', now() + interval '5 minutes')")
        self.other_statusd("statusd-expire", federation_accept="yes",
                           dns_server=self.dns.server, maintenance_interval="1s")
        wait_for("the old nonce deleted", lambda: self.pg.scalar(
            "SELECT count(*) FROM fed_nonces WHERE nonce = 'old-nonce'") == "0", timeout=15)
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM fed_nonces WHERE nonce = 'live-nonce'"), "1")

    # --- a sender without a key cannot stall the endpoint ----------------------------------

    def silent_dns_statusd(self, name, timeout="1s"):
        """A statusd whose DNS server never answers: each lookup waits dns_timeout."""
        sd = self.other_statusd(name, federation_accept="yes",
                                dns_server=f"127.0.0.1@{free_port()}", dns_timeout=timeout)
        return sd, f"https://127.0.0.1:{sd.http_port}{PATH}"

    def unpublished(self, url, zone, eid, **kw):
        """A report under a keyid in zone that nobody publishes (signed with a key of
        example.net's; nobody looks further than the DNS)."""
        return self.build(self.ev(eid), domain=zone, sel="x", url=url,
                          keyfile=self.key("example.net", "s1"), **kw)

    def timed_post(self, request, sd):
        start = time.monotonic()
        status, doc, retry = self.post(*request, sd=sd)
        return status, doc.get("code"), retry, time.monotonic() - start

    def test_cheap_checks_before_the_key(self):
        # stale, of another profile, or with a body that is not the signed one: answered at
        # once, without waiting for the DNS
        sd, url = self.silent_dns_statusd("statusd-cheap")
        now = int(time.time())
        stale = self.unpublished(url, "stale.example", "ev-c1", created=now - 1000,
                                 expires=now - 700)
        body, headers = self.unpublished(url, "digest.example", "ev-c2")
        other_body = (body[:-1] + bytes([body[-1] ^ 1]), headers)
        body, headers = self.unpublished(url, "date.example", "ev-c3")
        headers = dict(headers, Date="Sun, 06 Dec 2026 12:00:00 GMT")
        headers["Signature-Input"] = headers["Signature-Input"].replace(
            '"content-digest")', '"content-digest" "date")')
        for request, code in ((stale, "stale"), (other_body, "digest-mismatch"),
                              ((body, headers), "signature-profile")):
            status, got, _, took = self.timed_post(request, sd)
            self.assertEqual((status, got), (401, code))
            self.assertLess(took, 0.9, code)

    def test_silent_zone_is_not_asked_again_at_once(self):
        # a zone whose lookups time out costs dns_timeout once, not once per name in it
        sd, url = self.silent_dns_statusd("statusd-silent")
        results = [self.timed_post(self.unpublished(url, f"n{i}.silent.example", f"ev-z{i}"),
                                   sd) for i in range(4)]
        for status, code, retry, _ in results:
            self.assertEqual((status, code), (503, "dns-unavailable"))
            self.assertRegex(retry or "", r"^[1-9][0-9]*$")
        self.assertGreater(results[0][3], 0.9)
        self.assertTrue(all(r[3] < 0.5 for r in results[1:]), results)

    def test_waiting_reports_are_capped(self):
        # more reports than statusd lets wait (32): the rest are answered 503 busy at once
        sd, url = self.silent_dns_statusd("statusd-busy", timeout="3s")
        requests = [self.unpublished(url, f"zone{i}.example", f"ev-b{i}") for i in range(40)]
        conns, answers = [], []
        try:
            for body, headers in requests:
                conn = http.client.HTTPConnection("127.0.0.1", sd.http_port, timeout=5)
                conn.request("POST", PATH, body=body, headers=headers)
                conns.append(conn)
            waiting = {c.sock: c for c in conns}
            deadline = time.monotonic() + 2.5  # before the first lookup's 3 s are over
            while waiting and time.monotonic() < deadline:
                ready, _, _ = select.select(list(waiting), [], [], 0.1)
                for sock in ready:
                    resp = waiting.pop(sock).getresponse()
                    answers.append((resp.status, json.loads(resp.read()).get("code"),
                                    resp.getheader("Retry-After")))
        finally:
            for conn in conns:  # the waiting ones go
                conn.close()
        self.assertEqual([a for a in answers if a[:2] != (503, "busy")], [])
        self.assertTrue(all(re.match(r"^[1-9][0-9]*$", a[2] or "") for a in answers), answers)
        self.assertEqual(len(answers), 8)
        _, text = sd.http("/metrics")
        self.assertRegex(text, r'msgstatus_federation_reports_refused_total\{reason="busy"\} 8')
        # the reports whose clients went away are skipped (statusd looks at their clients
        # twice a second), not looked up for 3 s each: at most the one under way and the
        # next are
        time.sleep(max(0.0, deadline + 4 - time.monotonic()))
        status, code, _, took = self.timed_post(
            self.unpublished(url, "after.example", "ev-b-after"), sd)
        self.assertEqual((status, code), (503, "dns-unavailable"))
        self.assertLess(took, 8, "waited for the lookups of reports nobody waits for")
        _, text = sd.http("/metrics")
        self.assertRegex(text, r"msgstatus_federation_reports_abandoned_total [1-9]")

    def test_not_accepting(self):
        # the default (auto) without federation_endpoint takes no reports
        sd = self.other_statusd("statusd-closed", dns_server=self.dns.server)
        status, doc, _ = self.post(*self.build(self.ev("ev-closed")), sd=sd)
        self.assertEqual((status, doc["code"]), (404, "not-accepting"), doc)
        self.assertEqual(self.timeline("fm2"), [])

    def test_zz_metrics(self):
        status, text = self.sd.http("/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(text, r"msgstatus_federation_reports_accepted_total [1-9]")
        self.assertRegex(text, r'msgstatus_federation_reports_refused_total\{reason="replay"\} '
                               r'[1-9]')
        self.assertRegex(text, r"msgstatus_federation_events_stored_total [1-9]")


if __name__ == "__main__":
    main()
