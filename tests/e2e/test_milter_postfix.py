"""msgstatus-milter in a real, private Postfix 3.7 (with Dovecot for LMTP and SASL, an
smtp-sink as the remote MX, statusd and PostgreSQL behind it):

- mail over SMTP (SASL) and via sendmail from an enabled domain is tagged and recorded with
  the right queue id and recipients; other mail passes untouched and unrecorded; a forged
  Msgstatus-Id on inbound mail is removed;
- statusd stopped: mail still flows, the spool fills; statusd back: every event arrives
  exactly once; the milter process killed: Postfix goes on delivering, the supervisor
  restarts it; SIGHUP reloads without dropping anything;
- hostile input through Postfix: huge headers, hundreds of recipients, no Message-ID,
  8-bit junk.
"""
import os
import re
import signal
import smtplib
import time
import unittest

from e2e import main, require_root, tsan_build
from msgsandbox import Sandbox
from msgsandbox.core import free_port, wait_for
from msgsandbox.postfix import make_message

ALICE = "alice@example.org"
BOB = "bob@example.org"
TAG = re.compile(rb"^Msgstatus-Id: ([a-z2-7]{26})\r?$", re.M | re.I)


def start_mail_system(cls, milter_settings=None, macros=None, **postfix_kw):
    """On cls (whose .sb and .sd are up): the milter, Dovecot for LMTP and SASL, an
    smtp-sink for remote.example, and Postfix with the milter for example.org (main.cf's
    milter_macro_defaults: macros, by default msgstatus_domains = example.org)."""
    cls.milter = cls.sb.milter(cls.sd, settings=milter_settings)
    cls.dovecot = cls.sb.dovecot()
    cls.sink = cls.sb.smtp_sink(dump=True)
    cls.postfix = cls.sb.postfix(
        domains=["example.org"], lmtp=cls.dovecot, sasl=cls.dovecot, milter=cls.milter,
        milter_macro_defaults=macros or {"msgstatus_domains": "example.org"},
        transports={"remote.example": cls.sink}, **postfix_kw)


class MilterPostfixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        # a listener only trusted software reaches, set up as docs/deployment.md shows
        cls.trusted_port = free_port()
        trusted = (f"127.0.0.1:{cls.trusted_port} inet n - n - - smtpd\n"
                   "  -o { milter_macro_defaults = { msgstatus_domains = example.org }, "
                   "msgstatus_trust=any }\n")
        start_mail_system(cls, services=trusted)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def queued(self, tracking_id):
        return self.pg.psql("SELECT recipient, e.queue_id, sasl_user IS NOT NULL FROM events e "
                            "JOIN messages m ON m.id = e.message "
                            f"WHERE e.tracking_id = '{tracking_id}' AND e.type = 1 "
                            "ORDER BY recipient")

    def inbox_tags(self, user, marker):
        """The Msgstatus-Id headers of the message in user's INBOX whose subject has marker."""
        c = self.dovecot.imap(user)
        try:
            c.select("INBOX")
            typ, data = c.search(None, "SUBJECT", marker)
            ids = data[0].split()
            if not ids:
                return None
            typ, msg = c.fetch(ids[-1], "(BODY.PEEK[HEADER])")
            return TAG.findall(msg[0][1])
        finally:
            c.logout()

    def wait_inbox(self, user, marker):
        return wait_for(f"{marker} in {user}'s INBOX",
                        lambda: self.inbox_tags(user, marker) is not None, timeout=30) and \
            self.inbox_tags(user, marker)

    def test_smtp_with_sasl_is_tagged_and_recorded(self):
        rcpts = [BOB, "carol@remote.example", "dave@remote.example"]
        qid = self.postfix.send(ALICE, rcpts, subject="smtp-1", auth=(ALICE, "alice-secret"))
        tags = self.wait_inbox(BOB, "smtp-1")
        self.assertEqual(len(tags), 1, "exactly one tag, ours")
        tid = tags[0].decode()
        wait_for("3 queued events", lambda: len(self.queued(tid)) == 3, timeout=20)
        self.assertEqual(self.queued(tid), [[r, qid, "t"] for r in sorted(rcpts)])
        row = self.pg.psql(f"SELECT sender, sasl_user, owner, size > 0 FROM messages "
                           f"WHERE tracking_id = '{tid}'")
        self.assertEqual(row, [[ALICE, ALICE, ALICE, "t"]])
        self.postfix.wait_log(rf"{qid}: to=<dave@remote\.example>.*status=sent")
        sunk = b"".join(self.sink.messages())
        self.assertIn(tid.encode(), sunk, "the remote MX got the tag too")

    def test_sendmail_is_tagged_and_recorded(self):
        mid = self.postfix.sendmail(ALICE, [BOB, "erin@remote.example"], subject="local-1")
        tags = self.wait_inbox(BOB, "local-1")
        tid = tags[0].decode()
        qid = self.postfix.queue_id_of(mid)
        wait_for("2 queued events", lambda: len(self.queued(tid)) == 2, timeout=20)
        self.assertEqual(self.queued(tid), [[BOB, qid, "f"], ["erin@remote.example", qid, "f"]])
        self.assertEqual(self.pg.scalar(f"SELECT message_id FROM messages "
                                        f"WHERE tracking_id = '{tid}'"), mid)

    def test_trusted_listener_tracks_without_sasl(self):
        def send(port, subject):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
                c.sendmail(ALICE, [BOB], make_message(ALICE, [BOB], subject=subject))
        send(self.trusted_port, "listener-trusted")
        send(self.postfix.port, "listener-plain")  # the ordinary port: no SASL, not tracked
        tags = self.wait_inbox(BOB, "listener-trusted")
        self.assertEqual(len(tags), 1)
        wait_for("the queued event", lambda: len(self.queued(tags[0].decode())) == 1)
        self.assertEqual(self.wait_inbox(BOB, "listener-plain"), [])

    def test_other_mail_is_untouched(self):
        before = int(self.pg.scalar("SELECT count(*) FROM messages"))
        # an authenticated user, but a sender domain that is not enabled
        self.postfix.send("alice@other.example", [BOB], subject="other-1",
                          auth=(ALICE, "alice-secret"))
        # not authenticated: inbound mail claiming to be from an enabled domain
        self.postfix.send(ALICE, [BOB], subject="spoof-1")
        for marker in ("other-1", "spoof-1"):
            self.assertEqual(self.wait_inbox(BOB, marker), [], marker)
        time.sleep(1)
        self.assertEqual(int(self.pg.scalar("SELECT count(*) FROM messages")), before)

    def test_forged_tag_is_removed(self):
        forged = "Msgstatus-Id: abcdefghijklmnopqrstuvwxyz\r\n"
        msg = (f"From: <mallory@outside.example>\r\nTo: <{BOB}>\r\nSubject: forged-1\r\n"
               f"Message-ID: <forged-1@outside.example>\r\n{forged}\r\nhi\r\n")
        self.postfix.send("mallory@outside.example", [BOB], message=msg)
        self.assertEqual(self.wait_inbox(BOB, "forged-1"), [])
        # and on tracked mail: the forged one goes, ours stays
        msg2 = msg.replace("forged-1", "forged-2").replace("mallory@outside.example", ALICE)
        self.postfix.send(ALICE, [BOB], message=msg2, auth=(ALICE, "alice-secret"))
        tags = self.wait_inbox(BOB, "forged-2")
        self.assertEqual(len(tags), 1)
        self.assertNotEqual(tags[0], b"abcdefghijklmnopqrstuvwxyz")

    def test_statusd_down_then_back(self):
        self.sd.stop()
        try:
            qids = [self.postfix.send(ALICE, [BOB, "x@remote.example"], subject=f"down-{i}",
                                      auth=(ALICE, "alice-secret")) for i in range(5)]
            for i in range(5):
                self.wait_inbox(BOB, f"down-{i}")  # delivered without statusd
            self.assertGreater(self.milter.spool_bytes(), 0)
        finally:
            self.sd.start()
        for qid in qids:
            wait_for(f"events of {qid}", lambda q=qid: self.pg.scalar(
                f"SELECT count(*) FROM events WHERE queue_id = '{q}' AND type = 1") == "2",
                timeout=30)
        dup = self.pg.psql("SELECT event_id FROM events GROUP BY event_id HAVING count(*) > 1")
        self.assertEqual(dup, [])

    def test_milter_killed_mail_flows_and_it_comes_back(self):
        worker = self.milter.worker_pid()
        os.kill(worker, signal.SIGKILL)
        self.postfix.send(ALICE, [BOB], subject="nomilter-1", auth=(ALICE, "alice-secret"))
        self.assertEqual(self.wait_inbox(BOB, "nomilter-1"), [], "passed untagged")
        wait_for("the worker to be restarted",
                 lambda: self.milter.worker_pid() not in (None, worker), timeout=20)
        wait_for("the milter socket", lambda: os.path.exists(self.milter.socket_path))
        time.sleep(0.5)
        self.postfix.send(ALICE, [BOB], subject="back-1", auth=(ALICE, "alice-secret"))
        self.assertEqual(len(self.wait_inbox(BOB, "back-1")), 1)

    def test_reload(self):
        self.milter.settings["verbose"] = "yes"
        self.milter.write_config()
        self.milter.reload()
        wait_for("the reload", lambda: "configuration reloaded" in self.milter.child.log())
        self.postfix.send(ALICE, [BOB], subject="reload-1", auth=(ALICE, "alice-secret"))
        self.assertEqual(len(self.wait_inbox(BOB, "reload-1")), 1)

    def test_hostile_input_through_postfix(self):
        huge = "X-Huge: " + "A" * 60000
        msg = (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: huge-1\r\n{huge}\r\n\r\nbody\r\n")
        self.postfix.send(ALICE, [BOB], message=msg, auth=(ALICE, "alice-secret"))
        self.assertEqual(len(self.wait_inbox(BOB, "huge-1")), 1)
        many = [f"r{i}@remote.example" for i in range(300)]
        qid = self.postfix.send(ALICE, many, subject="many-1", auth=(ALICE, "alice-secret"))
        wait_for("300 queued events", lambda: self.pg.scalar(
            f"SELECT count(*) FROM events WHERE queue_id = '{qid}'") == "300", timeout=30)
        # no Message-ID: Postfix adds one after the milter; the event has none
        nomid = f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: nomid-1\r\n\r\nhi\r\n"
        qid = self.postfix.send(ALICE, [BOB], message=nomid, auth=(ALICE, "alice-secret"))
        self.assertEqual(len(self.wait_inbox(BOB, "nomid-1")), 1)
        # 8-bit junk (not UTF-8) in the envelope: whatever smtpd makes of it, mail flows
        # and the milter survives
        replies = self.raw_smtp([b"MAIL FROM:<" + ALICE.encode() + b"> SMTPUTF8",
                                 b"RCPT TO:<" + BOB.encode() + b">",
                                 b"RCPT TO:<j\xfcnk\xff@remote.example>"],
                                b"From: <" + ALICE.encode() + b">\r\nSubject: junk-1\r\n\r\nx\r\n")
        self.assertTrue(replies[-1].startswith(b"250"), replies)
        self.assertEqual(len(self.wait_inbox(BOB, "junk-1")), 1)
        self.assertTrue(self.milter.child.alive())
        self.assertIsNotNone(self.milter.worker_pid())

    def raw_smtp(self, commands, message):
        """An authenticated SMTP session with raw bytes; returns the server's replies."""
        import base64
        import socket
        s = socket.create_connection((self.postfix.host, self.postfix.port), timeout=20)
        f = s.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline()
                lines.append(line)
                if line[3:4] != b"-":
                    return b"".join(lines)
        out = [reply()]
        auth = base64.b64encode(b"\0" + ALICE.encode() + b"\0alice-secret")
        for cmd in [b"EHLO client.sandbox.test", b"AUTH PLAIN " + auth] + commands + [b"DATA"]:
            s.sendall(cmd + b"\r\n")
            out.append(reply())
        s.sendall(message + b"\r\n.\r\n")
        out.append(reply())
        s.sendall(b"QUIT\r\n")
        s.close()
        return out


@unittest.skipIf(tsan_build(), "libmilter's worker pool races when it stops after a burst of "
                 "connections (in libmilter alone); test_shipper covers the holding under TSan")
class MilterSpoolDiskFullTest(unittest.TestCase):
    """The milter's spool on a file system that is full: mail is still tagged, and its
    events reach statusd from memory, whether statusd is there at the time or comes later."""

    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.fs = cls.sb.tmpfs("spoolfs", "4m")
        start_mail_system(cls, {"spool_dir": os.path.join(cls.fs.path, "milter")})

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    inbox_tags = MilterPostfixTest.inbox_tags
    wait_inbox = MilterPostfixTest.wait_inbox

    def queued_events(self, tid):
        return self.pg.scalar(f"SELECT count(*) FROM events WHERE tracking_id = '{tid}' "
                              "AND type = 1")

    def test_disk_full(self):
        self.fs.fill()
        try:
            # statusd there: the events go from memory at once
            self.postfix.send(ALICE, [BOB, "x@remote.example"], subject="full-up",
                              auth=(ALICE, "alice-secret"))
            tags = self.wait_inbox(BOB, "full-up")
            self.assertEqual(len(tags), 1, "tagged although the spool could not record it")
            wait_for("its events", lambda: self.queued_events(tags[0].decode()) == "2",
                     timeout=20)
            # statusd away as well: they wait in memory until it is back
            self.sd.stop()
            try:
                for i in range(3):
                    self.postfix.send(ALICE, [BOB], subject=f"full-down-{i}",
                                      auth=(ALICE, "alice-secret"))
                down = [self.wait_inbox(BOB, f"full-down-{i}") for i in range(3)]
                self.assertEqual([len(t) for t in down], [1, 1, 1])
            finally:
                self.sd.start()
            for t in down:
                wait_for("the held events", lambda t=t: self.queued_events(t[0].decode()) == "1",
                         timeout=30)
        finally:
            self.fs.empty()
        log = self.milter.child.log()
        self.assertIn("events held in memory", log)
        self.assertNotIn("NOT recorded", log)
        self.assertNotIn("past the last segment", log, "a new spool is not a lost cursor")
        # the disk has room again: the spool takes events as before
        self.postfix.send(ALICE, [BOB], subject="room-again", auth=(ALICE, "alice-secret"))
        tags = self.wait_inbox(BOB, "room-again")
        wait_for("its event", lambda: self.queued_events(tags[0].decode()) == "1")
        self.assertEqual(log.count("events held in memory"),
                         self.milter.child.log().count("events held in memory"))
        dup = self.pg.psql("SELECT event_id FROM events GROUP BY event_id HAVING count(*) > 1")
        self.assertEqual(dup, [])

    def test_stopped_while_holding(self):
        """The milter stopped with events in memory: they go to the spool if it has room
        by then, and from there to statusd after the restart."""
        held = re.compile(r": (\d+) events held in memory \(")
        self.fs.fill()
        self.sd.stop()
        try:
            # the spool's last page may still take a record or two: send until one is held
            before, tids = len(held.findall(self.milter.child.log())), []
            for i in range(20):  # a page holds about ten
                self.postfix.send(ALICE, [BOB], subject=f"held-at-stop-{i}",
                                  auth=(ALICE, "alice-secret"))
                tids.append(self.wait_inbox(BOB, f"held-at-stop-{i}")[0].decode())
                if len(held.findall(self.milter.child.log())) > before:
                    break
            n = sum(map(int, held.findall(self.milter.child.log())[before:]))
            self.assertEqual(n, 1, "the last message's event is held")
            self.fs.empty()
            self.milter.stop()
            self.assertIn("stopping: 1 event held in memory went to the spool",
                          self.milter.child.log())
            self.milter.start()
        finally:
            self.fs.empty()
            self.sd.start()
        for tid in tids:
            wait_for("the event", lambda t=tid: self.queued_events(t) == "1", timeout=30)

class MainCfTrustTest(unittest.TestCase):
    """docs/deployment.md section 5: on a host no untrusted client reaches, main.cf's
    milter_macro_defaults with msgstatus_trust=any tracks mail submitted without SASL."""

    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        # the main.cf line of the guide:
        # { msgstatus_domains = example.org, .example.org }, msgstatus_trust=any
        start_mail_system(cls, macros={"msgstatus_domains": "example.org, .example.org",
                                       "msgstatus_trust": "any"})

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def test_main_cf_trust_tracks_without_sasl(self):
        self.assertIn("msgstatus_domains = example.org, .example.org }, msgstatus_trust=any",
                      self.sb.run(["postconf", "-c", self.postfix.config_dir, "-h",
                                   "milter_macro_defaults"]).stdout)
        for sender, subject in ((ALICE, "main-cf-1"), ("carol@sub.example.org", "main-cf-2")):
            qid = self.postfix.send(sender, [BOB], subject=subject)  # no SASL
            owner = wait_for(f"{subject} recorded", lambda: self.pg.scalar(
                f"SELECT owner FROM messages WHERE queue_id = '{qid}'"), timeout=30)
            self.assertEqual(owner, sender)
        # a domain that is not enabled is still left alone
        qid = self.postfix.send("dan@other.example", [BOB], subject="main-cf-3")
        wait_for("main-cf-3 delivered", lambda: "main-cf-3".encode() in b"".join(
            self.dovecot.messages(BOB)), timeout=30)
        self.assertIsNone(self.pg.scalar(f"SELECT owner FROM messages WHERE queue_id = '{qid}'"))


if __name__ == "__main__":
    main()
