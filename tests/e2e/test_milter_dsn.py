"""msgstatus-milter asks for DSNs (RFC 3461) in a real, private Postfix, and the remote side
sees them: an smtp-sink stands for the remote MX and records the MAIL FROM and RCPT TO
parameters it receives (its X-Mail-Args and X-Rcpt-Args).

- a tracked message from a domain in {msgstatus_dsn_domains}: the remote recipient gets
  NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;<addr>, MAIL FROM gets RET=HDRS and
  ENVID=<tracking id>.<mac> (HMAC-SHA256 of the tracking id keyed with the milter's
  report_secret_file, 80 bits in base32); the local recipient is left alone;
- what the submitter asked for wins: NOTIFY=NEVER, their own NOTIFY, RET and ENVID; with
  their own NOTIFY (not NEVER) and no ENVID, the ENVID's mac is the keep variant (the mac
  of "keep:<tracking id>"), whose reports the milter never consumes;
- a tracked domain not in {msgstatus_dsn_domains}, and sendmail(1) submissions, are left
  as they are.
"""
import base64
import hashlib
import hmac
import re
import smtplib
import unittest

from e2e import main, require_root
from msgsandbox import Sandbox
from msgsandbox.core import wait_for
from msgsandbox.postfix import make_message

from test_milter_postfix import TAG, start_mail_system

ALICE = "alice@example.org"
BOB = "bob@example.org"


class MilterDsnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        start_mail_system(cls, macros={"msgstatus_domains": "example.org, example.net",
                                       "msgstatus_dsn_domains": "example.org"})

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def submit(self, sender, rcpts, subject, mail_options=(), rcpt_options=None):
        """SMTP AUTH submission with ESMTP options; rcpt_options: {rcpt: [options]}."""
        msg = make_message(sender, [r for r in rcpts], subject=subject)
        with smtplib.SMTP(self.postfix.host, self.postfix.port, timeout=30) as s:
            s.ehlo()
            s.login(ALICE, "alice-secret")
            code, text = s.mail(sender, list(mail_options))
            self.assertEqual(code, 250, text)
            for r in rcpts:
                code, text = s.rcpt(r, (rcpt_options or {}).get(r, []))
                self.assertEqual(code, 250, text)
            code, text = s.data(msg)
            self.assertEqual(code, 250, text)
        return re.search(rb"queued as ([0-9A-Za-z]+)", text).group(1).decode()

    def sunk(self, subject):
        """What the remote MX received for the message with this subject: (mail args,
        {rcpt: args}, tracking id)."""
        def find():
            for m in self.sink.messages():
                if f"Subject: {subject}\n".encode() in m.replace(b"\r\n", b"\n"):
                    return m.replace(b"\r\n", b"\n").decode()
            return None
        wait_for(f"{subject} at the remote MX", lambda: find() is not None, timeout=30)
        m = find()
        head = m.split("\n\n", 1)[0]
        mail = re.search(r"^X-Mail-Args: ?(.*)$", head, re.M)
        rcpts = {}
        for line in re.findall(r"^X-Rcpt-Args: ?(.*)$", head, re.M):
            addr, _, args = line.partition(" ")
            rcpts[addr.strip("<>")] = args
        tag = TAG.search(m.encode())
        return (mail.group(1) if mail else ""), rcpts, tag and tag.group(1).decode()

    @staticmethod
    def params(args):
        return {p.split("=", 1)[0].upper(): p.split("=", 1)[1] for p in args.split() if "=" in p}

    def test_remote_recipient_gets_dsn_parameters(self):
        qid = self.submit(ALICE, [BOB, "carol@remote.example"], "dsn-1")
        mail, rcpts, tid = self.sunk("dsn-1")
        self.assertIsNotNone(tid)
        mp = self.params(mail)
        self.assertEqual(mp.get("RET"), "HDRS", mail)
        with open(self.milter.settings["report_secret_file"], "rb") as f:
            mac = hmac.new(f.read(), tid.encode(), hashlib.sha256).digest()[:10]
        self.assertEqual(mp.get("ENVID"), tid + "." + base64.b32encode(mac).decode().lower(),
                         mail)
        rp = self.params(rcpts["carol@remote.example"])
        self.assertEqual(rp.get("NOTIFY"), "SUCCESS,FAILURE,DELAY")
        self.assertEqual(rp.get("ORCPT"), "rfc822;carol@remote.example")
        self.assertNotIn(BOB, rcpts, "the local recipient does not go to the remote MX")
        self.postfix.wait_log(rf"{qid}: DSNs asked for|{qid}: to=<carol@remote\.example>")
        self.assertIn(f"{qid}: DSNs asked for 1 of 1 remote recipient", self.milter.child.log())

    def test_submitter_choices_win(self):
        self.submit(ALICE, ["never@remote.example", "fail@remote.example",
                            "plain@remote.example"], "dsn-2",
                    mail_options=["RET=FULL", "ENVID=their+2Did"],
                    rcpt_options={"never@remote.example": ["NOTIFY=NEVER"],
                                  "fail@remote.example": ["NOTIFY=FAILURE",
                                                          "ORCPT=rfc822;orig@remote.example"]})
        mail, rcpts, tid = self.sunk("dsn-2")
        mp = self.params(mail)
        self.assertEqual((mp.get("RET"), mp.get("ENVID")), ("FULL", "their-id"))  # xtext decoded, re-encoded
        self.assertEqual(self.params(rcpts["never@remote.example"]).get("NOTIFY"), "NEVER")
        fail = self.params(rcpts["fail@remote.example"])
        self.assertEqual((fail.get("NOTIFY"), fail.get("ORCPT")),
                         ("FAILURE", "rfc822;orig@remote.example"))
        self.assertEqual(self.params(rcpts["plain@remote.example"]).get("NOTIFY"),
                         "SUCCESS,FAILURE,DELAY")

    def test_submitter_notify_gets_keep_mac(self):
        # the submitter asked for a success DSN for one recipient and gave no ENVID: the
        # milter's ENVID carries the keep mac, so that no report is consumed
        self.submit(ALICE, ["own@remote.example", "other@remote.example"], "dsn-5",
                    rcpt_options={"own@remote.example": ["NOTIFY=SUCCESS"]})
        mail, rcpts, tid = self.sunk("dsn-5")
        self.assertIsNotNone(tid)
        with open(self.milter.settings["report_secret_file"], "rb") as f:
            secret = f.read()
        keep = hmac.new(secret, b"keep:" + tid.encode(), hashlib.sha256).digest()[:10]
        self.assertEqual(self.params(mail).get("ENVID"),
                         tid + "." + base64.b32encode(keep).decode().lower(), mail)
        self.assertEqual(self.params(rcpts["own@remote.example"]).get("NOTIFY"), "SUCCESS")
        self.assertEqual(self.params(rcpts["other@remote.example"]).get("NOTIFY"),
                         "SUCCESS,FAILURE,DELAY")

    def test_domain_without_dsns_is_left_alone(self):
        self.submit("alice@example.net", ["dave@remote.example"], "dsn-3")
        mail, rcpts, tid = self.sunk("dsn-3")
        self.assertIsNotNone(tid, "tracked all the same")
        self.assertNotIn("ENVID", self.params(mail))
        self.assertNotIn("NOTIFY", self.params(rcpts["dave@remote.example"]))

    def test_sendmail_submission_is_left_alone(self):
        self.postfix.sendmail(ALICE, ["erin@remote.example"], subject="dsn-4")
        mail, rcpts, tid = self.sunk("dsn-4")
        self.assertIsNotNone(tid, "tracked all the same")
        self.assertNotIn("ENVID", self.params(mail))
        self.assertNotIn("NOTIFY", self.params(rcpts["erin@remote.example"]))


if __name__ == "__main__":
    main()
