"""An MDN gives read: the round trip between two complete msgstatus sites (msgsandbox's
MsgstatusSite, OpenDKIM signing each site's outgoing mail, one private Knot DNS), with
msgstatus's own MDN sender at the far site (docs/mdn.md) and the reader of reports at the
near one (docs/reports.md).

Site A is example.org (alice), site B example.net (bob). bob chose to answer read-receipt
requests (preference mdn = always). B reports nothing to A through federation
(federation_policy = default:none), so that the MDN is the only road by which alice can
learn that bob read her mail.

What this guards:
- alice mails bob with Disposition-Notification-To: alice; bob reads it at B (IMAP FETCH
  BODY[]); B's statusd sends exactly one MDN through B's Postfix (mdn_sendmail), which
  B's OpenDKIM signs for example.net, and B's message gets $MDNSent;
- A's milter reads the MDN, finds alice's message by its Original-Message-ID (the MDN has
  no Msgstatus-Id), verifies the signature as aligned with bob's domain: bob's status at A
  becomes read with source mdn, JMAP displayed "yes", live on alice's feed; the report is
  kept as verified (proof dkim) and listed in bob's mdn_report_ids;
- the MDN alice's client asked for still reaches alice's mailbox at A;
- the same MDN about another message, with its signature broken (the body changed after
  B signed it) or signed by a domain that does not align (evil.example): kept as
  unverified, and bob's status stays relayed;
- the MDNs in the shapes of other mail clients (tests/data/mdn, reconstructions: see its
  README.md), each DKIM-signed for example.net by the test's signer and sent to alice at
  A, give the right recipient of the right message read (or deleted), through the
  milter: Original-Recipient over Final-Recipient, Original-Message-ID, or the MDN's
  In-Reply-To when a client writes neither Original-Message-ID nor the headers part.
"""
import os
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

ALICE = "alice@example.org"
BOB = "bob@example.net"
# tests/data/mdn: file, the recipient alice wrote to at B, the Message-ID, the status
FIXTURES = [
    ("thunderbird-de.eml", "tb@example.net", "<fx-thunderbird@example.org>", "read"),
    ("outlook-exchange.eml", "ol@example.net", "<fx-outlook@example.org>", "read"),
    ("outlook-exchange-deleted-de.eml", "ol@example.net", "<fx-outlook-deleted@example.org>",
     "deleted"),
    ("google-workspace.eml", "gm@example.net", "<fx-google@example.org>", "read"),
    ("roundcube-de.eml", "rc@example.net", "<fx-roundcube@example.org>", "read"),
    ("fairemail.eml", "fe@example.net", "<fx-fairemail@example.org>", "read"),
]
TIMEOUT = 30  # seconds for any one step of mail flow
REPORT_JSON = "tests/tools/report_json"
# lib/msevent.h
READ = 7


