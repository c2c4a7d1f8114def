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

Reports from B to A (the report sender and A's endpoint) are not built yet: once they are,
A's status for bob follows B's delivered and read, and the tests of that are added here.
"""
import email
import json
import re
import subprocess
import time
import unittest

from e2e import main, require_root
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for
from msgsandbox.knot import available as knot_available, dkim_key, dkim_sign
from msgsandbox.opendkim import available as opendkim_available
from msgsandbox.postfix import make_message

ALICE, CAROL = "alice@example.org", "carol@example.org"
BOB = "bob@example.net"
TIMEOUT = 30  # seconds for any one step of mail flow
TAG = re.compile(rb"^Msgstatus-Id:\s*(\S+)\s*$", re.M | re.I)
# lib/msevent.h
RELAYED, DELIVERED, READ = 3, 4, 7


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
                dkim_signers=[(CAROL, "wrong"), ("*@example.org", "s1")])
            cls.b = cls.sb.msgstatus_site("example.net", {BOB: "bob-secret"},
                                          routes={"example.org": cls.a})
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
        res = subprocess.run(["curl", "-sS", url], capture_output=True, text=True,
                             timeout=TIMEOUT)
        self.assertEqual(res.returncode, 60, "not trusted without the sandbox's CA")
        res = subprocess.run(["curl", "-sS", "http://" + host_port + "/healthz"],
                             capture_output=True, text=True, timeout=TIMEOUT)
        self.assertNotEqual(res.returncode, 0, "HTTPS only")

    def feed_until(self, ws, tid, status, timeout=TIMEOUT):
        """Read alice's live feed until bob's status of tid; returns the statuses seen."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.settimeout(max(0.1, deadline - time.monotonic()))
            doc = json.loads(ws.recv())
            if doc.get("tracking_id") == tid and doc.get("recipient") == BOB:
                seen.append(doc["status"])
                if doc["status"] == status:
                    return seen
        self.fail(f"no {status} for {BOB} on alice's feed at A; seen {seen}")

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
        # A: its own record of the message, relayed to B (logd), live on alice's feed
        self.assertIn("relayed", self.feed_until(ws, tid, "relayed"))
        self.assertEqual(self.events(self.a, tid).get(RELAYED), 1)
        self.assertEqual(self.inbound(tag), [], "B's own tag is no origin id")

    def test_unsigned_mail_is_not_correlated(self):
        """A's OpenDKIM is down: Postfix sends the mail on unsigned (default_action)."""
        self.a.dkim.stop()
        try:
            qid, tid = self.a.send(ALICE, [BOB], subject="fed-unsigned")
            raw = self.not_correlated("fed-unsigned", tid, "no DKIM signature")
            self.assertNotIn(b"DKIM-Signature:", raw)
        finally:
            self.a.dkim.start()

    def test_wrong_key_is_not_correlated(self):
        """carol's mail is signed under a selector whose DNS record holds another key."""
        qid, tid = self.a.send(CAROL, [BOB], subject="fed-wrong-key")
        raw = self.not_correlated("fed-wrong-key", tid, "no valid DKIM signature")
        self.assertIn(b"s=wrong;", raw)

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


if __name__ == "__main__":
    main()
