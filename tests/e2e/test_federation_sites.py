"""Two complete msgstatus sites on loopback, as docs/federation.md describes them: site A is
example.org (alice, carol), site B is example.net (bob). Each is msgsandbox's
MsgstatusSite: its own database on one PostgreSQL server, statusd over HTTPS with a
certificate from the sandbox's private CA, msgstatus-milter, OpenDKIM signing the site's
outgoing mail, Dovecot with the msgstatus plugin, Postfix and msgstatus-logd; both publish
their zone (DKIM key, _msgstatus MSR1 endpoint, MSK1 key made by statusctl) in one private
Knot DNS, and route each other's domain to the other's smtpd.

What works today, and is guarded here:
- discovery: the records are in DNS as federation/resolver.c reads them, and the endpoint
  URL of A's MSR1 record reaches A's statusd over HTTPS by its name with libcurl (curl),
  trusting the sandbox's CA, as B's report sender will;
- correlation: alice@A mails bob@B through A's Postfix (SMTP AUTH); OpenDKIM signs it at A
  (the tracking id included); B's milter verifies the signature and B's statusd keeps an
  inbound row linking B's tag to A's tracking id; bob's delivered and read (an IMAP FETCH)
  are in B's event log under B's tag; alice's live feed at A (WebSocket over TLS) shows
  relayed for bob;
- the same mail without a valid DKIM signature (A's OpenDKIM down: unsigned; signed under
  a selector whose published key is another: broken) leaves no inbound row and no tag;
- a forged Msgstatus-Id (A's real tracking id, sent by a third party straight to B's smtpd,
  From alice@example.org, signed by evil.example, which does not align) leaves none.

Reports from B to A, end to end (B's report sender, A's endpoint, both as deployed):
- alice's live feed at A shows relayed (A's logd), then delivered and read reported by
  example.net, read when bob FETCHes the message at B; A's status API says read;
- the three uncorrelated mails above produce no report at A: a signed mail sent after each
  reaches A as delivered, and B sends its events in order, so none came before it;
- B signing with a key whose record is not published (statusctl key rotate to a selector
  not in DNS): A answers 403 key-unknown, B marks the events failed (its outbox, its
  metrics), A's status stays relayed;
- bob with read receipts off (B's preferences): A gets delivered, never read;
- A's statusd down: B's outbox holds bob's reads and unreads of several messages, retries,
  and after A returns A has each of them once, in B's order; A takes small reports
  (http_body_max 2k) so that the backlog is larger than one report: B's first try gets 413,
  and B splits it (msgstatus_federation_reports_split_total) rather than failing it;
- a request of B's, captured by a TLS proxy in front of A after its return and POSTed
  again as it was, is refused as a replay (409) and changes nothing.
"""
import email
import json
import re
import socket
import ssl
import subprocess
import threading
import time
import unittest

from e2e import main, require_root
from msgsandbox import Sandbox, paths
from msgsandbox.core import free_port, wait_for
from msgsandbox.knot import available as knot_available, dkim_key, dkim_sign
from msgsandbox.opendkim import available as opendkim_available
from msgsandbox.postfix import make_message

ALICE, CAROL = "alice@example.org", "carol@example.org"
BOB = "bob@example.net"
TIMEOUT = 30  # seconds for any one step of mail flow
TAG = re.compile(rb"^Msgstatus-Id:\s*(\S+)\s*$", re.M | re.I)
# lib/msevent.h
QUEUED, RELAYED, DELIVERED, READ, UNREAD = 1, 3, 4, 7, 8
A_BODY_MAX = 2048  # A's http_body_max: about 20 events in one report


