"""Mail from another site, correlated only when DKIM authenticates it (docs/federation.md,
"Correlation"): a private Postfix for example.net with msgstatus-milter, Dovecot with the
msgstatus plugin, statusd and PostgreSQL, and a private authoritative DNS server (Knot) on
loopback that holds example.org's and other.example's DKIM keys; the milter's dns_server
points at it. Messages from alice@example.org to bob@example.net carry example.org's
tracking id (Msgstatus-Id) and are signed by OpenDKIM (opendkim-testmsg, libopendkim):

- signed by example.org (d= aligned with From and envelope): remembered, an "inbound" row
  ties our tag to the origin id, and the plugin's delivered for our tag reaches statusd;
- a From in a subdomain of d=: remembered (aligned with From only... and the envelope);
- unsigned; signed and then changed (broken body hash); signed by other.example (a valid
  signature that does not align); signed by a key not in the DNS: nothing remembered;
- in every case the origin's Msgstatus-Id is gone from what bob sees.
"""
import re
import subprocess
import unittest

from e2e import main, require_root
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for
from msgsandbox.knot import available, dkim_key, dkim_sign
from msgsandbox.postfix import make_message

STATUSCTL = paths.binary("statusd/statusctl")

ALICE = "alice@example.org"
BOB = "bob@example.net"
TAG = re.compile(rb"^Msgstatus-Id:\s*(\S+)\s*$", re.M | re.I)


