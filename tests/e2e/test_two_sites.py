"""Two mail sites on loopback, and the delivery status notifications (RFC 3461 requests,
RFC 3464 reports) that travel between them, as they do today.

Site A (example.org) runs msgstatus: Postfix with msgstatus-milter, which asks for DSNs
for mail from example.org ({msgstatus_dsn_domains}), msgstatus-logd, statusd, Dovecot
with the plugin. Sites B (example.net) and C (example.com) are plain Postfix 3.7 +
Dovecot sites with no msgstatus at all (msgsandbox.site). A routes their domains to their
smtpd ports, and they route example.org back to A's, so that the reports their Postfix
sends reach A as any remote site's would.

What this guards:
- alice@A mails bob@B. A's status for bob is relayed (B said 250). B delivers it into
  bob's mailbox, with the tracking id. A's Postfix passes the DSN request on (B announces
  DSN) and sends no notice of its own. B's Postfix sends a success DSN that lands in
  alice's mailbox at A: Original-Envelope-Id is the ENVID the milter put on MAIL FROM,
  the tracking id and the mac of A's secret (milter/envmac.h),
  Original-Recipient the ORCPT it added, Action: delivered (B sets lmtp_assume_final =
  yes, so that Dovecot's 250 counts as final delivery), only the headers returned
  (RET=HDRS); msgstatus's report parser (reports/, as tests/tools/report_json) reads it
  as bob, delivered.
- C keeps Postfix's default lmtp_assume_final = no: its success notice for carol says
  Action: relayed (Dovecot's LMTP does not announce DSN, so Postfix cannot tell it is
  the final hop), and the parser reads relayed. A Postfix + Dovecot site that did not
  change that setting never says "delivered".
- A recipient that B accepts at RCPT TO and then bounces (B's Dovecot has no such user):
  A's status says relayed, and B's failure DSN (Action: failed, B's 550) reaches alice,
  parsed as bounced.

Here A's milter does not read the reports (read_reports = no), so that every one of them
reaches alice's mailbox as it came: this is the round trip that reading them builds on.
tests/e2e/test_reports.py is the same set-up with reading on: statuses follow the
reports, and the success notices msgstatus asked for no longer reach alice's mailbox.
"""
import email
import email.policy
import email.utils
import json
import re
import subprocess
import unittest

from e2e import mail_chain, main, require_root
from msgsandbox import paths
from msgsandbox.core import wait_for

ALICE = "alice@example.org"
AUTH = (ALICE, "alice-secret")
BOB = "bob@example.net"    # at site B
CAROL = "carol@example.com"  # at site C
NOBODY = "nobody@example.net"  # accepted by B's smtpd, unknown to B's Dovecot
TIMEOUT = 30  # seconds for any one step of mail flow


def parse(raw):
    """A message as read over IMAP (CRLF) as an email.message.Message, with LF."""
    return email.message_from_bytes(raw.replace(b"\r\n", b"\n"),
                                    policy=email.policy.compat32)


def status_groups(msg):
    """The field groups of a report's message/delivery-status part: [per-message,
    per-recipient...] as email.message.Message objects; None if it has none."""
    if msg.get_content_type() != "multipart/report":
        return None
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return part.get_payload()
    return None


class TwoSitesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        mail_chain(cls, {ALICE: "alice-secret"},
                   macros={"msgstatus_domains": "example.org",
                           "msgstatus_dsn_domains": "example.org"},
                   milter_settings={"read_reports": "no"})
        back = {"example.org": cls.postfix}
        cls.b = cls.sb.mail_site("example.net", {BOB: "bob-secret"}, routes=back,
                                 postfix={"settings": {"lmtp_assume_final": "yes"}})
        cls.c = cls.sb.mail_site("example.com", {CAROL: "carol-secret"}, routes=back)
        cls.postfix.set_transport("example.net", cls.b.postfix, reload=False)
        cls.postfix.set_transport("example.com", cls.c.postfix)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def send(self, rcpt, subject):
        """alice sends rcpt a message over SMTP AUTH at A: (queue id, tracking id)."""
        qid = self.postfix.send(ALICE, [rcpt], subject=subject, auth=AUTH)
        tid = wait_for(f"the milter's record of {qid}",
                       lambda: self.pg.scalar(f"SELECT tracking_id FROM messages "
                                              f"WHERE queue_id = '{qid}'"), timeout=TIMEOUT)
        return qid, tid

    def wait_status(self, tid, rcpt, want):
        """Wait until A's status API gives rcpt the status want; returns the recipient."""
        def get():
            code, doc = self.sd.status(tid)
            self.assertEqual(code, 200, doc)
            return {r["recipient"]: r for r in doc["recipients"]}.get(rcpt, {})

        def done():
            got = get()
            return got if got.get("status") == want else None
        try:
            return wait_for(f"{rcpt} {want} at A", done, timeout=TIMEOUT)
        except Exception:
            self.fail(f"{rcpt} at A: want {want}, have {get()}\n"
                      f"logd: {self.logd.child.log()[-1500:]}")

    def reports(self, tid):
        """The reports in alice's INBOX at A (over IMAP) whose Original-Envelope-Id is tid."""
        out = []
        for raw in self.dovecot.messages(ALICE):
            groups = status_groups(parse(raw))
            if groups and groups[0].get("Original-Envelope-Id", "").strip().startswith(
                    tid + "."):
                out.append(raw)
        return out

    def wait_report(self, tid):
        """Wait for the report about tid in alice's INBOX at A: exactly one."""
        wait_for(f"the report about {tid} in {ALICE}'s INBOX at A", lambda: self.reports(tid),
                 timeout=TIMEOUT, interval=0.2)
        found = self.reports(tid)
        self.assertEqual(len(found), 1, "one report per message")
        return found[0]

    def report_json(self, raw):
        """What msgstatus's report parser (reports/report.c) makes of raw."""
        res = subprocess.run([paths.binary("tests/tools/report_json")], input=raw,
                             capture_output=True, timeout=TIMEOUT)
        self.assertEqual(res.returncode, 0, res.stderr.decode(errors="replace"))
        return json.loads(res.stdout)

    def check_report(self, raw, tid, site, rcpt, action, status):
        """The report raw from site (a MailSite) about rcpt of tid: fields as RFC 3464
        writes them (read by Python's email package), and the returned headers only.
        Returns the recipient's field group."""
        msg = parse(raw)
        self.assertEqual(msg["Return-Path"], "<>")
        self.assertEqual(email.utils.parseaddr(msg["From"])[1],
                         "MAILER-DAEMON@" + site.postfix.myhostname)
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        groups = status_groups(msg)
        self.assertEqual(groups[0]["Reporting-MTA"], "dns; " + site.postfix.myhostname)
        self.assertRegex(groups[0]["Original-Envelope-Id"], "^" + tid + r"\.[a-z2-7]{16}$",
                         "the tracking id and its mac")
        self.assertEqual(len(groups), 2, "one recipient")
        got = groups[1]
        self.assertEqual(got["Original-Recipient"], "rfc822;" + rcpt)  # the milter's ORCPT
        self.assertEqual(got["Final-Recipient"], "rfc822; " + rcpt)
        self.assertEqual((got["Action"], got["Status"]), (action, status))
        types = [p.get_content_type() for p in msg.get_payload()]
        self.assertEqual(types, ["text/plain", "message/delivery-status",
                                 "text/rfc822-headers"], "RET=HDRS: headers only")
        returned = msg.get_payload()[2].get_payload()
        self.assertIn(f"Msgstatus-Id: {tid}\n", returned)
        self.assertNotIn("Hello.", returned, "no body returned")
        return got

    def check_parsed(self, raw, tid, site, rcpt, action, event):
        """The report raw as msgstatus's parser reads it; returns the recipient."""
        rep = self.report_json(raw)
        self.assertEqual((rep["kind"], rep["envelope_id"][:len(tid) + 1], rep["reporting_mta"]),
                         ("dsn", tid + ".", site.postfix.myhostname))
        self.assertEqual(rep["msgstatus_id"], tid, "from the returned headers")
        self.assertEqual(len(rep["recipients"]), 1, rep)
        got = rep["recipients"][0]
        self.assertEqual((got["original_recipient"], got["final_recipient"], got["action"],
                          got["event"]), (rcpt, rcpt, action, event))
        return got

    def check_no_notice_from_a(self, qid):
        """A's Postfix passed the DSN request on to a site that announces DSN: once it is
        done with the message, it has sent alice no notice of its own."""
        self.postfix.wait_log(rf"\b{qid}: removed\b", timeout=TIMEOUT)
        self.assertNotRegex(self.postfix.maillog(), rf"\b{qid}: sender (non-)?delivery")

    # tests
    def test_success_dsn_from_b_reaches_a(self):
        qid, tid = self.send(BOB, "two-sites-delivered")
        self.wait_status(tid, BOB, "relayed")
        self.postfix.wait_status(qid, BOB, "sent")
        delivered = wait_for(f"the message in {BOB}'s mailbox at B",
                             lambda: [m for m in self.b.messages(BOB)
                                      if f"Msgstatus-Id: {tid}".encode() in m],
                             timeout=TIMEOUT, interval=0.2)
        self.assertEqual(len(delivered), 1)
        self.assertRegex(parse(delivered[0])["Subject"], "two-sites-delivered")
        raw = self.wait_report(tid)
        self.assertRegex(raw.decode(errors="replace"), r"(?m)^Subject: Successful Mail Delivery")
        self.check_report(raw, tid, self.b, BOB, "delivered", "2.0.0")
        self.check_parsed(raw, tid, self.b, BOB, "delivered", "delivered")
        self.check_no_notice_from_a(qid)
        # Not read (read_reports = no): the report changes nothing at A.
        self.assertEqual(self.wait_status(tid, BOB, "relayed")["delivered"], "unknown")

    def test_postfix_default_says_relayed(self):
        qid, tid = self.send(CAROL, "two-sites-relayed")
        self.wait_status(tid, CAROL, "relayed")
        raw = self.wait_report(tid)
        self.assertEqual(self.c.postfix.postconf("-h", "lmtp_assume_final").strip(), "no")
        self.check_report(raw, tid, self.c, CAROL, "relayed", "2.0.0")
        self.check_parsed(raw, tid, self.c, CAROL, "relayed", "relayed")
        wait_for(f"the message in {CAROL}'s mailbox at C",
                 lambda: any(f"Msgstatus-Id: {tid}".encode() in m
                             for m in self.c.messages(CAROL)), timeout=TIMEOUT, interval=0.2)
        self.check_no_notice_from_a(qid)

    def test_late_bounce_from_b_reaches_a(self):
        qid, tid = self.send(NOBODY, "two-sites-bounced")
        self.wait_status(tid, NOBODY, "relayed")  # B's smtpd said 250
        self.b.postfix.wait_log(rf"to=<{re.escape(NOBODY)}>.* status=bounced \(.*550 5\.1\.1",
                                timeout=TIMEOUT)
        raw = self.wait_report(tid)
        self.assertRegex(raw.decode(errors="replace"), r"(?m)^Subject: Undelivered Mail")
        fields = self.check_report(raw, tid, self.b, NOBODY, "failed", "5.1.1")
        self.assertRegex(fields["Diagnostic-Code"], r"^smtp; 550 5\.1\.1 ")
        got = self.check_parsed(raw, tid, self.b, NOBODY, "failed", "bounced")
        self.assertRegex(got["smtp_reply"], r"^550 5\.1\.1 <nobody@example\.net> ")
        self.check_no_notice_from_a(qid)
        # Not read: A's status stays relayed.
        self.assertEqual(self.wait_status(tid, NOBODY, "relayed")["delivered"], "unknown")


if __name__ == "__main__":
    main()
