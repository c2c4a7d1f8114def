"""The mail chain msgstatus hooks into, without msgstatus itself: a private Postfix (SMTP,
sendmail, SASL via Dovecot) delivering by LMTP to a private Dovecot (read back over IMAP
with imaplib and curl) and relaying to smtp-sink "remote MXes" that accept, defer (4xx) or
reject (5xx); deferred mail is sent after the sink recovers and the queue is flushed, and
expires with maximal_queue_lifetime = 0.

The hooks later tests need are exercised with stand-ins: a recording milter (smtpd_milters
and non_smtpd_milters get {i}, {auth_authen} and milter_macro_defaults; mail flows on when
the milter is down) and Dovecot's mail_log plugin loaded like a build-tree plugin (notify
events for LMTP saves and IMAP \\Seen, a per-user setting from a userdb field).

Needs root (Postfix runs as root); exits 77 (skipped) otherwise."""
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import unittest
import uuid

from e2e import main, require_root
from msgsandbox import Sandbox
from msgsandbox.core import wait_for
from msgsandbox.dovecot import Dovecot
from msgsandbox.postfix import Postfix, SmtpSink, make_message

USERS = {"alice@example.org": "alice-pw", "bob@example.org": "bob-pw"}
DOMAINS = "example.org, example.net"  # a macro default with a comma and a space
SYSTEM_MODULES = "/usr/lib/dovecot/modules"
MAIL_LOG_SO = "lib20_mail_log_plugin.so"
TIMEOUT = 20  # seconds for any single step of mail flow


class RecordingMilter:
    """A minimal milter (protocol 6) on a UNIX socket: accepts every message and records
    the macros Postfix sent for it. Enough to prove the Postfix class's milter hook without
    the real msgstatus-milter (which has its own tests)."""

    # Requested like msgstatus-milter does (smfi_setsymlist): stage 2 = MAIL FROM.
    MAIL_MACROS = b"{auth_authen} {msgstatus_domains} i"

    def __init__(self, sb):
        self.path = sb.path("recording-milter.sock")
        self.spec = "unix:" + self.path
        self.records = []  # {macro: value} per message, at end of message
        self.lock = threading.Lock()
        self.listener = None
        self.thread = None
        self.start()

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o666)  # smtpd and cleanup connect as user postfix
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        if self.thread is not None:
            self.thread.join(5)
        if self.listener is not None:
            self.listener.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    close = stop

    def _accept_loop(self):
        while self.running:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _recv(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self, conn):
        def reply(code, data=b""):
            conn.sendall(struct.pack(">I", len(data) + 1) + code + data)

        macros = {}
        conn.settimeout(30)
        try:
            while True:
                (size,) = struct.unpack(">I", self._recv(conn, 4))
                packet = self._recv(conn, size)
                cmd, data = packet[:1], packet[1:]
                if cmd == b"O":  # option negotiation: v6, no actions, all steps, our macros
                    reply(b"O", struct.pack(">III", 6, 0, 0) + struct.pack(">I", 2)
                          + self.MAIL_MACROS + b"\0")
                elif cmd == b"D":  # macros for the next step: NUL-separated name/value pairs
                    parts = data[1:].split(b"\0")
                    for name, value in zip(parts[0::2], parts[1::2]):
                        macros[name.decode().strip("{}")] = value.decode()
                elif cmd == b"E":  # end of message: record and accept
                    with self.lock:
                        self.records.append(dict(macros))
                    reply(b"c")
                elif cmd in (b"A", b"K"):  # abort / next message on this connection
                    macros = {k: v for k, v in macros.items() if k not in ("i", "auth_authen")}
                elif cmd == b"Q":
                    return
                else:  # connect, helo, mail, rcpt, data, header, eoh, body, unknown
                    reply(b"c")
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def record_for(self, queue_id):
        with self.lock:
            return next((r for r in self.records if r.get("i") == queue_id), None)


def imap_search(dc, user, criterion):
    """UIDs in user's INBOX matching an IMAP SEARCH criterion (e.g. 'HEADER Message-ID <x>')."""
    c = dc.imap(user)
    try:
        c.select("INBOX", readonly=True)
        typ, data = c.uid("SEARCH", None, criterion)
        return data[0].split()
    finally:
        c.logout()


def imap_fetch(dc, user, uid):
    c = dc.imap(user)
    try:
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", uid, "(BODY.PEEK[])")
        return data[0][1]
    finally:
        c.logout()


def new_mid():
    return f"<{uuid.uuid4().hex}@mailchain.test>"


class MailChainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(name="mailchain")
        try:
            # mail_log stands in for the msgstatus plugin: a notify-based mail plugin, loaded
            # from outside /usr/lib/dovecot/modules (plugin_paths, as from the build tree),
            # with plugin {} settings and a per-user override through a userdb field.
            build = cls.sb.mkdir("build")
            shutil.copy(os.path.join(SYSTEM_MODULES, MAIL_LOG_SO), build)
            cls.dc = cls.sb.add_service(Dovecot(
                cls.sb, users=USERS, mail_plugins=["notify", "mail_log"],
                plugin_paths=[os.path.join(build, MAIL_LOG_SO)],
                plugin={"mail_log_events": "save flag_change expunge",
                        "mail_log_fields": "uid box msgid flags"},
                userdb_fields={"bob@example.org": {"mail_log_events": "save"}}))
            cls.sink = cls.sb.add_service(SmtpSink(cls.sb, name="sink-remote"))
            cls.flaky = cls.sb.add_service(SmtpSink(cls.sb, mode="defer", at="rcpt",
                                                    name="sink-flaky"))
            cls.hard = cls.sb.add_service(SmtpSink(
                cls.sb, mode="reject", at="rcpt", reply="550 5.1.1 No such user here",
                name="sink-reject"))
            cls.milter = cls.sb.add_service(RecordingMilter(cls.sb))
            cls.pf = cls.sb.add_service(Postfix(
                cls.sb, domains=["example.org"], lmtp=cls.dc, sasl=cls.dc,
                transports={"remote.example": cls.sink, "flaky.example": cls.flaky,
                            "reject.example": cls.hard},
                milter=cls.milter, milter_macro_defaults={"msgstatus_domains": DOMAINS}))
        except BaseException:
            cls.sb.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def tearDown(self):
        self.assertEqual(self.dc.errors(), [], "Dovecot logged errors")

    def wait_in_inbox(self, user, message_id):
        """Wait until a message with this Message-ID is in user's INBOX; return it (bytes)."""
        uids = wait_for(f"{message_id} in {user}'s INBOX",
                        lambda: imap_search(self.dc, user, f'HEADER Message-ID "{message_id}"'),
                        timeout=TIMEOUT, interval=0.2)
        return imap_fetch(self.dc, user, uids[0])

    # ---- local delivery ------------------------------------------------------------------

    def test_smtp_to_local_user_reaches_imap(self):
        mid = new_mid()
        msg = make_message("alice@example.org", "bob@example.org", subject="smtp to imap",
                           body="over SMTP, LMTP and IMAP\n", message_id=mid)
        qid = self.pf.send("alice@example.org", ["bob@example.org"], msg)
        line = self.pf.wait_status(qid, "bob@example.org", "sent", timeout=TIMEOUT).group(0)
        self.assertRegex(line, r"relay=[^,]*\[" + re.escape(self.dc.lmtp_socket) + r"\]")
        self.assertIn("dsn=2.0.0", line)
        raw = self.wait_in_inbox("bob@example.org", mid)
        self.assertIn(b"over SMTP, LMTP and IMAP", raw)
        self.assertIn(b"Subject: smtp to imap", raw)
        self.assertIn(f"id {qid}".encode(), raw, "Postfix's Received: names the queue id")

    def test_curl_reads_the_mailbox(self):
        mid = new_mid()
        qid = self.pf.send("alice@example.org", "alice@example.org",
                           make_message("alice@example.org", "alice@example.org",
                                        subject="read me with curl", body="curl body\n",
                                        message_id=mid))
        self.pf.wait_status(qid, "alice@example.org", "sent", timeout=TIMEOUT)
        self.wait_in_inbox("alice@example.org", mid)
        uid = imap_search(self.dc, "alice@example.org", f'HEADER Message-ID "{mid}"')[0]
        uid = uid.decode()
        url = f"imap://127.0.0.1:{self.dc.imap_port}/INBOX/;UID={uid}"
        res = subprocess.run(["curl", "-sS", "--max-time", "10", "-u",
                              f"alice@example.org:{USERS['alice@example.org']}", url],
                             capture_output=True, timeout=20)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(mid.encode(), res.stdout)
        self.assertIn(b"curl body", res.stdout)

    def test_sendmail_command_reaches_imap(self):
        mid = self.pf.sendmail("alice@example.org", ["bob@example.org"],
                               subject="via sendmail", body="from the sendmail command\n")
        qid = self.pf.queue_id_of(mid, timeout=TIMEOUT)
        self.pf.wait_log(rf"{qid}: uid=0 from=<alice@example.org>", timeout=TIMEOUT)  # pickup
        self.pf.wait_status(qid, "bob@example.org", "sent", timeout=TIMEOUT)
        self.assertIn(b"from the sendmail command", self.wait_in_inbox("bob@example.org", mid))

    def test_unknown_local_user_bounces(self):
        qid = self.pf.send("alice@example.org", "nobody@example.org", subject="to nobody")
        line = self.pf.wait_status(qid, "nobody@example.org", "bounced", timeout=TIMEOUT)
        self.assertIn("dsn=5.1.1", line.group(0))
        self.assertIn("User doesn't exist", line.group(0))

    def test_mail_plugin_events_and_per_user_setting(self):
        """Dovecot loads a notify-based plugin from plugin_paths: it sees the LMTP save and
        the \\Seen flag set over IMAP; bob's userdb field overrides its plugin setting."""
        link = os.path.join(self.dc.module_dir, MAIL_LOG_SO)
        self.assertEqual(os.readlink(link), self.sb.path("build", MAIL_LOG_SO))
        self.assertIn("mail_log_events\tsave\n", self.dc.doveadm("user", "bob@example.org"))
        seen = {}
        for user in ("alice@example.org", "bob@example.org"):
            mid = new_mid()
            qid = self.pf.send("alice@example.org", user, make_message(
                "alice@example.org", user, subject="plugin events", message_id=mid))
            self.pf.wait_status(qid, user, "sent", timeout=TIMEOUT)
            self.dc.wait_log(rf"lmtp\({re.escape(user)}\).*: save: box=INBOX, uid=\d+, "
                             rf"msgid={re.escape(mid)}", timeout=TIMEOUT)
            uid = imap_search(self.dc, user, f'HEADER Message-ID "{mid}"')[0]
            c = self.dc.imap(user)
            try:
                c.select("INBOX")
                typ, _ = c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
                self.assertEqual(typ, "OK")
            finally:
                c.logout()
            # The session's logout line comes after the STORE was handled.
            self.dc.wait_log(rf"imap\({re.escape(user)}\).*Logged out", timeout=TIMEOUT)
            seen[user] = re.search(rf"imap\({re.escape(user)}\).*: flag_change: box=INBOX, "
                                   rf"uid=\d+, msgid={re.escape(mid)}, flags=\([^)]*\\Seen",
                                   self.dc.log())
        self.assertTrue(seen["alice@example.org"], "alice's \\Seen is logged")
        self.assertIsNone(seen["bob@example.org"], "bob's setting has no flag_change")

    # ---- relaying to smtp-sink -----------------------------------------------------------

    def test_relay_to_remote_sink(self):
        mid = new_mid()
        qid = self.pf.send("alice@example.org", "carol@remote.example",
                           make_message("alice@example.org", "carol@remote.example",
                                        subject="relayed", message_id=mid))
        line = self.pf.wait_status(qid, "carol@remote.example", "sent", timeout=TIMEOUT)
        self.assertIn(f"relay=127.0.0.1[127.0.0.1]:{self.sink.port}", line.group(0))
        wait_for("the sink to have the message",
                 lambda: any(mid.encode() in m for m in self.sink.messages()), timeout=TIMEOUT)

    def test_soft_reject_defers_then_sends_after_flush(self):
        since = self.pf.log_mark()
        qid = self.pf.send("alice@example.org", "dan@flaky.example", subject="deferred first")
        line = self.pf.wait_status(qid, "dan@flaky.example", "deferred", timeout=TIMEOUT,
                                   since=since).group(0)
        self.assertIn("dsn=4.3.0", line)
        self.assertIn("in reply to RCPT TO command", line)
        self.assertIn(qid, self.pf.queue_ids())
        self.flaky.set("accept")
        try:
            mark = self.pf.log_mark()
            self.pf.flush()
            line = self.pf.wait_status(qid, "dan@flaky.example", "sent", timeout=TIMEOUT,
                                       since=mark).group(0)
            self.assertIn(f"relay=127.0.0.1[127.0.0.1]:{self.flaky.port}", line)
            wait_for("the queue to forget it", lambda: qid not in self.pf.queue_ids(),
                     timeout=TIMEOUT)
        finally:
            self.flaky.set("defer", at="rcpt")

    def test_hard_reject_bounces_to_sender(self):
        qid = self.pf.send("alice@example.org", "erin@reject.example", subject="will bounce")
        line = self.pf.wait_status(qid, "erin@reject.example", "bounced",
                                   timeout=TIMEOUT).group(0)
        self.assertIn("dsn=5.1.1", line)
        self.assertIn("550 5.1.1 No such user here", line)
        # The non-delivery notice goes back to alice, through LMTP.
        m = self.pf.wait_log(rf"{qid}: sender non-delivery notification: (\w+)", timeout=TIMEOUT)
        self.pf.wait_status(m.group(1), "alice@example.org", "sent", timeout=TIMEOUT)

    # ---- SASL and the milter hook ----------------------------------------------------------

    @unittest.skipIf(shutil.which("swaks") is None, "swaks is not installed")
    def test_sasl_submission_with_swaks(self):
        def swaks(password, source):
            return subprocess.run(
                ["swaks", "--server", f"127.0.0.1:{self.pf.port}", "--helo", "client.test",
                 "--local-interface", source,
                 "--auth", "PLAIN", "--auth-user", "alice@example.org",
                 "--auth-password", password, "--from", "alice@example.org",
                 "--to", "bob@example.org", "--header", "Subject: swaks with auth",
                 "--body", "authenticated\n"], capture_output=True, text=True, timeout=30)

        # The failure comes from another loopback address: Dovecot's auth penalty (2 s and
        # more per failure) is per client IP and would slow down every later login.
        bad = swaks("wrong", "127.0.0.2")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("535", bad.stdout)
        ok = swaks(USERS["alice@example.org"], "127.0.0.1")
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        qid = re.search(r"queued as (\w+)", ok.stdout).group(1)
        self.pf.wait_log(rf"{qid}: client=\S+, sasl_method=PLAIN, "
                         r"sasl_username=alice@example.org", timeout=TIMEOUT)
        self.pf.wait_status(qid, "bob@example.org", "sent", timeout=TIMEOUT)
        rec = wait_for("the milter's record", lambda: self.milter.record_for(qid),
                       timeout=TIMEOUT)
        self.assertEqual(rec.get("auth_authen"), "alice@example.org")

    def test_milter_sees_smtp_and_sendmail_mail(self):
        qid = self.pf.send("alice@example.org", "bob@example.org", subject="milter smtp",
                           auth=("alice@example.org", USERS["alice@example.org"]))
        rec = wait_for("the milter's record", lambda: self.milter.record_for(qid),
                       timeout=TIMEOUT)
        self.assertEqual(rec.get("auth_authen"), "alice@example.org")
        self.assertEqual(rec.get("msgstatus_domains"), DOMAINS)
        qid = self.pf.send("alice@example.org", "bob@example.org", subject="no auth")
        rec = wait_for("the milter's record", lambda: self.milter.record_for(qid),
                       timeout=TIMEOUT)
        self.assertFalse(rec.get("auth_authen"), "no {auth_authen} without SMTP AUTH")
        mid = self.pf.sendmail("alice@example.org", "bob@example.org", subject="milter pickup")
        qid = self.pf.queue_id_of(mid, timeout=TIMEOUT)
        rec = wait_for("the milter's record (non_smtpd_milters)",
                       lambda: self.milter.record_for(qid), timeout=TIMEOUT)
        self.assertEqual(rec.get("msgstatus_domains"), DOMAINS)

    def test_mail_flows_while_the_milter_is_down(self):
        self.milter.stop()
        try:
            since = self.pf.log_mark()
            qid = self.pf.send("alice@example.org", "bob@example.org", subject="no milter")
            self.pf.wait_status(qid, "bob@example.org", "sent", timeout=TIMEOUT, since=since)
            self.assertIn("warning: connect to Milter service", self.pf.maillog(since))
        finally:
            self.milter.start()


class ExpiryTest(unittest.TestCase):
    """maximal_queue_lifetime = 0: one delivery attempt, then the mail expires and the
    sender is told (a second Postfix instance in the same sandbox, no Dovecot)."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(name="mailchain-expiry")
        try:
            cls.sink = cls.sb.add_service(SmtpSink(cls.sb, mode="defer", at="rcpt",
                                                   name="sink-flaky"))
            cls.pf = cls.sb.add_service(Postfix(
                cls.sb, name="postfix-expiry", transports={"flaky.example": cls.sink},
                maximal_queue_lifetime="0", bounce_queue_lifetime="0"))
        except BaseException:
            cls.sb.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def test_deferred_mail_expires(self):
        qid = self.pf.send("alice@example.org", "frank@flaky.example", subject="expires")
        self.pf.wait_status(qid, "frank@flaky.example", "deferred", timeout=TIMEOUT)
        self.pf.wait_log(rf"{qid}: from=<alice@example.org>, status=expired, "
                         r"returned to sender", timeout=TIMEOUT)


if __name__ == "__main__":
    require_root()
    main()
