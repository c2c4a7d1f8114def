"""Site B's report sender (docs/federation.md, "Sending a report"): a real statusd for
example.net, its PostgreSQL, a private authoritative DNS server (Knot) that publishes the
report endpoints of example.org and example.com (`_msgstatus` MSR1 records), and a small
HTTPS receiver run by this test (Python's http.server, TLS with a certificate of a
private CA made with openssl; statusd's federation_ca_file names the CA).

Events reach statusd on its event socket as the milter and the Dovecot plugin send them:
an `inbound` event ties B's tracking id to the sending site's (remembered mail), then
the plugin's delivered, read, ... for B's tracking id. The receiver records every request
and checks it with tests/tools/fedverify (federation/httpsig and mimistatus, as a
receiver would, under the key statusctl made for example.net):

- delivered and read arrive signed by example.net, and decode to the msgid of the sending
  site's tracking id, the right statuses, recipient and event ids;
- a receiver answering 503 gets the same events again later, in order, then acknowledges;
- an event a 200 names "later" stays and goes again after a second, after a newer event
  of its destination, without counting a failure;
- one answered "later" again and again goes again after a quarter of its time in the
  outbox, at most a minute, and each "later" is counted;
- a receiver answering 401 refuses the report: its rows are marked failed; so does a 401
  signature-invalid problem document, while 403 key-unknown (a key record the receiver
  does not see yet) is sent again and later delivered;
- a reporting domain without a signing key holds up no other: its events wait, the other
  domain's go to the same destination;
- an event that waited longer than federation_expiry is dropped and counted;
- a recipient who turned read receipts off: their read never leaves (delivered does),
  neither from the ingest nor from the outbox, where it waited when they turned it off;
- a destination whose site policy is none (example.com) gets nothing;
- the plugin's events that came before the milter's inbound event go once it came;
- a batch the database rejects is stored one event at a time, and the outbox rows of all
  its stored events are counted in msgstatus_federation_outbox_added_total;
- the same events twice in one batch (a producer sending again) are in the outbox once;
- the pace per destination (federation_send_rate, federation_send_burst): a quiet
  destination gets each new event at once, up to the burst; then its events wait for the
  pace and go together in one report, in order, while another destination's go at once.
"""
import base64
import hashlib
import http.server
import json
import os
import re
import ssl
import subprocess
import threading
import time
import unittest

from e2e import event, main
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for
from msgsandbox.knot import available

STATUSCTL = paths.binary("statusd/statusctl")
FEDVERIFY = paths.binary("tests/fedverify")


def msgid(tracking_id):
    """docs/federation.md, "Message ids"."""
    h = hashlib.sha256(b"msgstatus tracking-id\0" + tracking_id.encode()).digest()
    return "01" + h[:31].hex()


