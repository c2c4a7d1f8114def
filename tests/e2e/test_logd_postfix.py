"""msgstatus-logd following a real, private Postfix 3.7's maillog_file (with the milter
recording the mail, Dovecot for LMTP, smtp-sinks as remote MXs that accept, defer or
reject, statusd and PostgreSQL behind it):

- each Postfix result becomes the recipient's status: delivered (LMTP), relayed (smtp),
  bounced (5xx, with the reply), deferred then relayed after a retry, expired (Postfix's
  message-level expiry line applies to the recipients still waiting, not to one delivered);
- nothing lost and nothing twice: msgstatus-logd stopped while mail flows and the log is
  rotated; killed (SIGKILL) and restarted; `postfix logrotate` (which compresses the old
  file) while it runs; statusd down for a while; the Message-IDs it remembers per queue id
  kept across a reload (SIGHUP);
- untracked mail leaves nothing behind in the message tables;
- and with the Dovecot plugin, the whole chain: read over IMAP turns the recipient read.
"""
import os
import socket
import time
import unittest

from e2e import main, require_root
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for

ALICE = "alice@example.org"
BOB = "bob@example.org"
AUTH = (ALICE, "alice-secret")


class LogdPostfixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.milter = cls.sb.milter(cls.sd)
        cls.dovecot = cls.sb.dovecot(
            mail_plugins=["notify", "msgstatus"],
            plugin_paths=[paths.binary("dovecot-plugin/lib90_msgstatus_plugin.so")],
            plugin=cls.sd.dovecot_plugin_settings())
        cls.sink = cls.sb.smtp_sink(name="sink-accept")
        cls.slow = cls.sb.smtp_sink(name="sink-defer", mode="defer", at="rcpt",
                                    reply="451 4.3.0 try again later")
        cls.picky = cls.sb.smtp_sink(name="sink-reject", mode="reject", at="rcpt",
                                     reply="550 5.1.1 no such user here")
        cls.grey = cls.sb.smtp_sink(name="sink-grey", mode="defer", at="rcpt",
                                    reply="450 4.7.1 Recipient address rejected: Greylisted")
        with socket.socket() as s:  # a port where nothing listens: connection refused
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        macros = {"msgstatus_domains": "example.org"}
        cls.postfix = cls.sb.postfix(
            domains=["example.org"], lmtp=cls.dovecot, sasl=cls.dovecot, milter=cls.milter,
            milter_macro_defaults=macros,
            transports={"remote.example": cls.sink, "slow.example": cls.slow,
                        "picky.example": cls.picky, "grey.example": cls.grey,
                        "refused.example": f"smtp:[127.0.0.1]:{closed}"},
            settings={"virtual_alias_maps": "inline:{ robert@example.org=bob@example.org }"})
        cls.logd = cls.sb.logd(cls.sd, postfix=cls.postfix)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def send(self, rcpts, subject, postfix=None):
        """Send as alice (SASL); returns (queue id, tracking id)."""
        pf = postfix or self.postfix
        qid = pf.send(ALICE, rcpts, subject=subject, auth=AUTH)
        tid = wait_for(f"the milter's record of {qid}",
                       lambda: self.pg.scalar(f"SELECT tracking_id FROM messages "
                                              f"WHERE queue_id = '{qid}'"), timeout=20)
        return qid, tid

    def recipients(self, tid):
        code, doc = self.sd.status(tid)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}

    def wait_statuses(self, tid, want, timeout=30):
        """Wait until every recipient in want has its status; returns the recipients."""
        def done():
            got = self.recipients(tid)
            return got if all(got.get(r, {}).get("status") == s for r, s in want.items()) \
                else None
        try:
            return wait_for(f"statuses {want}", done, timeout=timeout)
        except Exception:
            self.fail(f"want {want}, have "
                      f"{ {r: v['status'] for r, v in self.recipients(tid).items()} }\n"
                      f"logd: {self.logd.child.log()[-1500:]}")

    def event_types(self, tid, source="postfix"):
        rows = self.pg.psql("SELECT e.recipient, e.type FROM events e JOIN messages m "
                            f"ON m.id = e.message WHERE m.tracking_id = '{tid}' "
                            f"AND e.source = '{source}' ORDER BY e.recipient, e.event_time, e.type")
        return [(r, int(t)) for r, t in rows]

    # tests
    def test_delivered_relayed_bounced(self):
        rcpts = [BOB, "carol@remote.example", "nobody@picky.example"]
        qid, tid = self.send(rcpts, "results-1")
        got = self.wait_statuses(tid, {BOB: "delivered", "carol@remote.example": "relayed",
                                       "nobody@picky.example": "bounced"})
        self.assertEqual(got[BOB]["delivered"], "yes")
        self.assertEqual(got["carol@remote.example"]["delivered"], "unknown")
        bounced = got["nobody@picky.example"]
        self.assertEqual(bounced["delivered"], "no")
        self.assertEqual(bounced["smtp_reply"], "550 5.1.1 no such user here")
        self.assertEqual(bounced["details"]["dsn"], "5.1.1")
        self.assertEqual(bounced["details"]["service"], "smtp")
        self.assertIn("127.0.0.1", got["carol@remote.example"]["details"]["mta"])
        # BOB's status may show the Dovecot plugin's delivered event (it can come first);
        # Postfix's own carries the LMTP delivery's facts
        self.assertEqual(self.pg.scalar(
            "SELECT e.details->>'service' FROM events e JOIN messages m ON m.id = e.message "
            f"WHERE m.tracking_id = '{tid}' AND e.source = 'postfix' AND e.recipient = '{BOB}'"),
            "lmtp")
        # one event per result, and the events carry the Message-ID cleanup logged
        self.assertEqual(self.event_types(tid), [(BOB, 4), ("carol@remote.example", 3),
                                                 ("nobody@picky.example", 5)])
        mids = self.pg.psql("SELECT DISTINCT e.message_id = m.message_id FROM events e "
                            f"JOIN messages m ON m.id = e.message WHERE m.tracking_id = '{tid}' "
                            "AND e.source = 'postfix'")
        self.assertEqual(mids, [["t"]])

    def test_whole_chain_up_to_read(self):
        """SMTP in through Postfix and the milter, LMTP into Dovecot, read over IMAP: the
        status API says read for that recipient and relayed for the other."""
        _, tid = self.send([BOB, "erin@remote.example"], "chain-read")
        self.wait_statuses(tid, {BOB: "delivered", "erin@remote.example": "relayed"})
        c = self.dovecot.imap(BOB)
        try:
            c.select("INBOX")
            typ, data = c.uid("SEARCH", None, "SUBJECT", "chain-read")
            c.uid("FETCH", data[0].split()[-1], "(BODY[])")
        finally:
            c.logout()
        got = self.wait_statuses(tid, {BOB: "read", "erin@remote.example": "relayed"})
        self.assertEqual((got[BOB]["delivered"], got[BOB]["displayed"]), ("yes", "yes"))

    def test_alias_read_counts_for_the_address_used(self):
        """Mail to an alias (virtual_alias_maps): Postfix logs orig_to=, and bob's read in
        his mailbox counts for robert, whom the sender addressed."""
        _, tid = self.send(["robert@example.org"], "alias-read")
        self.wait_statuses(tid, {"robert@example.org": "delivered"})
        c = self.dovecot.imap(BOB)
        try:
            c.select("INBOX")
            typ, data = c.uid("SEARCH", None, "SUBJECT", "alias-read")
            c.uid("STORE", data[0].split()[-1], "+FLAGS", "(\\Seen)")
        finally:
            c.logout()
        got = self.wait_statuses(tid, {"robert@example.org": "read"})
        self.assertEqual(got["robert@example.org"]["displayed"], "yes")

    def test_deferred_then_relayed(self):
        qid, tid = self.send(["dora@slow.example"], "defer-1")
        got = self.wait_statuses(tid, {"dora@slow.example": "deferred"})
        self.assertEqual(got["dora@slow.example"]["smtp_reply"], "451 4.3.0 try again later")
        self.assertEqual(got["dora@slow.example"]["delivered"], "queued")
        self.slow.set("accept")
        try:
            self.postfix.flush()
            self.wait_statuses(tid, {"dora@slow.example": "relayed"})
        finally:
            self.slow.set("defer", at="rcpt", reply="451 4.3.0 try again later")
        types = [t for _, t in self.event_types(tid)]
        self.assertGreaterEqual(types.count(2), 1)
        self.assertEqual(types[-1], 3)

    def test_smtp_reply_in_rfc8621_form(self):
        """smtp_reply is RFC 8621's "code x.y.z text" through Postfix, logd, statusd and
        the API: a rejected recipient, a greylisting deferral and a refused connection (no
        reply: null), with Postfix's own words in details.postfix_reply; the same in the
        timeline's events."""
        rcpts = ["nobody2@picky.example", "greg@grey.example", "rita@refused.example"]
        _, tid = self.send(rcpts, "rfc8621-reply")
        got = self.wait_statuses(tid, {"nobody2@picky.example": "bounced",
                                       "greg@grey.example": "deferred",
                                       "rita@refused.example": "deferred"})
        bounced, grey, refused = (got[r] for r in rcpts)
        self.assertEqual(bounced["smtp_reply"], "550 5.1.1 no such user here")
        self.assertRegex(bounced["details"]["postfix_reply"],
                         r"^host \S+ said: 550 5\.1\.1 no such user here "
                         r"\(in reply to RCPT TO command\)$")
        self.assertEqual(grey["smtp_reply"],
                         "450 4.7.1 Recipient address rejected: Greylisted")
        self.assertEqual(grey["delivered"], "queued")
        self.assertRegex(grey["details"]["postfix_reply"], r"^host \S+ said: 450 4\.7\.1 ")
        self.assertIsNone(refused["smtp_reply"])
        self.assertRegex(refused["details"]["postfix_reply"],
                         r"connect to \S+: Connection refused")
        code, doc = self.sd.api(f"/api/v1/messages/{tid}/timeline", self.sd.token(ALICE))
        self.assertEqual(code, 200, doc)
        replies = {(e["recipient"], (e.get("details") or {}).get("smtp_reply"))
                   for e in doc["events"] if e.get("source") == "postfix"}
        self.assertIn(("greg@grey.example", "450 4.7.1 Recipient address rejected: Greylisted"),
                      replies)
        self.assertIn(("rita@refused.example", None), replies)

    def test_expiry_applies_to_recipients_still_waiting(self):
        # A second Postfix whose queue lifetime is zero: the first deferral expires the mail.
        pf = self.sb.postfix(name="pf-expire", domains=["example.org"], lmtp=self.dovecot,
                             sasl=self.dovecot, milter=self.milter,
                             milter_macro_defaults={"msgstatus_domains": "example.org"},
                             transports={"slow.example": self.slow},
                             maximal_queue_lifetime="0", bounce_queue_lifetime="0")
        logd = self.sb.logd(self.sd, postfix=pf, name="logd-expire")
        try:
            qid, tid = self.send([BOB, "erin@slow.example"], "expire-1", postfix=pf)
            pf.wait_log(rf"{qid}: from=<{ALICE}>, status=expired", timeout=60)
            got = self.wait_statuses(tid, {BOB: "delivered", "erin@slow.example": "expired"})
            self.assertEqual(got["erin@slow.example"]["delivered"], "no")
            self.assertEqual(got["erin@slow.example"]["details"].get("service"), "qmgr")
            # the expiry counted for erin only, once
            self.assertEqual([e for e in self.event_types(tid) if e[1] == 6],
                             [("erin@slow.example", 6)])
        finally:
            logd.stop()
            pf.stop()

    def test_stopped_during_mail_and_rotation_loses_nothing(self):
        self.logd.stop()
        try:
            first = [self.send([f"r{i}@remote.example"], f"down-{i}") for i in range(3)]
            for qid, _ in first:
                self.postfix.wait_status(qid, status="sent")
            # rotate while msgstatus-logd is down: rename, and Postfix's postlogd opens a
            # new file when it logs next, after the reload
            os.rename(self.postfix.maillog_path, self.postfix.maillog_path + ".1")
            self.sb.run(["postfix", "-c", self.postfix.config_dir, "reload"])

            def reopened():
                self.sb.run(["postlog", "-c", self.postfix.config_dir, "-t", "postfix/test",
                             "rotation probe"], check=False)
                return os.path.exists(self.postfix.maillog_path)
            wait_for("Postfix to open a new log", reopened, timeout=20, interval=0.5)
            second = [self.send([f"s{i}@remote.example"], f"rotated-{i}") for i in range(2)]
            for qid, _ in second:
                self.postfix.wait_status(qid, status="sent")
        finally:
            self.logd.start()
        for i, (_, tid) in enumerate(first):
            self.wait_statuses(tid, {f"r{i}@remote.example": "relayed"})
        for i, (_, tid) in enumerate(second):
            self.wait_statuses(tid, {f"s{i}@remote.example": "relayed"})
        self.assertIn("was rotated while stopped", self.logd.child.log())
        for _, tid in first + second:
            self.assertEqual(len(self.event_types(tid)), 1, tid)

    def test_killed_and_restarted_counts_nothing_twice(self):
        sent = [self.send([f"k{i}@remote.example", BOB], f"kill-{i}") for i in range(4)]
        for i, (_, tid) in enumerate(sent):
            self.wait_statuses(tid, {f"k{i}@remote.example": "relayed", BOB: "delivered"})
        self.logd.kill()
        # the position may lag behind what was sent: a restart reads some lines again
        with open(self.logd.position_file, "w") as f:
            f.write(f"{os.stat(self.postfix.maillog_path).st_ino} 0\n")
        self.logd.start()
        # logd reads the maillog in order and statusd stores one producer's events in
        # order: once this later delivery is in, every line read again before it is too
        _, tid = self.send(["after-kill@remote.example"], "kill-after")
        self.wait_statuses(tid, {"after-kill@remote.example": "relayed"})
        for i, (_, t) in enumerate(sent):
            self.assertEqual(self.event_types(t), [(BOB, 4), (f"k{i}@remote.example", 3)], t)

    def test_postfix_logrotate_while_running(self):
        _, before = self.send(["lr1@remote.example"], "logrotate-1")
        self.wait_statuses(before, {"lr1@remote.example": "relayed"})
        res = self.sb.run(["postfix", "-c", self.postfix.config_dir, "logrotate"], check=False)
        self.assertEqual(res.returncode, 0, res.stderr + res.stdout)
        _, after = self.send(["lr2@remote.example"], "logrotate-2")
        self.wait_statuses(after, {"lr2@remote.example": "relayed"})
        wait_for("the switch to be logged",
                 lambda: "rotated: following the new file" in self.logd.child.log(), timeout=10)

    def test_copytruncate_while_running(self):
        _, before = self.send(["ct1@remote.example"], "copytruncate-1")
        self.wait_statuses(before, {"ct1@remote.example": "relayed"})
        # logrotate's copytruncate: copy the file, then cut the original to nothing
        with open(self.postfix.maillog_path, "rb") as src, \
                open(self.postfix.maillog_path + ".ct", "wb") as dst:
            dst.write(src.read())
        os.truncate(self.postfix.maillog_path, 0)
        _, after = self.send(["ct2@remote.example"], "copytruncate-2")
        self.wait_statuses(after, {"ct2@remote.example": "relayed"})
        wait_for("the truncation to be noticed",
                 lambda: "was truncated: reading it again" in self.logd.child.log())
        self.assertEqual(len(self.event_types(before)), 1)
        self.assertEqual(len(self.event_types(after)), 1)

    def test_syslog_socket_names_and_reload(self):
        """Lines forwarded by a syslog daemon: only Postfix's program names count, and
        SIGHUP changes which names those are."""
        sock_path = self.sb.path("logd-syslog.sock")
        logd = self.sb.logd(self.sd, name="logd-syslog", maillog_file="",
                            settings={"syslog_socket": sock_path})
        try:
            qid, tid = self.send(["sy1@slow.example", "sy2@slow.example",
                                  "sy3@slow.example"], "syslog-1")
            self.wait_statuses(tid, {f"sy{i}@slow.example": "deferred" for i in (1, 2, 3)})

            def line(program, rcpt, reply):
                stamp = time.strftime("%b %e %H:%M:%S")
                return (f"<22>{stamp} mx {program}[4242]: {qid}: to=<{rcpt}>, "
                        f"relay=mx.slow.example[192.0.2.7]:25, delay=1.2, "
                        f"delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent ({reply})").encode()

            def send(*datagrams):
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
                    for d in datagrams:
                        c.sendto(d, sock_path)

            send(line("evil/smtp", "sy1@slow.example", "250 forged"),
                 b"\xff\xfe not a syslog line at all " * 200,
                 line("postfix/smtp", "sy2@slow.example", "250 2.0.0 Ok: via syslog"))
            got = self.wait_statuses(tid, {"sy2@slow.example": "relayed"})
            self.assertIn("via syslog", got["sy2@slow.example"]["smtp_reply"])
            self.assertEqual(got["sy1@slow.example"]["status"], "deferred",
                             "a line from another program is not Postfix's")
            # reload: now only "postfix-out" counts
            with open(logd.config, "a") as f:
                f.write("syslog_names = postfix-out\n")
            logd.reload()
            wait_for("the reload", lambda: "configuration reloaded" in logd.child.log())
            send(line("postfix/smtp", "sy1@slow.example", "250 old name"),
                 line("postfix-out/smtp", "sy3@slow.example", "250 2.0.0 Ok: new name"))
            got = self.wait_statuses(tid, {"sy3@slow.example": "relayed"})
            self.assertEqual(got["sy1@slow.example"]["status"], "deferred")
        finally:
            logd.stop()

    def test_message_ids_outlive_a_reload(self):
        """The Message-ID cleanup(8) logged before a SIGHUP goes with the delivery results
        logged after it: a reload keeps what msgstatus-logd remembers per queue id."""
        sock_path = self.sb.path("logd-reload.sock")
        logd = self.sb.logd(self.sd, name="logd-reload", maillog_file="",
                            settings={"syslog_socket": sock_path})
        try:
            qid, tid = self.send(["re1@slow.example"], "reload-1")
            self.wait_statuses(tid, {"re1@slow.example": "deferred"})
            mid = self.pg.scalar(f"SELECT message_id FROM messages WHERE tracking_id = '{tid}'")
            self.assertTrue(mid)
            stamp = time.strftime("%b %e %H:%M:%S")
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
                c.sendto(f"<22>{stamp} mx postfix/cleanup[4243]: {qid}: "
                         f"message-id={mid}".encode(), sock_path)
                logd.reload()
                wait_for("the reload", lambda: "configuration reloaded" in logd.child.log())
                c.sendto(f"<22>{stamp} mx postfix/smtp[4242]: {qid}: to=<re1@slow.example>, "
                         f"relay=mx.slow.example[192.0.2.7]:25, delay=1.2, "
                         f"delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: "
                         f"after the reload)".encode(), sock_path)
            self.wait_statuses(tid, {"re1@slow.example": "relayed"})
            self.assertEqual(self.pg.scalar(
                "SELECT message_id FROM events WHERE source = 'postfix' "
                f"AND queue_id = '{qid}' AND details->>'smtp_reply' LIKE '%after the reload'"),
                mid)
        finally:
            logd.stop()

    def test_statusd_down_then_back(self):
        marks = {p: len(p.child.log()) for p in (self.milter, self.logd)}
        self.sd.stop()
        try:
            qid = self.postfix.send(ALICE, ["sd-down@remote.example"], subject="sd-down",
                                    auth=AUTH)
            self.postfix.wait_status(qid, status="sent")
            # both producers found statusd gone, and keep what they have in their spools
            for p, mark in marks.items():
                wait_for(f"{p.name}: statusd unavailable",
                         lambda: "statusd unavailable" in p.child.log()[mark:], timeout=30)
        finally:
            self.sd.start()
        tid = wait_for("the milter's replayed record",
                       lambda: self.pg.scalar(f"SELECT tracking_id FROM messages "
                                              f"WHERE queue_id = '{qid}'"), timeout=30)
        self.wait_statuses(tid, {"sd-down@remote.example": "relayed"})

    def test_untracked_mail_is_not_recorded(self):
        before = self.pg.scalar("SELECT count(*) FROM messages")
        qid = self.postfix.send("zed@other.example", ["u@remote.example"], subject="untracked")
        self.postfix.wait_status(qid, status="sent")
        # its event waits unjoined (so its delivery was processed, after the milter saw the
        # message), and maintenance discards it once it is old enough
        wait_for("the unjoined event", lambda: self.pg.scalar(
            f"SELECT count(*) FROM events WHERE queue_id = '{qid}' AND message IS NULL") == "1",
            timeout=20)
        self.assertEqual(self.pg.scalar("SELECT count(*) FROM messages"), before)
        self.pg.psql("UPDATE events SET received_at = now() - interval '2 days' "
                     f"WHERE queue_id = '{qid}'")
        self.pg.psql("SELECT msgstatus_maintain(interval '90 days')")
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM events WHERE queue_id = '{qid}'"),
                         "0")


if __name__ == "__main__":
    main()