def crlf(message):
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class MdnRoundTripTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        if not knot_available() or not opendkim_available():
            print("skipped: knotd or opendkim is not installed (scripts/deps)")
            raise SystemExit(77)
        cls.sb = Sandbox()
        try:
            cls.a = cls.sb.msgstatus_site("example.org", {ALICE: "alice-secret"})
            users = {BOB: "bob-secret"}
            users.update({rcpt: "secret" for _, rcpt, _, _ in FIXTURES})
            cls.b = cls.sb.msgstatus_site("example.net", users,
                                          routes={"example.org": cls.a},
                                          statusd={"federation_policy": "default:none"})
            cls.a.route("example.net", cls.b)
            # B's statusd sends its MDNs through B's own Postfix (pickup: non_smtpd_milters,
            # so the msgstatus milter and OpenDKIM see them like any mail of the site)
            sd = cls.b.statusd
            sd.stop()
            sd.settings["mdn_sendmail"] = f"/usr/sbin/sendmail -C {cls.b.postfix.config_dir}"
            sd.start()
            cls.evil_key, evil_record = dkim_key(cls.sb, "evil.example", "s1")
            cls.a.dns.set_zone("evil.example", [evil_record])
            code, doc = sd.api("/api/v1/preferences", sd.token(BOB), method="PUT",
                               body={"mdn": "always"})
            assert code == 200 and doc["mdn"] == "always", doc
        except BaseException:
            cls.sb.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def send(self, subject):
        """alice asks bob for a read receipt: (tracking id at A, Message-ID)."""
        msgid = f"<rt{subject}.{time.monotonic_ns()}@example.org>"
        message = make_message(ALICE, [BOB], subject=subject, message_id=msgid,
                               headers={"Disposition-Notification-To": ALICE})
        qid, tid = self.a.send(ALICE, [BOB], message=message)
        return tid, msgid

    def bob_reads(self, subject):
        wait_for(f"{subject} in bob's INBOX at B",
                 lambda: any(f"Subject: {subject}\r\n".encode() in m
                             for m in self.b.messages(BOB)), timeout=TIMEOUT, interval=0.1)
        c = self.b.dovecot.imap(BOB)
        try:
            c.select("INBOX")
            _, data = c.search(None, "SUBJECT", subject)
            (num,) = data[0].split()
            c.fetch(num, "(BODY[])")
            return c, num
        except BaseException:
            c.logout()
            raise

    def recipient(self, tid, rcpt=BOB):
        code, doc = self.a.statusd.status(tid)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}.get(rcpt, {})

    def wait_status(self, tid, want, rcpt=BOB):
        def done():
            got = self.recipient(tid, rcpt)
            return got if got.get("status") == want else None
        try:
            return wait_for(f"{rcpt} {want} at A", done, timeout=TIMEOUT)
        except Exception:
            self.fail(f"{rcpt} at A: want {want}, have {self.recipient(tid, rcpt)}\n"
                      f"A's milter: {self.a.milter.child.log()[-2500:]}\n"
                      f"B's statusd: {self.b.statusd.child.log()[-1500:]}")

    def reports(self, tid, rcpt=BOB):
        """[(kind, status, verified, proof, report_id)] kept at A about rcpt of tid."""
        rows = self.a.pg.psql(
            "SELECT r.kind, r.status, r.verified, r.proof, r.report_id "
            "FROM reports r JOIN messages m ON m.id = r.message "
            f"WHERE m.tracking_id = '{tid}' AND r.recipient = '{rcpt}' "
            "ORDER BY r.received_at, r.event_id")
        return [(r[0], int(r[1]) if r[1] else None, r[2] == "t", r[3], r[4]) for r in rows]

    def read_events(self, tid):
        """The sources of bob's read events of tid in A's log."""
        return sorted(r[0] for r in self.a.pg.psql(
            "SELECT e.source FROM events e JOIN messages m ON m.id = e.message "
            f"WHERE m.tracking_id = '{tid}' AND e.rcpt = '{BOB}' AND e.type = {READ}"))

    def mdns_for(self, msgid):
        """The MDNs about msgid in alice's INBOX at A."""
        return [m for m in self.a.messages(ALICE)
                if b"disposition-notification" in m and msgid.encode() in m]

    # tests
    def test_mdn_gives_read(self):
        ws = self.a.statusd.stream(self.a.statusd.token(ALICE))
        self.addCleanup(ws.close)
        self.assertEqual(json.loads(ws.recv())["type"], "hello")
        tid, msgid = self.send("rt-read")
        self.wait_status(tid, "relayed")
        c, num = self.bob_reads("rt-read")
        try:
            # B: one decision to send, sent; $MDNSent on bob's copy
            wait_for("B's MDN sent", lambda: self.b.pg.psql(
                f"SELECT state FROM mdn WHERE recipient = '{BOB}' "
                f"AND message_id = '{msgid}'") == [["sent"]], timeout=TIMEOUT)
            wait_for("$MDNSent on bob's copy", lambda: c.noop() and b"$MDNSent" in
                     c.fetch(num, "(FLAGS)")[1][0], timeout=TIMEOUT)
        finally:
            c.logout()
        got = self.wait_status(tid, "read")
        self.assertEqual(got["displayed"], "yes")
        self.assertEqual(self.read_events(tid), ["mdn"], "the MDN alone made bob's read")
        (kind, status, verified, proof, report_id), = self.reports(tid)
        self.assertEqual((kind, status, verified, proof), ("mdn", READ, True, "dkim"))
        self.assertEqual(got["mdn_report_ids"], [report_id])
        # live on alice's feed
        seen = []
        deadline = time.monotonic() + TIMEOUT
        while "read" not in seen and time.monotonic() < deadline:
            ws.settimeout(max(0.1, deadline - time.monotonic()))
            doc = json.loads(ws.recv())
            if doc.get("tracking_id") == tid and doc.get("recipient") == BOB:
                seen.append(doc["status"])
        self.assertIn("read", seen, "bob's read on alice's feed")
        # the MDN alice asked for reaches her, signed by B for bob's domain, and reads
        # (with the project's parser) as what B's statusd wrote
        (mdn,) = wait_for("the MDN in alice's INBOX at A", lambda: self.mdns_for(msgid),
                          timeout=TIMEOUT, interval=0.2)
        head = mdn.split(b"\r\n\r\n", 1)[0]
        self.assertRegex(head, rb"(?im)^DKIM-Signature:.*\bd=example\.net;")
        self.assertRegex(head, rb"(?im)^Return-Path: <>\r?$")
        res = subprocess.run([paths.binary(REPORT_JSON)], input=mdn, capture_output=True,
                             check=True)
        doc = json.loads(res.stdout)
        self.assertEqual(doc["kind"], "mdn", doc)
        self.assertEqual(doc["original_message_id"], msgid, doc)
        # federation reported nothing (federation_policy none): B's outbox is empty
        self.assertEqual(self.b.pg.scalar("SELECT count(*) FROM fed_outbox"), "0")
        self.__class__.genuine = (mdn, msgid)

    def replay(self, genuine, msgid, subject):
        """The genuine MDN rewritten to be about the message msgid (Original-Message-ID
        and References), its Received and Return-Path lines dropped."""
        raw, old = genuine
        lines = raw.split(b"\r\n\r\n", 1)
        head = re.sub(rb"(?im)^(Return-Path|Received|Delivered-To):.*(\r\n[ \t].*)*\r\n", b"",
                      lines[0] + b"\r\n")
        return (head + b"\r\n" + lines[1]).replace(old.encode(), msgid.encode())

    def test_mdn_with_broken_or_unaligned_signature_changes_nothing(self):
        if not hasattr(self.__class__, "genuine"):
            self.test_mdn_gives_read()
        genuine = self.__class__.genuine
        tid, msgid = self.send("rt-forged")
        self.wait_status(tid, "relayed")
        # 1. B's signature, body changed after signing: the body hash fails
        broken = self.replay(genuine, msgid, "rt-forged")
        self.assertIn(b"d=example.net", broken)
        self.a.postfix.send("", [ALICE], message=broken)
        # 2. the same MDN signed by evil.example: valid, not aligned with bob's domain
        unsigned = re.sub(rb"(?im)^DKIM-Signature:.*(\r\n[ \t].*)*\r\n", b"", broken)
        unaligned = dkim_sign(crlf(unsigned), "evil.example", "s1", self.evil_key)
        self.assertIn(b"d=evil.example", unaligned)
        self.assertNotIn(b"d=example.net", unaligned)
        self.a.postfix.send("", [ALICE], message=unaligned)
        try:
            wait_for("two reports about bob", lambda: len(self.reports(tid)) == 2 or None,
                     timeout=TIMEOUT, interval=0.2)
        except Exception:
            self.fail(f"reports: {self.reports(tid)}\n{self.a.milter.child.log()[-2500:]}")
        for kind, status, verified, proof, _ in self.reports(tid):
            self.assertEqual((kind, status, verified, proof), ("mdn", READ, False, "unproven"))
        got = self.recipient(tid)
        self.assertEqual((got["status"], got["displayed"]), ("relayed", "unknown"))
        self.assertEqual(self.read_events(tid), [])
        # neither is lost: both reach alice, for her to judge
        wait_for("both in alice's INBOX", lambda: len(self.mdns_for(msgid)) == 2 or None,
                 timeout=TIMEOUT, interval=0.2)

    def test_client_mdns_give_read(self):
        data = os.path.join(paths.source, "tests", "data", "mdn")
        sent = []
        for name, rcpt, msgid, want in FIXTURES:
            message = make_message(ALICE, [rcpt], subject=f"fx {name}", message_id=msgid,
                                   headers={"Disposition-Notification-To": ALICE})
            qid, tid = self.a.send(ALICE, [rcpt], message=message)
            sent.append((name, rcpt, tid, want))
        for name, rcpt, tid, want in sent:
            self.wait_status(tid, "relayed", rcpt)
            with open(os.path.join(data, name), "rb") as f:
                raw = crlf(f.read())
            signed = dkim_sign(raw, "example.net", "s1", self.b.dkim.keys["s1"])
            self.assertIn(b"d=example.net", signed)
            self.a.postfix.send("", [ALICE], message=signed)
        for name, rcpt, tid, want in sent:
            with self.subTest(fixture=name):
                got = self.wait_status(tid, want, rcpt)
                if want == "read":
                    self.assertEqual(got["displayed"], "yes")
                (kind, status, verified, proof, report_id), = self.reports(tid, rcpt)
                self.assertEqual((kind, verified, proof), ("mdn", True, "dkim"))
                self.assertEqual(got["mdn_report_ids"], [report_id])
                code, doc = self.a.statusd.status(tid)
                self.assertEqual([r["recipient"] for r in doc["recipients"]], [rcpt],
                                 "no other recipient, e.g. a Final-Recipient, appears")


if __name__ == "__main__":
    main()