class RecordingProxy:
    """A TLS proxy on a port of its own in front of a statusd (its certificate), keeping
    the bytes of every request it forwards and the status of its answer: .requests is a
    list of (request bytes, status). One thread per connection; keep-alive kept."""

    def __init__(self, port, tls, upstream_port):
        self.requests = []
        self.upstream = ("127.0.0.1", upstream_port)
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(tls.cert, tls.key)
        self.client_ctx = tls.ca.context()
        self.sock = socket.create_server(("127.0.0.1", port))
        self.closing = False
        threading.Thread(target=self.accept, daemon=True).start()

    def close(self):
        self.closing = True
        self.sock.close()

    def accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    @staticmethod
    def read_message(f):
        """One HTTP message (head and Content-Length body) from a file; None at EOF."""
        head = b""
        while True:
            line = f.readline()
            if not line:
                return None
            head += line
            if line in (b"\r\n", b"\n"):
                break
        m = re.search(rb"^content-length:\s*(\d+)", head, re.I | re.M)
        return head + (f.read(int(m.group(1))) if m else b"")

    def serve(self, conn):
        try:
            with self.server_ctx.wrap_socket(conn, server_side=True) as c, \
                    self.client_ctx.wrap_socket(socket.create_connection(self.upstream),
                                                server_hostname="127.0.0.1") as up:
                cf, uf = c.makefile("rb"), up.makefile("rb")
                while True:
                    req = self.read_message(cf)
                    if req is None:
                        return
                    up.sendall(req)
                    answer = self.read_message(uf)
                    if answer is None:
                        return
                    self.requests.append((req, int(answer.split(b" ", 2)[1])))
                    c.sendall(answer)
        except (OSError, ssl.SSLError):
            pass


def post_raw(port, ctx, raw):
    """Send raw request bytes to 127.0.0.1:port over TLS; the answer's status and body."""
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                         server_hostname="127.0.0.1") as c:
        c.sendall(raw)
        answer = RecordingProxy.read_message(c.makefile("rb"))
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def crlf(message):
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def txt_tags(text):
    """The tags of an MSR1/MSK1/DKIM1 text: {name: value}."""
    return dict(t.strip().split("=", 1) for t in text.split(";") if "=" in t)


class FederationSitesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        if not knot_available() or not opendkim_available():
            print("skipped: knotd or opendkim is not installed (scripts/deps)")
            raise SystemExit(77)
        cls.sb = Sandbox()
        try:
            t0 = time.monotonic()
            # carol's mail is signed under the selector "wrong", whose record holds s1's key
            cls.a = cls.sb.msgstatus_site(
                "example.org", {ALICE: "alice-secret", CAROL: "carol-secret"},
                dkim_signers=[(CAROL, "wrong"), ("*@example.org", "s1")],
                statusd={"http_body_max": str(A_BODY_MAX)})
            # B's sender trusts the sandbox's CA and retries a site that is down soon
            cls.b = cls.sb.msgstatus_site("example.net", {BOB: "bob-secret"},
                                          routes={"example.org": cls.a},
                                          statusd={"federation_ca_file": cls.sb.ca().cert,
                                                   "federation_retry_max": "2s"})
            cls.a.route("example.net", cls.b)
            cls.startup = time.monotonic() - t0
            print(f"two sites started in {cls.startup:.2f} s", flush=True)
            cls.a.dkim.records["wrong"] = cls.a.dkim.records["s1"].replace(
                "s1._domainkey", "wrong._domainkey", 1)
            cls.a.publish()
            cls.evil_key, evil_record = dkim_key(cls.sb, "evil.example", "s1")
            cls.a.dns.set_zone("evil.example", [evil_record])
        except BaseException:
            cls.sb.close()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "proxy", None) is not None:
            cls.proxy.close()
        cls.sb.close()

    # helpers
    def bob_copy(self, subject):
        """The message with subject in bob's INBOX at B (waits for it): (raw, its tags)."""
        def find():
            for raw in self.b.messages(BOB):
                if f"Subject: {subject}\r\n".encode() in raw:
                    return raw
            return None
        raw = wait_for(f"{subject} in {BOB}'s INBOX at B", find, timeout=TIMEOUT,
                       interval=0.1)
        head = raw.split(b"\r\n\r\n", 1)[0]
        return raw, [t.decode() for t in TAG.findall(head)]

    def inbound(self, origin):
        return self.b.pg.psql("SELECT tracking_id, recipient, dkim_domain, from_domain, aligned, "
                              f"sender FROM inbound WHERE origin_tracking_id = '{origin}'")

    def events(self, site, tid):
        """{event type: count} of the message with tracking id tid in site's event log:
        events that carry it, and those joined to its record (logd's, by queue id)."""
        rows = site.pg.psql(f"SELECT type, count(*) FROM events WHERE tracking_id = '{tid}' "
                            "OR message = (SELECT id FROM messages WHERE tracking_id = "
                            f"'{tid}') GROUP BY type")
        return {int(t): int(n) for t, n in rows}

    def wait_milter_log(self, pattern):
        milter = self.b.milter.child
        try:
            wait_for(f"B's milter to log {pattern}",
                     lambda: re.search(pattern, milter.log()) is not None, timeout=TIMEOUT)
        except Exception:
            self.fail(f"B's milter did not log {pattern!r}:\n{milter.log()[-2000:]}")

    def no_report(self, tid, marker):
        """Nothing about tid reached A, by the time a later signed mail's delivered did."""
        self.marker(marker)
        self.assertEqual(self.reported(tid), [])

    def not_correlated(self, subject, tid, why):
        """B has the message, shows bob no tag, remembers nothing, and says why."""
        raw, tags = self.bob_copy(subject)
        self.assertEqual(tags, [], "neither A's tracking id nor one of B's reaches bob")
        self.wait_milter_log(rf"not remembered \(tracking id {tid}\): {why}")
        self.assertEqual(self.inbound(tid), [])
        return raw

    # tests
    def test_discovery(self):
        """The zones as B's and A's resolver read them, and A's endpoint by its name."""
        def lookup(name):
            res = subprocess.run([paths.binary("tests/dnslookup"), "-s", self.a.dns.server,
                                  name], capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(res.returncode, 0, res.stderr)
            m = re.match(rf"{re.escape(name)} ok 1 \[(.*)\]$", res.stdout.splitlines()[0])
            self.assertIsNotNone(m, res.stdout)
            return txt_tags(m.group(1))
        for site in (self.a, self.b):
            msr = lookup(f"_msgstatus.{site.domain}")
            self.assertEqual((msr["v"], msr["u"]), ("MSR1", site.endpoint))
            self.assertRegex(site.endpoint, rf"^https://status\.{re.escape(site.domain)}"
                             r"\.localhost:\d+/api/v1/federation/reports$")
            keys = [line.split() for line in
                    site.statusctl("key", "list", site.domain).stdout.splitlines()[1:]]
            self.assertEqual(len(keys), 1, keys)
            key = keys[0]
            self.assertEqual(key[:3], [site.domain, "k1", "signing"], key)
            msk = lookup(f"k1._msgstatus-key.{site.domain}")
            self.assertEqual((msk["v"], msk["k"], msk["p"]), ("MSK1", "ed25519", key[-1]))
            dkim = lookup(f"s1._domainkey.{site.domain}")
            self.assertEqual(dkim["v"], "DKIM1")
        # libcurl resolves names under .localhost to loopback itself: A's endpoint host
        # reaches A's statusd, whose certificate (private CA) names it
        host_port = self.a.endpoint.split("/")[2]
        url = f"https://{host_port}/healthz"
        res = subprocess.run(["curl", "-sS", "--cacert", self.a.ca_file, url],
                             capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(json.loads(res.stdout)["database"], "up")
        # a client that offers HTTP/2 gets HTTP/1.1: statusd reads request heads (the
        # federation's signature fields among them) only there
        res = subprocess.run(["curl", "-sS", "--http2", "-o", "/dev/null", "-w",
                              "%{http_version}", "--cacert", self.a.ca_file, url],
                             capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual((res.returncode, res.stdout), (0, "1.1"), res.stderr)
        res = subprocess.run(["curl", "-sS", url], capture_output=True, text=True,
                             timeout=TIMEOUT)
        self.assertEqual(res.returncode, 60, "not trusted without the sandbox's CA")
        res = subprocess.run(["curl", "-sS", "http://" + host_port + "/healthz"],
                             capture_output=True, text=True, timeout=TIMEOUT)
        self.assertNotEqual(res.returncode, 0, "HTTPS only")

    def feed_until(self, ws, tid, status, timeout=TIMEOUT, seen=None):
        """Read alice's live feed until bob's status of tid; returns the events seen (added
        to seen)."""
        seen = [] if seen is None else seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.settimeout(max(0.1, deadline - time.monotonic()))
            doc = json.loads(ws.recv())
            if doc.get("tracking_id") == tid and doc.get("recipient") == BOB:
                seen.append(doc)
                if doc["status"] == status:
                    return seen
        self.fail(f"no {status} for {BOB} on alice's feed at A; seen "
                  f"{[d['status'] for d in seen]}")

    def bob_reads(self, subject, *stores):
        """bob FETCHes every message whose subject has subject at B (read), then each STORE
        of stores, e.g. ("-FLAGS", "\\Seen"), on them all."""
        c = self.b.dovecot.imap(BOB)
        try:
            c.select("INBOX")
            _, data = c.search(None, "SUBJECT", subject)
            ids = data[0].split()
            self.assertTrue(ids, f"{subject} in bob's INBOX")
            for i in ids:
                c.fetch(i, "(BODY[])")
            for op, flags in stores:
                # a later millisecond: at the same one, unread outranks read (lib/status.h)
                time.sleep(0.005)
                c.store(b",".join(ids), op, flags)
        finally:
            c.logout()

    def bob_status_at_a(self, tid):
        code, doc = self.a.statusd.status(tid, ALICE)
        self.assertEqual(code, 200, doc)
        return [r for r in doc["recipients"] if r["recipient"] == BOB][0]

    def reported(self, tid):
        """The types of the events example.net reported to A about tid (A's log)."""
        return sorted(int(t) for t, in self.a.pg.psql(
            "SELECT type FROM events WHERE source = 'federation' AND message = (SELECT id "
            f"FROM messages WHERE tracking_id = '{tid}')"))

    def marker(self, subject):
        """alice mails bob a signed message and waits until A has B's delivered for it, and
        until B holds no row A answered "later" (about a message A did not know yet: its
        own event of it still on the way to its ingest): every event B had for A before
        then has reached A too (B sends in order, but a "later" row after the rows behind
        it)."""
        qid, tid = self.a.send(ALICE, [BOB], subject=subject)
        wait_for(f"B's delivered of {subject} at A",
                 lambda: DELIVERED in self.reported(tid), timeout=TIMEOUT, interval=0.1)
        wait_for("B's rows answered later to go",
                 lambda: self.outbox("failed_at IS NULL AND not_before IS NOT NULL") == [],
                 timeout=TIMEOUT, interval=0.1)
        return tid

    def metrics(self, site):
        code, text = site.statusd.http("/metrics")
        self.assertEqual(code, 200)
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def outbox(self, where):
        """B's outbox rows for example.org: (event_id, failure) in id order."""
        return self.b.pg.psql("SELECT event_id, coalesce(failure, '') FROM fed_outbox WHERE "
                              f"destination = 'example.org' AND {where} ORDER BY id")

    def test_signed_mail_is_correlated(self):
        ws = self.a.statusd.stream(self.a.statusd.token(ALICE))  # over wss://, the CA's
        self.addCleanup(ws.close)
        self.assertEqual(json.loads(ws.recv())["type"], "hello")
        qid, tid = self.a.send(ALICE, [BOB], subject="fed-signed", body="Hello from A.\n")
        raw, tags = self.bob_copy("fed-signed")
        self.assertEqual(len(tags), 1, "exactly one Msgstatus-Id: B's")
        tag = tags[0]
        self.assertNotEqual(tag, tid, "A's tracking id is not shown to bob")
        sig = email.message_from_bytes(raw)["DKIM-Signature"]
        fields = {k.strip(): re.sub(r"\s+", "", v) for k, v in
                  (t.split("=", 1) for t in sig.split(";") if "=" in t)}
        self.assertEqual((fields["d"], fields["s"]), ("example.org", "s1"))
        self.assertIn("msgstatus-id", fields["h"].lower().split(":"),
                      "A's OpenDKIM signs the tracking id")
        wait_for("B's inbound row", lambda: self.inbound(tid), timeout=TIMEOUT)
        self.assertEqual(self.inbound(tid),
                         [[tag, BOB, "example.org", "example.org", "envelope,from", ALICE]])
        # bob reads it at B: the plugin's delivered and read, under B's tag
        c = self.b.dovecot.imap(BOB)
        try:
            c.select("INBOX")
            _, data = c.search(None, "SUBJECT", "fed-signed")
            c.fetch(data[0].split()[-1], "(BODY[])")
        finally:
            c.logout()
        wait_for("bob's delivered and read in B's log",
                 lambda: self.events(self.b, tag).get(READ), timeout=TIMEOUT)
        self.assertEqual(self.events(self.b, tag), {DELIVERED: 1, READ: 1})
        # A: its own record of the message, relayed to B (logd), then B's delivered and
        # read, reported by example.net, live on alice's feed
        seen = self.feed_until(ws, tid, "read")
        statuses = [d["status"] for d in seen]
        self.assertEqual([s for s in statuses if s in ("relayed", "delivered", "read")],
                         ["relayed", "delivered", "read"], statuses)
        for d in seen:
            if d["status"] in ("delivered", "read"):
                self.assertEqual(d["details"].get("reporter"), "example.net", d)
        self.assertEqual(self.events(self.a, tid), {QUEUED: 1, RELAYED: 1, DELIVERED: 1, READ: 1})
        self.assertEqual(self.reported(tid), [DELIVERED, READ])
        self.assertEqual(self.bob_status_at_a(tid)["status"], "read")
        self.assertEqual(self.inbound(tag), [], "B's own tag is no origin id")

    def test_unsigned_mail_is_not_correlated(self):
        """A's OpenDKIM is down: Postfix sends the mail on unsigned (default_action)."""
        self.a.dkim.stop()
        try:
            qid, tid = self.a.send(ALICE, [BOB], subject="fed-unsigned")
            raw = self.not_correlated("fed-unsigned", tid, "no DKIM signature")
            self.assertNotIn(b"DKIM-Signature:", raw)
            self.bob_reads("fed-unsigned")
        finally:
            self.a.dkim.start()
        self.no_report(tid, "fed-unsigned-after")

    def test_wrong_key_is_not_correlated(self):
        """carol's mail is signed under a selector whose DNS record holds another key."""
        qid, tid = self.a.send(CAROL, [BOB], subject="fed-wrong-key")
        raw = self.not_correlated("fed-wrong-key", tid, "no valid DKIM signature")
        self.assertIn(b"s=wrong;", raw)
        self.bob_reads("fed-wrong-key")
        self.no_report(tid, "fed-wrong-key-after")

    def test_forged_tracking_id_is_not_correlated(self):
        """A third party copies a tracking id A really issued (alice's mail to carol) into
        mail from alice@example.org, signs it as evil.example and sends it to B's smtpd."""
        qid, tid = self.a.send(ALICE, [CAROL], subject="fed-local")
        message = crlf(make_message(ALICE, [BOB], subject="fed-forged",
                                    headers={"Msgstatus-Id": tid}))
        signed = dkim_sign(message, "evil.example", "s1", self.evil_key)
        self.assertIn(b"d=evil.example", signed)
        self.b.postfix.send(ALICE, [BOB], message=signed)
        self.not_correlated("fed-forged", tid, "DKIM signature of evil.example, not aligned")
        self.bob_reads("fed-forged")
        self.no_report(tid, "fed-forged-after")

    def test_report_signed_with_unpublished_key_is_refused(self):
        """B signs with a key whose MSK1 record is not in DNS: A answers 403 key-unknown and
        changes nothing; B keeps the events and tries again (a key may not be visible yet,
        docs/federation.md "Answers"), and once it signs with a published key they arrive."""
        a_before = self.metrics(self.a).get(
            'msgstatus_federation_reports_refused_total{reason="key-unknown"}', 0)
        b_before = self.metrics(self.b)["msgstatus_federation_sent_events_refused_total"]
        # k2 is published ahead (to come back to); k9 is made by the rotation, unpublished
        self.b.statusctl("key", "make", "example.net", "k2")
        self.b.publish()
        self.b.statusctl("key", "rotate", "example.net", "k9")
        try:
            qid, tid = self.a.send(ALICE, [BOB], subject="fed-bad-sig")
            raw, tags = self.bob_copy("fed-bad-sig")
            wait_for("A's 403 key-unknown in B's peer state",
                     lambda: "403 key-unknown" in self.b.statusctl("federation",
                                                                   "peers").stdout,
                     timeout=TIMEOUT, interval=0.2)
            waiting = self.outbox(f"failed_at IS NULL AND origin_tracking_id = '{tid}'")
            self.assertEqual(len(waiting), 1, waiting)  # delivered, kept for the next try
            self.assertGreater(self.metrics(self.a).get(
                'msgstatus_federation_reports_refused_total{reason="key-unknown"}', 0),
                a_before)
            self.assertEqual(self.reported(tid), [])
            self.assertEqual(self.bob_status_at_a(tid)["status"], "relayed")
        finally:
            self.b.statusctl("key", "rotate", "example.net", "k2")
        # signed with a published key again, the waiting delivered is taken, nothing failed
        wait_for("bob's delivered at A after the key came back",
                 lambda: self.bob_status_at_a(tid)["status"] == "delivered", timeout=TIMEOUT)
        self.assertEqual(self.metrics(self.b)["msgstatus_federation_sent_events_refused_total"],
                         b_before)
        self.marker("fed-bad-sig-after")

    def test_read_receipts_off_no_read_leaves(self):
        token = self.b.statusd.token(BOB)
        code, doc = self.b.statusd.api("/api/v1/preferences", token, "PUT",
                                       {"read_receipts": False})
        self.assertEqual((code, doc["read_receipts"]), (200, False))
        added = self.metrics(self.b)["msgstatus_federation_outbox_added_total"]
        try:
            qid, tid = self.a.send(ALICE, [BOB], subject="fed-no-receipts")
            self.bob_copy("fed-no-receipts")
            self.bob_reads("fed-no-receipts")
            # B's events of a message can reach its ingest in another order than the
            # messages came (one producer's spool behind another's): wait for the
            # delivered itself, not only for a later message's
            wait_for("bob's delivered at A", lambda: DELIVERED in self.reported(tid),
                     timeout=TIMEOUT, interval=0.1)
            self.marker("fed-no-receipts-after")
        finally:
            self.b.statusd.api("/api/v1/preferences", token, "PUT", {"read_receipts": True})
        self.assertEqual(self.reported(tid), [DELIVERED])
        self.assertEqual(self.bob_status_at_a(tid)["status"], "delivered")
        # the read never went into B's outbox: two rows, the two messages' delivered
        self.assertEqual(self.metrics(self.b)["msgstatus_federation_outbox_added_total"] - added,
                         2)

    def test_outage_backlog_arrives_once_in_order_and_replay_is_refused(self):
        n = 8
        tids = [self.a.send(ALICE, [BOB], subject=f"fed-outage-{i}")[1] for i in range(n)]
        for tid in tids:
            wait_for("B's delivered at A", lambda: DELIVERED in self.reported(tid),
                     timeout=TIMEOUT, interval=0.1)
        tags = [t for t, in self.b.pg.psql(
            "SELECT tracking_id FROM inbound WHERE origin_tracking_id IN (" +
            ",".join(f"'{t}'" for t in tids) + ")")]
        self.assertEqual(len(tags), n)
        b_metrics = self.metrics(self.b)
        self.a.statusd.stop()
        try:
            # bob reads each, marks them all unread, then read: 3 events a message
            self.bob_reads("fed-outage-", ("-FLAGS", "\\Seen"), ("+FLAGS", "\\Seen"))
            want = 3 * n
            wait_for("bob's reads and unreads in B's outbox",
                     lambda: len(self.outbox("failed_at IS NULL")) >= want, timeout=TIMEOUT)
            wait_for("B to try A and fail",
                     lambda: self.metrics(self.b)["msgstatus_federation_reports_retried_total"]
                     > b_metrics["msgstatus_federation_reports_retried_total"],
                     timeout=TIMEOUT)
            # B's order: its outbox's, the order it sends in; each event once (an event
            # the plugin sent again, in the same batch, was there twice: schema 014)
            rows = self.outbox("failed_at IS NULL")
            b_order = [e for e, _ in rows]
            self.assertEqual(len(set(b_order)), len(b_order), "each event once in B's outbox")
            self.assertEqual(sorted(b_order), sorted(e for e, in self.b.pg.psql(
                "SELECT event_id FROM events WHERE type IN (7, 8) AND tracking_id IN (" +
                ",".join(f"'{t}'" for t in tags) + ")")),
                "bob's reads and unreads, held, none failed")
            self.assertGreaterEqual(len(b_order), want)
        finally:
            # A returns on another port behind a proxy that keeps B's requests on the old
            old_port = self.a.statusd.http_port
            self.a.statusd.http_port = free_port()
            self.a.statusd.start()
            type(self).proxy = RecordingProxy(old_port, self.a.statusd.tls,
                                              self.a.statusd.http_port)
        a_order_sql = (
            "SELECT f.event_id FROM events e JOIN fed_events f ON f.stored_id = e.event_id "
            "WHERE e.source = 'federation' AND e.type IN (7, 8) AND e.message IN (SELECT id "
            "FROM messages WHERE tracking_id IN (" + ",".join(f"'{t}'" for t in tids) +
            ")) ORDER BY e.log_offset")
        wait_for("the backlog at A", lambda: len(self.a.pg.psql(a_order_sql)) >= len(b_order),
                 timeout=TIMEOUT, interval=0.2)
        wait_for("B's outbox empty", lambda: not self.outbox("true"), timeout=TIMEOUT)
        self.assertEqual([e for e, in self.a.pg.psql(a_order_sql)], b_order,
                         "each event once, in B's order")
        m = self.metrics(self.b)
        self.assertGreater(m["msgstatus_federation_reports_split_total"],
                           b_metrics.get("msgstatus_federation_reports_split_total", 0),
                           "the backlog was larger than A takes at once (413)")
        self.assertEqual(m["msgstatus_federation_sent_events_refused_total"],
                         b_metrics["msgstatus_federation_sent_events_refused_total"])
        for tid in tids:
            self.assertEqual(self.bob_status_at_a(tid)["status"], "read")
        # one of B's real requests, acknowledged, sent to A again as it was: a replay
        sent = [r for r, code in self.proxy.requests if code == 200]
        self.assertTrue(sent, [code for _, code in self.proxy.requests])
        before = self.a.pg.scalar("SELECT count(*) FROM events")
        code, body = post_raw(self.a.statusd.http_port, self.a.statusd.ssl_context, sent[0])
        self.assertEqual(code, 409, body)
        self.assertEqual(json.loads(body).get("code"), "replay", body)
        self.assertEqual(self.a.pg.scalar("SELECT count(*) FROM events"), before)


if __name__ == "__main__":
    main()
