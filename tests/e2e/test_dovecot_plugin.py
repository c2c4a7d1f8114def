"""The Dovecot plugin in a real, private Dovecot 2.3 or 2.4 (IMAP + LMTP) with statusd and
PostgreSQL behind it, driven by imaplib and curl:

- LMTP delivery of a tracked message -> delivered; STORE +FLAGS (\\Seen) -> read;
  FETCH BODY[] -> read; BODY.PEEK[] -> nothing; -FLAGS (\\Seen) -> unread; EXPUNGE ->
  expunged (the only copy: deleted); APPEND -> nothing (moves: test_moves.py); a message without the header -> nothing;
- a user with msgstatus_read_receipts=no (userdb field) -> no read event at all;
- events go over statusd's socket (no pickup file while statusd runs);
- a record statusd rejects: logged with the record the reply answers, and the connection
  kept;
- LMTP's ORCPT becomes the delivered event's orig_recipient: the status, and the mailbox
  user's read later, count for the address the sender used;
- IMAP logins and logouts -> presence (online, then offline with last_seen) for a user who
  opted in;
- statusd stopped: IMAP goes on as before and nothing fails; statusd back: every event
  arrives, once; and so when the imap process is killed before it could hand its pickup
  file over.
"""
import os
import subprocess
import time
import unittest

from e2e import event, main, require_root
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for
from msgsandbox.postfix import make_message

BOB, CAROL = "bob@example.org", "carol@example.org"
ROBERT = "robert@example.org"  # an alias of bob's, as a sender may address him
SENDER = "alice@example.net"
PLUGIN = "dovecot-plugin/lib90_msgstatus_plugin.so"
TYPES = {1: "queued", 4: "delivered", 7: "read", 8: "unread", 9: "deleted", 12: "copied",
         13: "expunged"}


class DovecotPluginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.dc = cls.sb.dovecot(
            users={BOB: "bob-secret", CAROL: "carol-secret"},
            userdb_fields={CAROL: {"msgstatus_read_receipts": "no"}},
            mail_plugins=["notify", "msgstatus"],
            plugin_paths=[paths.binary(PLUGIN)],
            plugin=cls.sd.dovecot_plugin_settings())
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def tracked(self, user=BOB, header=True, addressed=None, rcpt_options=()):
        """Record a message to addressed (default user) as the milter would, deliver it to
        user over LMTP; its tracking id."""
        DovecotPluginTest.n += 1
        tid = f"dctest{os.getpid()}x{self.n}"
        self.assertTrue(all("ack" in r for r in self.sd.send_events(
            [event("queued", tracking_id=tid, recipient=addressed or user, sender=SENDER,
                   sasl_user=SENDER, message_id=f"<{tid}@example.net>")])))
        headers = [("Msgstatus-Id", tid)] if header else []
        self.dc.deliver(user, make_message(SENDER, [addressed or user], subject=tid,
                                           headers=headers, message_id=f"<{tid}@example.net>"),
                        rcpt_options=rcpt_options)
        return tid

    def pickups(self):
        """How many pickup files statusd has stored so far."""
        return self.sd.child.log().count(" pickup: ")

    def delivered_three(self):
        """Three tracked messages delivered to bob, their delivered events stored; an IMAP
        session of his with INBOX selected, and the messages' UIDs."""
        tids = [self.tracked() for _ in range(3)]
        for tid in tids:
            self.wait_events(tid, [("delivered", BOB)])
        c = self.imap()
        return tids, c, [self.uid_of(c, t) for t in tids]

    def read_all(self, c, uids):
        """STORE +FLAGS (\\Seen) on each of uids: a read event each."""
        for uid in uids:
            typ, _ = c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            self.assertEqual(typ, "OK")

    def assert_waiting_once(self, tids):
        """Each message of tids has one record waiting in the pickup directory."""
        waiting = self.pickup_records()
        for tid in tids:
            self.assertEqual(sum(f'"tracking_id":"{tid}"' in r for r in waiting), 1,
                             f"{tid}'s event waits in the pickup directory, once")

    def pickup_records(self):
        """The records waiting in the pickup directory: in complete files and in those still
        appended to (".open-")."""
        for _ in range(10):
            records = []
            try:
                for n in os.listdir(self.sd.pickup_dir):
                    if n.endswith(".events") and not n.startswith((".tmp-", ".bad-")):
                        with open(os.path.join(self.sd.pickup_dir, n)) as f:
                            records += f.read().splitlines()
                return records
            except FileNotFoundError:
                continue  # handed over (renamed) meanwhile: list again
        self.fail("the pickup directory kept changing")

    def events(self, tid):
        rows = self.pg.psql("SELECT type, recipient FROM events "
                            f"WHERE tracking_id = '{tid}' AND source <> 'test' "
                            "ORDER BY log_offset NULLS LAST, event_time")
        return [(TYPES.get(int(t), t), r) for t, r in rows]

    def wait_events(self, tid, want, timeout=15):
        try:
            wait_for(f"events {want}", lambda: self.events(tid) == want, timeout=timeout)
        except Exception:
            self.fail(f"want {want}, have {self.events(tid)}\n"
                      f"dovecot: {self.dc.child.log()[-1500:]}")

    def status(self, tid, rcpt=BOB):
        code, doc = self.sd.status(tid, user=SENDER)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}[rcpt]

    def imap(self, user=BOB):
        c = self.dc.imap(user)
        c.select("INBOX")
        self.addCleanup(lambda: c.state != "LOGOUT" and c.logout())
        return c

    def imap_pid(self, c):
        """The imap process serving the IMAP client c: the process of Dovecot's service imap
        that holds the server end of c's TCP connection (the tests run as root)."""
        port = c.sock.getsockname()[1]
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if (int(fields[1].rsplit(":", 1)[1], 16) == self.dc.imap_port
                            and int(fields[2].rsplit(":", 1)[1], 16) == port):
                        inodes.add(f"socket:[{fields[9]}]")
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != "imap":
                        continue
                fds = os.listdir(f"/proc/{pid}/fd")
                if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                    return int(pid)
            except OSError:
                continue  # gone meanwhile
        self.fail(f"no imap process holds the connection from port {port}")

    def wait_exited(self, pid):
        """Wait until process pid has ended (a zombie counts: it has run its exit code)."""
        def gone():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except OSError:
                return True
        wait_for(f"imap process {pid} to exit", gone, timeout=15)

    def uid_of(self, c, tid):
        c.noop()  # let a selected mailbox see mail delivered since
        typ, data = c.uid("SEARCH", None, "SUBJECT", tid)
        self.assertEqual(typ, "OK")
        return data[0].split()[-1].decode()

    # tests
    def test_delivery_store_seen_unseen_expunge(self):
        tid = self.tracked()
        self.wait_events(tid, [("delivered", BOB)])
        self.assertEqual(self.status(tid)["status"], "delivered")
        c = self.imap()
        uid = self.uid_of(c, tid)
        c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        self.wait_events(tid, [("delivered", BOB), ("read", BOB)])
        got = self.status(tid)
        self.assertEqual((got["status"], got["displayed"]), ("read", "yes"))
        c.uid("STORE", uid, "+FLAGS", "(\\Seen)")  # no change, no event
        c.uid("STORE", uid, "-FLAGS", "(\\Seen)")
        self.wait_events(tid, [("delivered", BOB), ("read", BOB), ("unread", BOB)])
        c.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        c.expunge()
        self.wait_events(tid, [("delivered", BOB), ("read", BOB), ("unread", BOB),
                               ("expunged", BOB)])
        # the only copy is gone: deleted
        self.assertEqual(self.status(tid)["status"], "deleted")

    def test_fetch_body_reads_and_peek_does_not(self):
        peeked, fetched = self.tracked(), self.tracked()
        self.wait_events(fetched, [("delivered", BOB)])
        c = self.imap()
        c.uid("FETCH", self.uid_of(c, peeked), "(BODY.PEEK[])")
        c.uid("FETCH", self.uid_of(c, fetched), "(BODY[])")
        self.wait_events(fetched, [("delivered", BOB), ("read", BOB)])
        self.assertEqual(self.events(peeked), [("delivered", BOB)])

    def test_read_with_curl(self):
        tid = self.tracked()
        self.wait_events(tid, [("delivered", BOB)])
        c = self.imap()
        uid = self.uid_of(c, tid)
        res = subprocess.run(["curl", "-s", "--user", f"{BOB}:bob-secret",
                              f"imap://127.0.0.1:{self.dc.imap_port}/INBOX;UID={uid}"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(f"Msgstatus-Id: {tid}", res.stdout)
        self.wait_events(tid, [("delivered", BOB), ("read", BOB)])

    def test_untracked_and_appended_mail_are_ignored(self):
        plain = self.tracked(header=False)
        c = self.imap()
        appended = f"dcappend{os.getpid()}"
        c.append("INBOX", "(\\Seen)", None,
                 make_message(SENDER, [BOB], subject=appended,
                              headers=[("Msgstatus-Id", appended)]))
        c.uid("STORE", self.uid_of(c, plain), "+FLAGS", "(\\Seen)")
        marker = self.tracked()  # everything before it has been handed over by now
        c.uid("STORE", self.uid_of(c, marker), "+FLAGS", "(\\Seen)")
        self.wait_events(marker, [("delivered", BOB), ("read", BOB)])
        self.assertEqual(self.events(plain), [])
        self.assertEqual(self.pg.scalar(
            f"SELECT count(*) FROM events WHERE tracking_id = '{appended}'"), "0")

    def test_receipts_off_sends_no_read_event(self):
        tid = self.tracked(user=CAROL)
        self.wait_events(tid, [("delivered", CAROL)])
        c = self.imap(CAROL)
        c.uid("FETCH", self.uid_of(c, tid), "(BODY[])")
        c.uid("STORE", self.uid_of(c, tid), "-FLAGS", "(\\Seen)")
        marker = self.tracked()
        b = self.imap()
        b.uid("STORE", self.uid_of(b, marker), "+FLAGS", "(\\Seen)")
        self.wait_events(marker, [("delivered", BOB), ("read", BOB)])
        self.assertEqual(self.events(tid), [("delivered", CAROL)])
        self.assertEqual(self.status(tid, CAROL)["status"], "delivered")

    def test_events_go_over_the_socket(self):
        before = self.pickups()
        tid = self.tracked()
        self.wait_events(tid, [("delivered", BOB)])
        c = self.imap()
        pid = self.imap_pid(c)
        c.uid("STORE", self.uid_of(c, tid), "+FLAGS", "(\\Seen)")
        self.wait_events(tid, [("delivered", BOB), ("read", BOB)])
        c.logout()
        self.wait_exited(pid)  # the plugin has ended: whatever was unacknowledged is filed
        self.assertEqual(self.pickups(), before, "no pickup file while statusd runs")
        self.assertEqual(self.files_waiting(), [])

    def files_waiting(self):
        return [n for n in os.listdir(self.sd.pickup_dir) if not n.startswith(".")]

    def test_rejected_record_is_logged_with_its_record(self):
        """statusd rejects a record (an ORCPT longer than an address may be): the plugin
        logs statusd's reason with the record the reply is about, keeps the connection, and
        what follows goes over it as before."""
        before, mark = self.pickups(), self.dc.log_mark()
        addressed = "r" * 600 + "@example.org"
        tid = self.tracked(rcpt_options=[f"ORCPT=rfc822;{addressed}"])
        # the LMTP process reads the reply when it next hands records over
        marker = self.tracked()
        self.wait_events(marker, [("delivered", BOB)])
        m = self.dc.wait_log(r"msgstatus: statusd rejected record (\d+) \((.*)\): (.*)$",
                             since=mark)
        self.assertIn('"type":"delivered"', m.group(2))
        self.assertIn(f'"recipient":"{BOB}"', m.group(2))
        self.assertIn("orig_recipient: expected at most 512 characters", m.group(3))
        self.assertEqual(self.events(tid), [])
        self.assertEqual(self.pickups(), before, "the connection was kept")
        self.assertNotIn("closed", self.dc.log(mark))

    def test_original_recipient_from_lmtp(self):
        tid = self.tracked(addressed=ROBERT, rcpt_options=[f"ORCPT=rfc822;{ROBERT}"])
        self.wait_events(tid, [("delivered", BOB)])
        self.assertEqual(self.pg.scalar(
            f"SELECT orig_recipient || ' ' || rcpt FROM events WHERE tracking_id = '{tid}' "
            "AND source = 'dovecot'"), f"{ROBERT} {ROBERT}")
        self.assertEqual(self.status(tid, ROBERT)["status"], "delivered")
        # bob reads his copy: it is robert, the address the sender used, who read it
        c = self.imap()
        c.uid("STORE", self.uid_of(c, tid), "+FLAGS", "(\\Seen)")
        self.wait_events(tid, [("delivered", BOB), ("read", BOB)])
        got = self.status(tid, ROBERT)
        self.assertEqual((got["status"], got["displayed"]), ("read", "yes"))
        code, doc = self.sd.status(tid, user=SENDER)
        self.assertEqual([r["recipient"] for r in doc["recipients"]], [ROBERT])

    def test_presence_from_imap_sessions(self):
        bob, alice = self.sd.token(BOB), self.sd.token(SENDER)
        self.sd.api("/api/v1/preferences", bob, method="PUT", body={"presence": True})
        self.addCleanup(lambda: self.sd.api("/api/v1/preferences", bob, method="PUT",
                                            body={"presence": False}))
        c = self.imap()
        wait_for("bob online", lambda: self.sd.api("/api/v1/presence/" + BOB, alice)[1]
                 .get("online") is True, timeout=10)
        code, doc = self.sd.api("/api/v1/presence/" + BOB, alice)
        self.assertEqual((code, doc["client"]), (200, "imap"), doc)
        c.logout()
        wait_for("bob offline", lambda: self.sd.api("/api/v1/presence/" + BOB, alice)[1]
                 .get("online") is False, timeout=10)
        self.assertIsNotNone(self.sd.api("/api/v1/presence/" + BOB, alice)[1]["last_seen"])
        # carol did not opt in: nothing about her
        self.imap(CAROL).noop()
        self.assertEqual(self.sd.api("/api/v1/presence/" + CAROL, alice)[0], 404)

    def test_statusd_down_then_back(self):
        tids, c, uids = self.delivered_three()
        self.sd.stop()
        try:
            t0 = time.monotonic()
            self.read_all(c, uids)
            typ, _ = c.noop()
            self.assertEqual(typ, "OK")
            self.assertLess(time.monotonic() - t0, 2, "IMAP does not wait for statusd")
            self.assert_waiting_once(tids)
        finally:
            self.sd.start()
        # the session stays open: the plugin hands its pickup file over within a second
        for tid in tids:
            self.wait_events(tid, [("delivered", BOB), ("read", BOB)], timeout=30)

    def test_statusd_down_and_imap_process_killed(self):
        """statusd away: the imap process appends each transaction's events to one pickup
        file it holds locked, and is killed right after its replies, before it could
        rename the file. statusd reads the file it left (its lock went with the process):
        every event stored, once."""
        tids, c, uids = self.delivered_three()
        pid = self.imap_pid(c)
        self.sd.stop()
        try:
            t0 = time.monotonic()
            self.read_all(c, uids)
            os.kill(pid, 9)
            # the plugin hands its file over a second after it opened it: killed before
            # that, the process leaves it open (a machine too loaded for that tests only
            # that nothing is lost)
            killed_in_time = time.monotonic() - t0 < 0.9
            self.wait_exited(pid)
            c.shutdown()
            c.state = "LOGOUT"  # nothing left to log out of
            left = [n for n in os.listdir(self.sd.pickup_dir) if n.startswith(".open-")]
            if killed_in_time:
                self.assertTrue(left, "the file the process appended to is left open")
            self.assert_waiting_once(tids)
        finally:
            self.sd.start()
        for tid in tids:
            self.wait_events(tid, [("delivered", BOB), ("read", BOB)], timeout=30)
        if killed_in_time:
            self.assertIn("was left open by a process that ended", self.sd.child.log())
        wait_for("the pickup files to be removed", lambda: not [
            n for n in os.listdir(self.sd.pickup_dir) if n.endswith(".events")], timeout=15)

    def test_statusd_down_and_pickup_unwritable(self):
        """statusd away and the pickup directory not writable (as on a full disk): the
        events wait in the IMAP process's memory and go to statusd with the next hand-over
        once it is back; nothing is lost and IMAP never waits."""
        tids, c, uids = self.delivered_three()
        mark = self.dc.log_mark()
        self.sd.stop()
        mode = os.stat(self.sd.pickup_dir).st_mode & 0o7777
        os.chmod(self.sd.pickup_dir, 0o555)
        try:
            t0 = time.monotonic()
            for uid in uids[:2]:
                typ, _ = c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
                self.assertEqual(typ, "OK")
            self.assertLess(time.monotonic() - t0, 2, "IMAP does not wait for statusd")
            self.dc.wait_log(r"msgstatus: \d+ events wait in memory", since=mark)
            self.sd.start()
            time.sleep(1.1)  # the plugin tries statusd again a second after a failure
            typ, _ = c.uid("STORE", uids[2], "+FLAGS", "(\\Seen)")  # the next hand-over
            self.assertEqual(typ, "OK")
        finally:
            os.chmod(self.sd.pickup_dir, mode)
            if not self.sd.child.alive():
                self.sd.start()
        for tid in tids:
            self.wait_events(tid, [("delivered", BOB), ("read", BOB)], timeout=30)
        self.assertNotIn("events lost", self.dc.log(since=mark))


if __name__ == "__main__":
    main()