def crlf(message):
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class DkimInboundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        if not available():
            print("skipped: knotd is not installed (scripts/deps)")
            raise SystemExit(77)
        cls.sb = Sandbox()
        cls.org_key, org_rec = dkim_key(cls.sb, "example.org", "s1")
        cls.other_key, other_rec = dkim_key(cls.sb, "other.example", "s1")
        cls.stray_key, _ = dkim_key(cls.sb, "example.org", "gone")  # never published
        cls.dns = cls.sb.knot({"example.org": [org_rec], "other.example": [other_rec]})
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.milter = cls.sb.milter(cls.sd, settings={"dns_server": cls.dns.server})
        cls.dovecot = cls.sb.dovecot(
            users={BOB: "bob-secret"}, mail_plugins=["notify", "msgstatus"],
            plugin_paths=[paths.binary("dovecot-plugin/lib90_msgstatus_plugin.so")],
            plugin=cls.sd.dovecot_plugin_settings())
        cls.postfix = cls.sb.postfix(domains=["example.net"], lmtp=cls.dovecot,
                                     milter=cls.milter,
                                     milter_macro_defaults={"msgstatus_domains": "example.net"})

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def message(self, subject, origin_id, sender=ALICE):
        return crlf(make_message(sender, [BOB], subject=subject, body="Hello from A.\n",
                                 headers={"Msgstatus-Id": origin_id}))

    def deliver(self, subject, message, envelope=ALICE):
        """Send message to bob over plain SMTP (as another site's MTA would); the tags bob
        sees in it once it is in his INBOX."""
        self.postfix.send(envelope, [BOB], message=message)

        def tags():
            c = self.dovecot.imap(BOB)
            try:
                c.select("INBOX", readonly=True)
                typ, data = c.search(None, "SUBJECT", subject)
                ids = data[0].split()
                if not ids:
                    return None
                typ, msg = c.fetch(ids[-1], "(BODY.PEEK[HEADER])")
                return [t.decode() for t in TAG.findall(msg[0][1])]
            finally:
                c.logout()
        wait_for(f"{subject} in bob's INBOX", lambda: tags() is not None, timeout=30)
        return tags()

    def inbound(self, origin_id):
        return self.pg.psql("SELECT tracking_id, recipient, dkim_domain, from_domain, aligned, "
                            "sender FROM inbound "
                            f"WHERE origin_tracking_id = '{origin_id}'")

    def wait_milter_log(self, pattern):
        wait_for(f"the milter to log {pattern}",
                 lambda: re.search(pattern, self.milter.child.log()) is not None, timeout=20)

    def test_signed_by_the_sender_domain_is_remembered(self):
        origin = "orgAligned0000000000000001"
        msg = dkim_sign(self.message("aligned-1", origin), "example.org", "s1", self.org_key)
        self.assertIn(b"DKIM-Signature:", msg)
        tags = self.deliver("aligned-1", msg)
        self.assertEqual(len(tags), 1, "exactly one Msgstatus-Id: ours")
        self.assertNotEqual(tags[0], origin, "the origin's id is not shown to bob")
        wait_for("the inbound row", lambda: len(self.inbound(origin)) == 1, timeout=20)
        self.assertEqual(self.inbound(origin),
                         [[tags[0], BOB, "example.org", "example.org", "envelope,from", ALICE]])
        # the plugin reports bob's delivery under our tag: what federation will report
        wait_for("the plugin's delivered event for our tag", lambda: self.pg.scalar(
            f"SELECT count(*) FROM events WHERE tracking_id = '{tags[0]}' AND type = 4") == "1",
            timeout=20)

    def test_maintenance_expires_old_rows(self):
        """An inbound row goes with the events of its time (event_retention), by statusctl
        maintain as by statusd's own maintenance; a newer one stays."""
        old, new = "orgExpired0000000000000001", "orgKept00000000000000000001"
        for subject, origin in (("expire-1", old), ("expire-2", new)):
            msg = dkim_sign(self.message(subject, origin), "example.org", "s1", self.org_key)
            self.deliver(subject, msg)
            wait_for("the inbound row", lambda: len(self.inbound(origin)) == 1, timeout=20)
        self.pg.psql("UPDATE inbound SET received_at = now() - interval '3650 days' "
                     f"WHERE origin_tracking_id = '{old}'")
        out = subprocess.run([STATUSCTL, "-c", self.sd.config, "maintain"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.inbound(old), [], "older than event_retention: gone")
        self.assertEqual(len(self.inbound(new)), 1, "within event_retention: kept")

    def test_from_subdomain_aligns(self):
        origin = "orgSubdomain00000000000001"
        sender = "alice@mail.example.org"
        msg = dkim_sign(self.message("subdomain-1", origin, sender=sender), "example.org", "s1",
                        self.org_key)
        tags = self.deliver("subdomain-1", msg, envelope=sender)
        self.assertEqual(len(tags), 1)
        wait_for("the inbound row", lambda: len(self.inbound(origin)) == 1, timeout=20)
        self.assertEqual(self.inbound(origin)[0][2:],
                         ["example.org", "mail.example.org", "envelope,from", sender])

    def not_remembered(self, subject, origin, message, why, envelope=ALICE):
        tags = self.deliver(subject, message, envelope=envelope)
        self.assertEqual(tags, [], "no Msgstatus-Id reaches bob, neither theirs nor ours")
        self.wait_milter_log(rf"not remembered \(tracking id {origin}\): {why}")
        self.assertEqual(self.inbound(origin), [])

    def test_unsigned_is_not_remembered(self):
        origin = "orgUnsigned000000000000001"
        self.not_remembered("unsigned-1", origin, self.message("unsigned-1", origin),
                            "no DKIM signature")

    def test_broken_signature_is_not_remembered(self):
        origin = "orgBroken00000000000000001"
        msg = dkim_sign(self.message("broken-1", origin), "example.org", "s1", self.org_key)
        msg = msg.replace(b"Hello from A.", b"Hello from M.")
        self.assertIn(b"Hello from M.", msg)
        self.not_remembered("broken-1", origin, msg, "no valid DKIM signature")

    def test_unaligned_signature_is_not_remembered(self):
        origin = "orgOther000000000000000001"
        msg = dkim_sign(self.message("other-1", origin), "other.example", "s1", self.other_key)
        self.assertIn(b"d=other.example", msg)
        self.not_remembered("other-1", origin, msg,
                            "DKIM signature of other.example, not aligned")

    def test_unpublished_key_is_not_remembered(self):
        origin = "orgNoKey000000000000000001"
        msg = dkim_sign(self.message("nokey-1", origin), "example.org", "gone", self.stray_key)
        self.not_remembered("nokey-1", origin, msg, "no valid DKIM signature")

    def test_forged_tag_on_our_own_domain_is_stripped(self):
        # mail that claims to come from the local domain, with a tag: not tracked (no SASL),
        # not from elsewhere with a valid signature either
        origin = "netForged00000000000000001"
        msg = crlf(make_message("mallory@example.net", [BOB], subject="forged-1",
                                headers={"Msgstatus-Id": origin}))
        self.not_remembered("forged-1", origin, msg, "no DKIM signature",
                            envelope="mallory@example.net")


if __name__ == "__main__":
    main()
