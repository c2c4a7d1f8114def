"""DSNs and MDNs that come back to a msgstatus site become statuses, when they prove their
origin (docs/security.md, "Reports from other mail systems").

Site A (example.org) runs msgstatus: its milter asks for DSNs with an ENVID that carries
the mac of A's secret, reads the reports that come back (milter/reportin.h) and sends
statusd one report event per entry; statusd keeps every report about a message of A's,
and those that count change the recipient's status. Sites B (example.net) and C
(example.com) are plain Postfix 3.7 + Dovecot sites (msgsandbox.site) whose Postfix sends
real DSNs. B says "delivered" (lmtp_assume_final = yes) and greylists one address until
the test lets it in; A's Postfix passes its own notices (bounce(8)) to the milter too
(internal_mail_filter_classes = bounce).

What this guards:
- alice -> bob@B: relayed, then delivered from B's success DSN, live on A's WebSocket
  feed; JMAP delivered "yes"; the DSN is kept (raw, for alice only) and never reaches
  alice's mailbox.
- the same with the milter's spool full: the DSN's events wait in the milter's memory, so
  the DSN is not consumed and reaches alice's mailbox.
- greylisting at B: deferred (A's log), then delivered (B's DSN).
- a recipient B accepts and then bounces: relayed, then bounced, and that bounce reaches
  alice's mailbox.
- a recipient B refuses at RCPT TO: A's own Postfix bounces it; its notice passes the
  milter (internal_mail_filter_classes = bounce) and is read like any other DSN.
- a bounce that returns a large message: the milter keeps 256 KiB of it and reads that.
- a report submitted with sendmail(1) is not read as one that came back.
- forged reports change nothing and are kept as unverified: a DSN with the bare tracking
  id as ENVID (no mac), one with B's genuine ENVID about a message that also went to C
  (so C's mail systems saw the ENVID too), and an MDN.
"""
import email
import email.policy
import json
import os
import re
import threading
import time
import unittest
import urllib.parse

import websocket  # Debian's python3-websocket

from e2e import mail_chain, main, require_root
from msgsandbox.core import wait_for

ALICE = "alice@example.org"
AUTH = (ALICE, "alice-secret")
BOB = "bob@example.net"          # at site B
GREY = "grey@example.net"        # at site B, greylisted until the test lets it in
NOBODY = "nobody@example.net"    # accepted by B's smtpd, unknown to B's Dovecot
REFUSED = "refused@example.net"  # refused by B's smtpd at RCPT TO: A's own bounce
CAROL = "carol@example.com"      # at site C
TIMEOUT = 30


class Feed:
    """alice's WebSocket feed at A from the current head, read by a thread."""

    def __init__(self, sd, token):
        url = (f"ws://127.0.0.1:{sd.http_port}/api/v1/messages/stream?access_token="
               + urllib.parse.quote(token))
        self.ws = websocket.create_connection(url, timeout=60)
        hello = json.loads(self.ws.recv())
        assert hello["type"] == "hello", hello
        self.events = []
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                doc = json.loads(self.ws.recv())
                if doc.get("type") == "event":
                    self.events.append(doc)
        except Exception as e:  # closed by the test, or an error the test then reports
            self.error = e

    def statuses(self, tid, rcpt):
        """The statuses of rcpt's events of tid on the feed after queued, in feed order."""
        return [e["status"] for e in list(self.events)
                if e.get("tracking_id") == tid and e.get("recipient") == rcpt
                and e["status"] != "queued"]

    def close(self):
        self.ws.close()


class ReportsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        mail_chain(cls, {ALICE: "alice-secret"},
                   macros={"msgstatus_domains": "example.org",
                           "msgstatus_dsn_domains": "example.org"})
        back = {"example.org": cls.postfix}
        cls.grey_map = cls.sb.path("b-greylist")
        with open(cls.grey_map, "w") as f:
            f.write(f"{GREY} DEFER_IF_PERMIT 4.7.1 greylisted, try again later\n")
        refuse_map = cls.sb.path("b-refuse")
        with open(refuse_map, "w") as f:
            f.write(f"{REFUSED} REJECT 5.1.1 no such user here\n")
        cls.b = cls.sb.mail_site(
            "example.net", {BOB: "bob-secret", GREY: "grey-secret"}, routes=back,
            postfix={"settings": {"lmtp_assume_final": "yes",
                                  "smtpd_recipient_restrictions":
                                  f"check_recipient_access texthash:{cls.grey_map}, "
                                  f"check_recipient_access texthash:{refuse_map}"}})
        cls.c = cls.sb.mail_site("example.com", {CAROL: "carol-secret"}, routes=back)
        cls.postfix.set_transport("example.net", cls.b.postfix, reload=False)
        cls.postfix.set_transport("example.com", cls.c.postfix)
        cls.token = cls.sd.token(ALICE)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def send(self, rcpts, subject):
        """alice sends rcpts a message over SMTP AUTH at A: (queue id, tracking id)."""
        qid = self.postfix.send(ALICE, rcpts, subject=subject, auth=AUTH)
        tid = wait_for(f"the milter's record of {qid}",
                       lambda: self.pg.scalar(f"SELECT tracking_id FROM messages "
                                              f"WHERE queue_id = '{qid}'"), timeout=TIMEOUT)
        return qid, tid

    def recipient(self, tid, rcpt):
        code, doc = self.sd.status(tid)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}.get(rcpt, {})

    def wait_status(self, tid, rcpt, want):
        """Wait until A's status API gives rcpt the status want; returns the recipient."""
        def done():
            got = self.recipient(tid, rcpt)
            return got if got.get("status") == want else None
        try:
            return wait_for(f"{rcpt} {want} at A", done, timeout=TIMEOUT)
        except Exception:
            self.fail(f"{rcpt} at A: want {want}, have {self.recipient(tid, rcpt)}\n"
                      f"milter: {self.milter.child.log()[-2000:]}")

    def reports(self, tid, rcpt=None):
        """The reports statusd keeps about tid (and rcpt): [(kind, status, verified, proof,
        report_id)] in the order they came."""
        rows = self.pg.psql(
            "SELECT r.kind, r.status, r.verified, r.proof, r.report_id, r.recipient "
            "FROM reports r JOIN messages m ON m.id = r.message "
            f"WHERE m.tracking_id = '{tid}' ORDER BY r.received_at, r.event_id")
        return [(r[0], int(r[1]) if r[1] else None, r[2] == "t", r[3], r[4])
                for r in rows if rcpt is None or r[5] == rcpt]

    def raw_field(self, report_id, regex):
        """The first group of regex (a PostgreSQL regular expression) in the kept report."""
        return self.pg.scalar(f"SELECT substring(raw FROM '{regex}') FROM report_raw "
                              f"WHERE report_id = '{report_id}'")

    def wait_reports(self, tid, rcpt, n=1):
        try:
            return wait_for(f"{n} report(s) about {rcpt} of {tid}",
                            lambda: (lambda r: r if len(r) >= n else None)(
                                self.reports(tid, rcpt)), timeout=TIMEOUT, interval=0.2)
        except Exception:
            self.fail(f"{n} report(s) about {rcpt} of {tid}: have {self.reports(tid)}\n"
                      f"milter: {self.milter.child.log()[-2500:]}\n"
                      f"A: {self.postfix.maillog()[-4000:]}")

    def event_sources(self, tid, rcpt):
        """The (status, source) of rcpt's events of tid in A's log, sorted."""
        rows = self.pg.psql("SELECT e.type, e.source FROM events e JOIN messages m "
                            f"ON m.id = e.message WHERE m.tracking_id = '{tid}' "
                            f"AND e.rcpt = '{rcpt}' AND e.log_offset IS NOT NULL")
        names = {"1": "queued", "2": "deferred", "3": "relayed", "4": "delivered",
                 "5": "bounced"}
        return sorted((names.get(t, t), src) for t, src in rows if t != "1")

    def inbox_reports(self, tid):
        """The reports about tid in alice's INBOX at A (the tracking id in the text)."""
        return [m for m in self.dovecot.messages(ALICE)
                if b"multipart/report" in m and tid.encode() in m]

    def forge(self, raw):
        """A third party mails alice at A (port 25, null sender)."""
        self.postfix.send("", [ALICE], message=raw)

    # tests
    def test_success_dsn_gives_delivered_live(self):
        feed = Feed(self.sd, self.token)
        try:
            qid, tid = self.send([BOB], "reports-delivered")
            # A's log says relayed, B's DSN delivered; which reaches statusd first is a
            # race (B answers within milliseconds), the status is delivered either way
            try:
                wait_for("relayed and delivered on alice's feed",
                         lambda: sorted(feed.statuses(tid, BOB))
                         == ["delivered", "relayed"] or None, timeout=TIMEOUT)
            except Exception:
                self.fail(f"feed: {feed.events[-3:]} {feed.error!r}\n"
                          f"reports: {self.reports(tid)}\n"
                          f"milter: {self.milter.child.log()[-1500:]}\n"
                          f"A: {self.postfix.maillog()[-3000:]}")
            got = self.wait_status(tid, BOB, "delivered")
            self.assertEqual(got["delivered"], "yes")
        finally:
            feed.close()
        (kind, status, verified, proof, report_id), = self.wait_reports(tid, BOB)
        self.assertEqual((kind, status, verified, proof), ("dsn", 4, True, "envid"))
        delivered = [e for e in feed.events
                     if e.get("tracking_id") == tid and e["status"] == "delivered"][0]
        self.assertEqual(delivered["details"]["report_id"], report_id)
        self.assertEqual(delivered["details"]["reporting_mta"], self.b.postfix.myhostname)
        self.assertEqual(delivered["details"]["dsn"], "2.0.0")
        # the report the milter asked for was consumed: it never reaches alice's mailbox
        wait_for("the milter's word that it consumed the report",
                 lambda: re.search(rf"DSN report {report_id} read: .*; consumed",
                                   self.milter.child.log()), timeout=TIMEOUT)
        self.assertEqual(self.inbox_reports(tid), [], "the success DSN was discarded")
        self.assertEqual(self.raw_field(report_id, "Action: ([a-z]+)"), "delivered")
        # the API: the recipient's report ids, the report itself for alice alone
        code, doc = self.sd.status(tid)
        self.assertEqual(code, 200, doc)
        (bob,) = [r for r in doc["recipients"] if r["recipient"] == BOB]
        self.assertEqual((bob["dsn_report_ids"], bob["mdn_report_ids"]), ([report_id], []))
        self.assertEqual([(r["report_id"], r["kind"], r["recipient"], r["status"],
                           r["verified"], r["proof"]) for r in doc["reports"]],
                         [(report_id, "dsn", BOB, "delivered", True, "envid")])
        code, rep = self.sd.api(f"/api/v1/reports/{report_id}", self.token)
        self.assertEqual(code, 200, rep)
        self.assertEqual((rep["report_id"], rep["tracking_id"], rep["truncated"]),
                         (report_id, tid, False))
        self.assertRegex(rep["raw"], r"(?m)^Action: delivered\r?$")
        code, _ = self.sd.api(f"/api/v1/reports/{report_id}",
                              self.sd.token("mallory@example.org"))
        self.assertEqual(code, 404, "only the sender gets the report")
        code, _ = self.sd.api("/api/v1/reports/not-an-id", self.token)
        self.assertEqual(code, 400)

    def test_success_dsn_kept_when_its_events_are_only_in_memory(self):
        """A DSN is consumed only once its events are in the milter's spool: with the spool
        full they wait in the shipper's memory (lost with the milter), so the DSN reaches
        alice's mailbox, and its events still reach statusd."""
        fs = self.sb.tmpfs("reports-spool", "1m")
        spool_dir = self.milter.settings["spool_dir"]
        self.milter.stop()
        self.milter.settings["spool_dir"] = fs.path
        self.milter.start()
        try:
            fs.fill()
            qid, tid = self.send([BOB], "reports-memory")
            got = self.wait_status(tid, BOB, "delivered")
            self.assertEqual(got["delivered"], "yes")
            (kind, status, verified, proof, report_id), = self.wait_reports(tid, BOB)
            self.assertEqual((kind, status, verified, proof), ("dsn", 4, True, "envid"))
            wait_for("the milter's word that it kept the report",
                     lambda: re.search(rf"DSN report {report_id} read: .*; kept: its events "
                                       r"are only in memory", self.milter.child.log()),
                     timeout=TIMEOUT)
            wait_for("the success DSN in alice's INBOX", lambda: self.inbox_reports(tid),
                     timeout=TIMEOUT, interval=0.2)
        finally:
            fs.empty()
            self.milter.stop()
            self.milter.settings["spool_dir"] = spool_dir
            self.milter.start()

    def test_greylisted_then_delivered(self):
        mark = self.postfix.log_mark()
        qid, tid = self.send([GREY], "reports-greylisted")
        self.postfix.wait_log(rf"\b{qid}: to=<{re.escape(GREY)}>.* status=deferred",
                              timeout=TIMEOUT, since=mark)
        self.wait_status(tid, GREY, "deferred")
        with open(self.grey_map, "w") as f:
            f.write("")
        self.b.postfix.reload()
        got = self.wait_status(tid, GREY, "delivered")
        self.assertEqual(got["delivered"], "yes")
        self.assertEqual([r[:4] for r in self.reports(tid, GREY)], [("dsn", 4, True, "envid")])

    def test_late_bounce_gives_bounced_and_reaches_alice(self):
        qid, tid = self.send([NOBODY], "reports-bounced")
        # B's smtpd said 250 (A's log: relayed), then B bounced it (its DSN): in whatever
        # order the two reach statusd, the status is bounced
        wait_for("relayed and bounced in A's log of events",
                 lambda: self.event_sources(tid, NOBODY) == [("bounced", "dsn"),
                                                             ("relayed", "postfix")] or None,
                 timeout=TIMEOUT)
        got = self.wait_status(tid, NOBODY, "bounced")
        self.assertEqual(got["delivered"], "no")
        self.assertRegex(got.get("smtp_reply") or "", r"^550 5\.1\.1 ")
        self.assertEqual([r[:4] for r in self.reports(tid, NOBODY)],
                         [("dsn", 5, True, "envid")])
        # a failure still reaches the user
        wait_for("the bounce in alice's INBOX", lambda: self.inbox_reports(tid),
                 timeout=TIMEOUT, interval=0.2)

    def test_postfix_own_bounce_is_read(self):
        qid, tid = self.send([REFUSED], "reports-refused")
        got = self.wait_status(tid, REFUSED, "bounced")
        self.assertEqual(got["delivered"], "no")
        (kind, status, verified, proof, report_id), = self.wait_reports(tid, REFUSED)
        self.assertEqual((kind, status, verified, proof), ("dsn", 5, True, "envid"))
        self.assertEqual(self.raw_field(report_id, "Reporting-MTA: dns; ([a-z.]+)"),
                         self.postfix.myhostname, "A's own notice")
        wait_for("A's bounce in alice's INBOX", lambda: self.inbox_reports(tid),
                 timeout=TIMEOUT, interval=0.2)

    def dsn(self, envid, rcpt, tid, action="failed", status="5.1.1"):
        return (f"From: MAILER-DAEMON@mx.evil.test\r\nTo: {ALICE}\r\n"
                "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
                "\r\n--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
                "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
                f"Reporting-MTA: dns; mx.evil.test\r\nOriginal-Envelope-Id: {envid}\r\n\r\n"
                f"Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\n"
                f"Action: {action}\r\nStatus: {status}\r\n"
                f"Diagnostic-Code: smtp; 550 {status} no such user\r\n\r\n"
                "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                f"Msgstatus-Id: {tid}\r\nSubject: x\r\n\r\n--b--\r\n")

    def test_large_report_is_cut_and_read(self):
        """The milter keeps at most 256 KiB of a report: a bounce that returns a large
        message is read from what was kept, and the milter says it cut it."""
        qid, tid = self.send([BOB], "reports-large")
        self.wait_status(tid, BOB, "delivered")
        other = "other@example.net"  # no recipient of the message: kept, as not_recipient
        big = "X-Filler: " + "x" * 70 + "\r\n"
        raw = self.dsn(tid, other, tid).replace(
            "Subject: x\r\n\r\n--b--", "Subject: x\r\n" + big * 15000 + "\r\n--b--")
        self.assertGreater(len(raw), 1024 * 1024)
        self.forge(raw)
        rows = self.wait_reports(tid, other)
        self.assertEqual([r[:4] for r in rows], [("dsn", 5, False, "not_recipient")])
        self.assertRegex(self.milter.child.log(),
                         r"a report of over 256 KiB: only its first 256 KiB kept and read")
        self.assertEqual(self.pg.scalar("SELECT truncated FROM report_raw "
                                        f"WHERE report_id = '{rows[0][4]}'"), "t")

    def test_sendmail_input_is_not_a_report(self):
        """What is submitted with sendmail(1) (statusd's own MDNs, a user's report) is not
        read as a report that came back: only SMTP input and Postfix's own notices are."""
        qid, tid = self.send([BOB], "reports-sendmail")
        self.wait_status(tid, BOB, "delivered")
        self.wait_reports(tid, BOB)
        msgid = f"<sendmail-report-{tid}@example.org>"
        raw = self.dsn(tid, BOB, tid).replace("Subject: Undelivered",
                                              f"Message-ID: {msgid}\r\nSubject: Undelivered")
        self.postfix.sendmail("<>", [ALICE], raw)
        wait_for("the submitted report in alice's INBOX",
                 lambda: any(msgid.encode() in m for m in self.dovecot.messages(ALICE)),
                 timeout=TIMEOUT, interval=0.2)
        time.sleep(2)  # what the milter would have sent has reached statusd
        self.assertEqual(len(self.reports(tid, BOB)), 1, self.reports(tid, BOB))
        self.assertRegex(self.milter.child.log(), r"a report submitted on this host without an "
                         r"ENVID of ours \(sendmail\): not read")

    def test_forged_reports_change_nothing(self):
        # a message to B and C: B's success DSN carries A's genuine ENVID, but C's mail
        # systems saw it too, so it proves nothing about either
        qid, tid = self.send([BOB, CAROL], "reports-forged")
        self.wait_status(tid, BOB, "relayed")
        self.wait_status(tid, CAROL, "relayed")
        (bob_report,) = self.wait_reports(tid, BOB)
        self.assertEqual(bob_report[2:4], (False, "unproven"), "two domains saw the ENVID")
        envid = self.raw_field(bob_report[4], "Original-Envelope-Id: ([a-z2-7.]+)")
        self.assertRegex(envid, "^" + tid + r"\.")
        # 1. B's MTA forges a bounce for carol with that ENVID
        self.forge(self.dsn(envid, CAROL, tid))
        # 2. anyone forges a bounce for bob with the bare tracking id
        self.forge(self.dsn(tid, BOB, tid))
        # 3. and a read receipt for bob
        self.forge(f"From: {BOB}\r\nTo: {ALICE}\r\nSubject: Read: x\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: multipart/report; report-type=disposition-notification; "
                   "boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nRead.\r\n"
                   "--m\r\nContent-Type: message/disposition-notification\r\n\r\n"
                   f"Final-Recipient: rfc822;{BOB}\r\n"
                   "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n"
                   "--m\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                   f"Msgstatus-Id: {tid}\r\n\r\n--m--\r\n")
        self.wait_reports(tid, CAROL, 2)  # C's own success DSN (unproven) and the forgery
        self.wait_reports(tid, BOB, 3)
        for rcpt in (BOB, CAROL):
            for kind, status, verified, proof, _ in self.reports(tid, rcpt):
                self.assertEqual((verified, proof), (False, "unproven"), (rcpt, kind, status))
        kinds = sorted((k, s) for k, s, *_ in self.reports(tid))
        self.assertEqual(kinds, [("dsn", 3), ("dsn", 4), ("dsn", 5), ("dsn", 5), ("mdn", 7)])
        for rcpt in (BOB, CAROL):
            got = self.recipient(tid, rcpt)
            self.assertEqual((got["status"], got["delivered"], got["displayed"]),
                             ("relayed", "unknown", "unknown"), rcpt)
        code, doc = self.sd.status(tid)
        self.assertEqual(code, 200, doc)
        self.assertEqual(sorted((r["kind"], r["recipient"], r["verified"])
                                for r in doc["reports"]),
                         [("dsn", BOB, False), ("dsn", BOB, False), ("dsn", CAROL, False),
                          ("dsn", CAROL, False), ("mdn", BOB, False)])
        (bob,) = [r for r in doc["recipients"] if r["recipient"] == BOB]
        self.assertEqual((len(bob["dsn_report_ids"]), len(bob["mdn_report_ids"])), (2, 1))
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message "
            f"WHERE m.tracking_id = '{tid}' AND e.source IN ('dsn', 'mdn')"), "0")
        # what was not asked for by us reaches alice: the forgeries and the unproven
        # success notices are delivered to her mailbox, for her to judge
        wait_for("the forged reports in alice's INBOX",
                 lambda: len(self.inbox_reports(tid)) >= 3 or None, timeout=TIMEOUT)


if __name__ == "__main__":
    main()