class Receiver(http.server.ThreadingHTTPServer):
    """Records each report request; answers what the test queued (default: 200 with the
    counts), after checking the request with fedverify."""

    def __init__(self, addr, pubkey):
        super().__init__(addr, Handler)
        self.pubkey = pubkey
        self.lock = threading.Lock()
        self.requests = []  # dicts: path, status answered, report (fedverify) or error
        # (status, headers[, problem code[, which events are "later"]]) to answer next
        self.answers = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        arrived = time.time()
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        tag = os.urandom(6).hex()
        hfile = os.path.join(srv.dir, tag + ".headers")
        bfile = os.path.join(srv.dir, tag + ".body")
        with open(hfile, "w") as f:
            for k, v in self.headers.items():
                f.write(f"{k}: {v}\n")
        with open(bfile, "wb") as f:
            f.write(body)
        url = f"https://localhost:{srv.server_address[1]}{self.path}"
        res = subprocess.run([FEDVERIFY, url, hfile, bfile, srv.pubkey], capture_output=True,
                             text=True)
        rec = {"path": self.path, "time": time.time(), "arrived": arrived}
        if res.returncode == 0:
            rec["report"] = json.loads(res.stdout)
        else:
            rec["error"] = res.stderr.strip()
        with srv.lock:
            answer = srv.answers.pop(0) if srv.answers else (200, {})
            status, headers = answer[:2]
            rec["status"] = status
            srv.requests.append(rec)
        ctype = "application/json"
        if len(answer) > 3 and "report" in rec:  # 200 naming these of its events "later"
            events = rec["report"]["events"]
            later = [e["event_id"] for e in events if answer[3](e)]
            rec["later"] = later
            out = json.dumps({"accepted": len(events) - len(later), "duplicate": 0,
                              "refused": len(later), "later": later}).encode()
        elif len(answer) > 2:  # a problem document with a code (docs/federation.md, "Answers")
            ctype = "application/problem+json"
            out = json.dumps({"type": "about:blank", "title": "Refused", "status": status,
                              "code": answer[2], "detail": "test"}).encode()
        elif status == 200 and "report" in rec:
            out = json.dumps({"accepted": len(rec["report"]["events"]), "duplicate": 0,
                              "refused": 0}).encode()
        elif status == 200:
            status, out = 401, b'{"error":"bad signature"}'
        else:
            out = json.dumps({"error": "test"}).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def make_ca(sb):
    """A private CA and a certificate for localhost signed by it (openssl)."""
    d = sb.mkdir("pki")
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = (os.path.join(d, n) for n in ("srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=msgstatus test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class FederationSendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not available():
            print("skipped: knotd is not installed (scripts/deps)")
            raise SystemExit(77)
        cls.sb = Sandbox()
        ca, crt, key = make_ca(cls.sb)
        keydir = cls.sb.path("fedkeys")
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg, start=False, settings={
            "federation_key_dir": keydir,
            "federation_ca_file": ca,
            "federation_policy": "default:delivered,read; example.com:none",
            "federation_batch_delay": "50ms",
            "federation_retry_max": "2s",
        })
        cls.sd.write_config()
        res = subprocess.run([STATUSCTL, "-c", cls.sd.config, "key", "make", "example.net",
                              "s1"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        res = subprocess.run([STATUSCTL, "-c", cls.sd.config, "key", "records", "example.net"],
                             capture_output=True, text=True)
        cls.pubkey = re.search(r"p=([A-Za-z0-9+/=]{44})", res.stdout).group(1)

        cls.rx = Receiver(("127.0.0.1", 0), cls.pubkey)
        cls.rx.dir = cls.sb.mkdir("requests")
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(crt, key)
        cls.rx.socket = tls.wrap_socket(cls.rx.socket, server_side=True)
        cls.rx_thread = threading.Thread(target=cls.rx.serve_forever, daemon=True)
        cls.rx_thread.start()
        port = cls.rx.server_address[1]
        cls.dns = cls.sb.knot({
            "example.org": [f'_msgstatus 300 IN TXT "v=MSR1; '
                            f'u=https://localhost:{port}/org/reports"'],
            "example.com": [f'_msgstatus 300 IN TXT "v=MSR1; '
                            f'u=https://localhost:{port}/com/reports"'],
            "example.edu": [f'_msgstatus 300 IN TXT "v=MSR1; '
                            f'u=https://localhost:{port}/edu/reports"'],
        })
        cls.sd.settings["dns_server"] = cls.dns.server
        cls.sd.start()

    @classmethod
    def tearDownClass(cls):
        cls.rx.shutdown()
        cls.rx.server_close()
        cls.sb.close()

    def setUp(self):
        with self.rx.lock:  # what an earlier test queued and did not use
            self.rx.answers.clear()

    # --- helpers

    def remember(self, tag, origin, rcpt, dkim_domain="example.org"):
        """The milter's inbound event: mail from dkim_domain with the origin id, tagged tag."""
        replies = self.sd.send_events([event(
            "inbound", tracking_id=tag, recipient=rcpt, source="milter",
            sender=f"alice@{dkim_domain}", details={
                "origin_tracking_id": origin, "dkim_domain": dkim_domain,
                "from_domain": dkim_domain, "aligned": "envelope,from"})])
        self.assertTrue(all(r.get("ok", True) and "error" not in r for r in replies), replies)

    def plugin(self, type_, tag, rcpt, offset_ms=0):
        ev = event(type_, tracking_id=tag, recipient=rcpt, offset_ms=offset_ms,
                   source="dovecot" if type_ in ("delivered", "expunged") else "imap")
        replies = self.sd.send_events([ev])
        self.assertNotIn("error", json.dumps(replies), replies)
        return ev["id"]

    def received(self, origin=None, path=None, accepted_only=True):
        """The verified events received (in arrival order), of origin's msgid if given."""
        out = []
        with self.rx.lock:
            reqs = list(self.rx.requests)
        for r in reqs:
            if (accepted_only and r["status"] != 200) or (path and r["path"] != path):
                continue
            for e in r.get("report", {}).get("events", []):
                if e["event_id"] in r.get("later", []):
                    continue  # answered "later": not taken
                if origin is None or e["msgid"] == msgid(origin):
                    out.append(e)
        return out

    def outbox(self, where="true"):
        return self.pg.psql("SELECT destination, event_id, status, failed_at IS NOT NULL"
                            f" FROM fed_outbox WHERE {where} ORDER BY id")

    def metric(self, name):
        status, text = self.sd.http("/metrics")
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def unique(self, name):
        return f"{name}-{os.urandom(6).hex()}"

    # --- tests

    def test_delivered_and_read_arrive_signed(self):
        tag, origin = self.unique("t1"), self.unique("org1")
        self.remember(tag, origin, "bob@example.net")
        d = self.plugin("delivered", tag, "bob@example.net")
        r = self.plugin("read", tag, "bob@example.net", offset_ms=1)
        wait_for("delivered and read at the receiver",
                 lambda: len(self.received(origin)) == 2, timeout=20)
        got = self.received(origin)
        self.assertEqual([(e["status"], e["event_id"], e["recipient"]) for e in got],
                         [(1, d, "bob@example.net"), (2, r, "bob@example.net")])
        with self.rx.lock:
            reqs = [q for q in self.rx.requests if "report" in q and any(
                e["msgid"] == msgid(origin) for e in q["report"]["events"])]
        for q in reqs:
            self.assertEqual(q["path"], "/org/reports")
            self.assertEqual(q["report"]["domain"], "example.net")
            self.assertEqual(q["report"]["keyid"], "s1._msgstatus-key.example.net")
            self.assertEqual(q["report"]["content_type"],
                             "application/vnd.msgstatus.report+cbor")
        wait_for("the outbox emptied",
                 lambda: self.outbox(f"event_id IN ('{d}', '{r}')") == [], timeout=10)
        res = subprocess.run([STATUSCTL, "-c", self.sd.config, "federation", "peers"],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("example.org", res.stdout)
        self.assertIn(f"https://localhost:{self.rx.server_address[1]}/org/reports",
                      res.stdout)
        self.assertGreaterEqual(self.metric("msgstatus_federation_events_sent_total"), 2)

    def test_503_gets_the_events_again_in_order(self):
        tag, origin = self.unique("t2"), self.unique("org2")
        self.remember(tag, origin, "dave@example.net")
        with self.rx.lock:
            self.rx.answers += [(503, {"Retry-After": "1"}), (503, {})]
        ids = [self.plugin("delivered", tag, "dave@example.net"),
               self.plugin("read", tag, "dave@example.net", offset_ms=1),
               self.plugin("unread", tag, "dave@example.net", offset_ms=2)]
        wait_for("all three acknowledged", lambda: len(self.received(origin)) == 3,
                 timeout=30)
        self.assertEqual([e["event_id"] for e in self.received(origin)], ids)
        self.assertEqual([e["status"] for e in self.received(origin)], [1, 2, 0])
        # the refused attempts carried the first events, in order, before any later one
        with self.rx.lock:
            tries = [q for q in self.rx.requests if "report" in q and any(
                e["msgid"] == msgid(origin) for e in q["report"]["events"])]
        self.assertEqual([q["status"] for q in tries][:2], [503, 503])
        self.assertEqual(tries[0]["report"]["events"][0]["event_id"], ids[0])
        self.assertGreaterEqual(tries[1]["time"] - tries[0]["time"], 0.9, "Retry-After: 1")
        seen = [e["event_id"] for q in tries for e in q["report"]["events"]]
        self.assertEqual(sorted(set(seen), key=seen.index), ids)
        self.assertGreaterEqual(self.metric("msgstatus_federation_reports_retried_total"), 2)

    def test_later_is_sent_again_without_failure(self):
        """An event the receiver answers "later" (a message it does not know yet) stays in
        the outbox and goes again after about a second, after the destination's newer
        event that came meanwhile, and is no failure of the destination."""
        tag, origin = self.unique("t12"), self.unique("org12")
        self.remember(tag, origin, "lena@example.net")
        retried = self.metric("msgstatus_federation_reports_retried_total")
        with self.rx.lock:
            self.rx.answers.append((200, {}, None, lambda e: e["msgid"] == msgid(origin)))
        d = self.plugin("delivered", tag, "lena@example.net")
        wait_for("the first report", lambda: len(self.tries(origin)) == 1, timeout=20)
        first = self.tries(origin)[0]
        self.assertEqual(first.get("later"), [d])
        r = self.plugin("read", tag, "lena@example.net", offset_ms=1)
        wait_for("both taken", lambda: len(self.received(origin)) == 2, timeout=20)
        # the read went at once, the delivered again a second after its "later"
        self.assertEqual([e["event_id"] for e in self.received(origin)], [r, d])
        again = [q for q in self.tries(origin)[1:]
                 if any(e["event_id"] == d for e in q["report"]["events"])][0]
        self.assertGreaterEqual(again["time"] - first["time"], 0.9)
        self.assertEqual(again["status"], 200)
        wait_for("the outbox emptied",
                 lambda: self.outbox(f"event_id IN ('{d}', '{r}')") == [], timeout=10)
        self.assertEqual(self.metric("msgstatus_federation_reports_retried_total"), retried)
        self.assertEqual(self.pg.scalar(
            "SELECT failures FROM fed_peers WHERE destination = 'example.org'"), "0")

    def test_later_for_ever_comes_back_less_often(self):
        """A receiver that answers "later" for the same event again and again: the event
        goes again after a quarter of its time in the outbox (at least a second, at most
        a minute), so such a receiver gets it about once a minute, not every second; each
        "later" is counted on the sender's side."""
        tag, origin = self.unique("t15"), self.unique("org15")
        self.remember(tag, origin, "nina@example.net")
        later = self.metric("msgstatus_federation_sent_events_later_total") or 0
        answer = (200, {}, None, lambda e: e["msgid"] == msgid(origin))
        with self.rx.lock:
            self.rx.answers.extend([answer] * 5)
        self.addCleanup(self.drop_answers, answer)
        d = self.plugin("delivered", tag, "nina@example.net")
        self.addCleanup(self.pg.psql, f"DELETE FROM fed_outbox WHERE event_id = '{d}'")
        wait_for("the first report", lambda: len(self.tries(origin)) == 1, timeout=20)
        # as if it had waited four minutes: the next "later" puts it off for a minute
        self.pg.psql("UPDATE fed_outbox SET created_at = now() - interval '4 minutes'"
                     f" WHERE event_id = '{d}'")
        wait_for("sent again", lambda: len(self.tries(origin)) >= 2, timeout=20)
        wait_for("put off again", lambda: self.pg.scalar(
            "SELECT extract(epoch FROM not_before - now()) > 50 FROM fed_outbox"
            f" WHERE event_id = '{d}'") == "t", timeout=10)
        tries = len(self.tries(origin))
        time.sleep(3)
        self.assertEqual(len(self.tries(origin)), tries, "sent again within the minute")
        self.assertEqual(self.outbox(f"event_id = '{d}'"), [["example.org", d, "4", "f"]])
        self.assertGreaterEqual(self.metric("msgstatus_federation_sent_events_later_total"),
                                later + tries)
        self.assertEqual(self.pg.scalar(
            "SELECT failures FROM fed_peers WHERE destination = 'example.org'"), "0")

    def drop_answers(self, answer):
        with self.rx.lock:
            self.rx.answers = [a for a in self.rx.answers if a is not answer]

    def test_401_marks_the_rows_failed(self):
        tag, origin = self.unique("t3"), self.unique("org3")
        self.remember(tag, origin, "erin@example.net")
        with self.rx.lock:
            self.rx.answers.append((401, {}))
        d = self.plugin("delivered", tag, "erin@example.net")
        wait_for("the row marked failed",
                 lambda: self.outbox(f"event_id = '{d}'") == [["example.org", d, "4", "t"]],
                 timeout=20)
        self.assertEqual(self.received(origin), [])
        self.assertGreaterEqual(self.metric("msgstatus_federation_sent_events_refused_total"), 1)
        res = subprocess.run([STATUSCTL, "-c", self.sd.config, "federation", "outbox"],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout, r"example\.org\s+\d+\s+[1-9]")
        # the next event of that destination goes (a refusal blocks nothing)
        r = self.plugin("read", tag, "erin@example.net", offset_ms=1)
        wait_for("the next event acknowledged", lambda: [e["event_id"] for e in
                                                         self.received(origin)] == [r],
                 timeout=20)

    def tries(self, origin):
        """The verified requests (in arrival order) that carried origin's events."""
        with self.rx.lock:
            return [q for q in self.rx.requests if "report" in q and any(
                e["msgid"] == msgid(origin) for e in q["report"]["events"])]

    def test_403_key_unknown_is_sent_again(self):
        """A key record the receiver does not see yet (403 key-unknown) is no reason to give
        up: the events stay, go again, and are delivered once it takes them."""
        tag, origin = self.unique("t10"), self.unique("org10")
        self.remember(tag, origin, "kate@example.net")
        with self.rx.lock:
            self.rx.answers += [(403, {}, "key-unknown"), (403, {}, "key-unknown")]
        d = self.plugin("delivered", tag, "kate@example.net")
        wait_for("delivered after two refusals",
                 lambda: [e["event_id"] for e in self.received(origin)] == [d], timeout=30)
        self.assertEqual([q["status"] for q in self.tries(origin)], [403, 403, 200])
        self.assertEqual(self.outbox(f"event_id = '{d}'"), [])

    def test_401_signature_invalid_marks_the_rows_failed(self):
        tag, origin = self.unique("t11"), self.unique("org11")
        self.remember(tag, origin, "liam@example.net")
        with self.rx.lock:
            self.rx.answers.append((401, {}, "signature-invalid"))
        d = self.plugin("delivered", tag, "liam@example.net")
        wait_for("the row marked failed",
                 lambda: self.outbox(f"event_id = '{d}'") == [["example.org", d, "4", "t"]],
                 timeout=20)
        time.sleep(1.5)  # a retry would have come by now (federation_retry_max 2s)
        self.assertEqual([q["status"] for q in self.tries(origin)], [401])
        self.assertEqual(self.received(origin), [])
        failure = self.pg.scalar(f"SELECT failure FROM fed_outbox WHERE event_id = '{d}'")
        self.assertIn("signature-invalid", failure)

    def test_reporter_without_key_holds_up_no_other(self):
        """B reports for two domains to the same destination; one of them has no signing key:
        its events wait (logged, counted), the other's are delivered."""
        tag, origin = self.unique("t12"), self.unique("org12")
        ntag, norigin = self.unique("t12n"), self.unique("org12n")
        self.remember(ntag, norigin, "mia@nokey.example")
        self.remember(tag, origin, "noah@example.net")
        n = self.plugin("delivered", ntag, "mia@nokey.example")
        d = self.plugin("delivered", tag, "noah@example.net", offset_ms=1)
        r = self.plugin("read", tag, "noah@example.net", offset_ms=2)
        try:
            wait_for("example.net's events, behind nokey.example's",
                     lambda: [e["event_id"] for e in self.received(origin)] == [d, r],
                     timeout=20)
            self.assertEqual(self.outbox(f"event_id = '{n}'"), [["example.org", n, "4", "f"]])
            self.assertEqual(self.received(norigin, accepted_only=False), [])
            self.assertEqual(self.metric("msgstatus_federation_reporters_without_key"), 1)
            # the destination is not in backoff for it
            self.assertEqual(self.pg.scalar(
                "SELECT failures FROM fed_peers WHERE destination = 'example.org'"), "0")
        finally:
            self.pg.psql(f"DELETE FROM fed_outbox WHERE event_id = '{n}'")

    def test_outbox_added_counts_every_event_stored_one_by_one(self):
        """An event the database refuses (here a trigger's error) makes its batch go one event
        at a time: the outbox rows the others added are all counted."""
        tags = [(self.unique("t13"), self.unique("org13"), f"{n}@example.net")
                for n in ("olga", "pete")]
        for tag, origin, rcpt in tags:
            self.remember(tag, origin, rcpt)
        self.pg.psql("CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
                     " BEGIN IF NEW.event_id LIKE 'poison-%' THEN"
                     " RAISE EXCEPTION 'poisoned event'; END IF; RETURN NEW; END $$;"
                     " CREATE TRIGGER test_poison BEFORE INSERT ON events FOR EACH ROW"
                     " EXECUTE FUNCTION test_poison()")
        try:
            added = self.metric("msgstatus_federation_outbox_added_total")
            evs = [event("delivered", tracking_id=tag, recipient=rcpt, source="dovecot")
                   for tag, _, rcpt in tags]
            evs.append(event("delivered", tracking_id=tags[0][0], recipient="quinn@example.net",
                             source="dovecot", id=self.unique("poison")))
            replies = self.sd.send_events(evs)
            self.assertNotIn("error", json.dumps(replies[:2]), replies)
            self.assertIn("poisoned event", json.dumps(replies[2]), replies)
            for (_, origin, _), ev in zip(tags, evs):
                wait_for("the delivered", lambda: [e["event_id"] for e in self.received(
                    origin)] == [ev["id"]], timeout=20)
        finally:
            self.pg.psql("DROP TRIGGER test_poison ON events; DROP FUNCTION test_poison()")
        self.assertIn("storing its events one by one", self.sd.child.log())
        self.assertEqual(self.metric("msgstatus_federation_outbox_added_total") - added, 2)

    def test_opted_out_read_never_leaves(self):
        tag, origin = self.unique("t4"), self.unique("org4")
        res = subprocess.run([STATUSCTL, "-c", self.sd.config, "prefs", "carol@example.net",
                              "--read-receipts", "no"], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        added = self.metric("msgstatus_federation_outbox_added_total")
        self.remember(tag, origin, "carol@example.net")
        self.plugin("read", tag, "carol@example.net")
        self.plugin("unread", tag, "carol@example.net", offset_ms=1)
        self.plugin("expunged", tag, "carol@example.net", offset_ms=2)
        d = self.plugin("delivered", tag, "carol@example.net", offset_ms=-1)
        wait_for("carol's delivered", lambda: len(self.received(origin)) >= 1, timeout=20)
        time.sleep(1)  # anything else would have gone with it or right after
        self.assertEqual([(e["status"], e["event_id"]) for e in self.received(
            origin, accepted_only=False)], [(1, d)])
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM fed_outbox WHERE recipient = 'carol@example.net'"
            " AND status <> 4"), "0")
        # not even into the outbox: the ingest added the delivered only
        self.assertEqual(self.metric("msgstatus_federation_outbox_added_total") - added, 1)

    def test_opting_out_withdraws_waiting_reads(self):
        """A read waiting in the outbox (its destination answered 503) does not leave once
        its recipient turned read receipts off; the delivered still does."""
        tag, origin = self.unique("t7"), self.unique("org7")
        self.remember(tag, origin, "hal@example.net")
        with self.rx.lock:
            self.rx.answers.append((503, {"Retry-After": "2"}))
        d = self.plugin("delivered", tag, "hal@example.net")
        self.plugin("read", tag, "hal@example.net", offset_ms=1)
        wait_for("the 503", lambda: any(q["status"] == 503 for q in self.rx.requests),
                 timeout=20)
        res = subprocess.run([STATUSCTL, "-c", self.sd.config, "prefs", "hal@example.net",
                              "--read-receipts", "no"], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        wait_for("hal's delivered", lambda: len(self.received(origin)) >= 1, timeout=20)
        time.sleep(0.5)
        self.assertEqual([(e["status"], e["event_id"]) for e in self.received(origin)],
                         [(1, d)])
        self.assertEqual(self.outbox("recipient = 'hal@example.net'"), [])

    def test_events_ahead_of_their_inbound_one(self):
        """After an outage the producers' spools may bring the plugin's events before the
        milter's inbound event: they go out once the mail is remembered, in their order."""
        tag, origin = self.unique("t8"), self.unique("org8")
        d = self.plugin("delivered", tag, "ivan@example.net")
        r = self.plugin("read", tag, "ivan@example.net", offset_ms=1)
        time.sleep(0.3)
        self.assertEqual(self.outbox("recipient = 'ivan@example.net'"), [])
        self.remember(tag, origin, "ivan@example.net", dkim_domain="EXAMPLE.org")
        wait_for("delivered and read", lambda: len(self.received(origin)) == 2, timeout=20)
        self.assertEqual([(e["status"], e["event_id"]) for e in self.received(origin)],
                         [(1, d), (2, r)])

    def test_expired_events_are_dropped_and_counted(self):
        """An event that waited longer than federation_expiry (its destination did not take
        it) is dropped before the next attempt, and counted."""
        tag, origin = self.unique("t9"), self.unique("org9")
        self.remember(tag, origin, "judy@example.net")
        expired = self.metric("msgstatus_federation_expired_events_total")
        with self.rx.lock:
            self.rx.answers.append((503, {"Retry-After": "2"}))
        d = self.plugin("delivered", tag, "judy@example.net")
        wait_for("the 503", lambda: any(q["status"] == 503 and any(
            e["event_id"] == d for e in q.get("report", {}).get("events", []))
            for q in self.rx.requests), timeout=20)
        self.pg.psql(f"UPDATE fed_outbox SET created_at = now() - interval '4 days'"
                     f" WHERE event_id = '{d}'")
        wait_for("the expiry counted", lambda: self.metric(
            "msgstatus_federation_expired_events_total") == expired + 1, timeout=20)
        self.assertEqual(self.outbox(f"event_id = '{d}'"), [])
        time.sleep(2.5)
        self.assertEqual(self.received(origin), [])

    def test_policy_none_sends_nothing(self):
        tag, origin = self.unique("t5"), self.unique("com5")
        added = self.metric("msgstatus_federation_outbox_added_total")
        # d= as the signer wrote it, in upper case: the policy still applies
        self.remember(tag, origin, "frank@example.net", dkim_domain="Example.COM")
        self.plugin("delivered", tag, "frank@example.net")
        self.plugin("read", tag, "frank@example.net", offset_ms=1)
        # a marker for example.org after them: once it arrived, example.com's would have
        mtag, morigin = self.unique("t5m"), self.unique("org5")
        self.remember(mtag, morigin, "frank@example.net")
        self.plugin("delivered", mtag, "frank@example.net", offset_ms=2)
        wait_for("the marker", lambda: len(self.received(morigin)) == 1, timeout=20)
        time.sleep(0.5)
        self.assertEqual(self.received(origin, accepted_only=False), [])
        with self.rx.lock:
            self.assertEqual([q for q in self.rx.requests if q["path"] == "/com/reports"], [])
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM fed_outbox WHERE destination = 'example.com'"), "0")
        # not even into the outbox: the ingest added the marker only
        self.assertEqual(self.metric("msgstatus_federation_outbox_added_total") - added, 1)

    def test_an_event_sent_twice_in_one_batch_is_in_the_outbox_once(self):
        """A producer that sends events again (after a lost acknowledgement, from its spool)
        can bring the same event twice into one batch of the ingest: each event id goes to
        the outbox once, is counted once, and the copy of an expunge sent twice counts once
        (one copy of the message is left: no deleted)."""
        tag, origin = self.unique("t14"), self.unique("org14")
        rcpt = "rita@example.net"
        self.remember(tag, origin, rcpt)
        evs = [event("delivered", tracking_id=tag, recipient=rcpt, source="dovecot"),
               event("read", tracking_id=tag, recipient=rcpt, source="imap", offset_ms=1),
               event("copied", tracking_id=tag, recipient=rcpt, source="imap", offset_ms=2),
               event("expunged", tracking_id=tag, recipient=rcpt, source="dovecot",
                     offset_ms=3)]
        d, r = evs[0]["id"], evs[1]["id"]
        added = self.metric("msgstatus_federation_outbox_added_total")
        replies = self.sd.send_events(evs + [evs[0], evs[1], evs[3]])
        self.assertNotIn("error", json.dumps(replies), replies)
        wait_for("delivered and read", lambda: len(self.received(origin)) >= 2, timeout=20)
        time.sleep(1)  # a second copy would have gone with them or right after
        self.assertEqual([(e["status"], e["event_id"]) for e in self.received(
            origin, accepted_only=False)], [(1, d), (2, r)])
        self.assertEqual(self.metric("msgstatus_federation_outbox_added_total") - added, 2)

    def reports_to(self, path, origin):
        """(arrival time, [event ids of origin]) of each accepted report to path."""
        with self.rx.lock:
            reqs = [q for q in self.rx.requests if q["path"] == path and q["status"] == 200]
        out = []
        for q in reqs:
            ids = [e["event_id"] for e in q.get("report", {}).get("events", [])
                   if e["msgid"] == msgid(origin)]
            if ids:
                out.append((q["arrived"], ids))
        return out

    def test_pace_per_destination(self):
        """federation_send_rate 1, federation_send_burst 1, no batch delay: example.edu's
        first event goes at once; the next three, sent one by one, wait for the pace (a
        second after the first) and go together, in order; an event for example.org
        meanwhile does not wait for them."""
        self.sd.stop()
        saved = dict(self.sd.settings)
        self.sd.settings.update({"federation_send_rate": "1", "federation_send_burst": "1",
                                 "federation_batch_delay": "0ms"})
        self.sd.start()
        try:
            self.check_pace()
        finally:
            self.sd.stop()
            self.sd.settings.clear()
            self.sd.settings.update(saved)
            self.sd.start()

    def check_pace(self):
        tag, origin = self.unique("t14"), self.unique("edu14")
        otag, oorigin = self.unique("t14o"), self.unique("org14")
        rcpt = "rita@example.net"
        self.remember(tag, origin, rcpt, dkim_domain="example.edu")
        self.remember(otag, oorigin, rcpt)
        # a quiet destination: a new event goes at once
        sent = time.time()
        ids = [self.plugin("delivered", tag, rcpt)]
        wait_for("the delivered at example.edu",
                 lambda: self.reports_to("/edu/reports", origin), timeout=20)
        first, got = self.reports_to("/edu/reports", origin)[0]
        self.assertEqual(got, ids)
        self.assertLess(first - sent, 0.8, "a quiet destination waits for nothing")
        # its bucket is empty: the next three wait for the pace, then go in one report
        busy_from = time.time()
        ids.append(self.plugin("read", tag, rcpt, offset_ms=1))
        time.sleep(0.2)  # without a pace, this one would go alone by now
        o = self.plugin("delivered", otag, rcpt)
        ids.append(self.plugin("unread", tag, rcpt, offset_ms=2))
        ids.append(self.plugin("read", tag, rcpt, offset_ms=3))
        wait_for("the three at example.edu",
                 lambda: sum(len(r[1]) for r in self.reports_to("/edu/reports", origin)) == 4,
                 timeout=20)
        reports = self.reports_to("/edu/reports", origin)
        self.assertEqual([r[1] for r in reports], [ids[:1], ids[1:]])
        # one report a second: the second went a second after the first was sent, and that
        # was after `sent` (the first's arrival is no bound: it may have waited for its
        # connection, the second not)
        self.assertGreaterEqual(reports[1][0] - sent, 0.98, "one report a second")
        # example.org's event went at once, while example.edu's waited
        wait_for("example.org's event", lambda: self.reports_to("/org/reports", oorigin),
                 timeout=20)
        org_arrived, org_ids = self.reports_to("/org/reports", oorigin)[0]
        self.assertEqual(org_ids, [o])
        self.assertLess(org_arrived, reports[1][0])
        self.assertLess(org_arrived - busy_from, 0.8)

    def test_deleted_only_when_no_copy_is_left(self):
        tag, origin = self.unique("t6"), self.unique("org6")
        self.remember(tag, origin, "gina@example.net")
        d = self.plugin("delivered", tag, "gina@example.net")
        self.plugin("copied", tag, "gina@example.net", offset_ms=1)
        self.plugin("expunged", tag, "gina@example.net", offset_ms=2)  # one copy left
        x = self.plugin("expunged", tag, "gina@example.net", offset_ms=3)  # none left
        wait_for("delivered and deleted", lambda: len(self.received(origin)) == 2, timeout=20)
        self.assertEqual([(e["status"], e["event_id"]) for e in self.received(origin)],
                         [(1, d), (4, x)])


if __name__ == "__main__":
    main()
