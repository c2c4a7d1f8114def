"""Server-sent MDNs (docs/mdn.md) with real components: PostgreSQL, statusd, a private
Dovecot 2.3 or 2.4 with the msgstatus plugin (IMAP, LMTP), the site's Postfix (statusd's
mdn_sendmail is its sendmail) and a second, plain mail site where the senders who ask for
notifications have their mailboxes:

- a user who opted in (the preferences API) reads (FETCH BODY[]) a message with
  Disposition-Notification-To: exactly one MDN arrives at the requester, a
  multipart/report; report-type=disposition-notification with its parts (read with the
  project's report parser, tests/tools/report_json) and a null envelope sender, and the
  message gets $MDNSent; reading it again, unseen and seen, $MDNSent taken away and
  reading again, restarting statusd and Dovecot: no second MDN;
- the administrator's default (userdb msgstatus_mdn=always) and STORE +FLAGS (\\Seen): one
  MDN;
- a user who did not opt in: none, and no $MDNSent;
- a user who turned read receipts off: none, whatever the MDN preference or default;
- Disposition-Notification-To differing from the Return-Path: none, and no $MDNSent;
- statusd down during the read: the record waits in a pickup file, and the MDN goes out
  once when statusd is back (the keyword is then not set, as docs/mdn.md says);
- sendmail failing: the MDN waits in PostgreSQL, survives a restart of statusd, and goes
  out once when sendmail works again.
"""
import json
import os
import subprocess
import time
import unittest

from e2e import main, require_root
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for
from msgsandbox.postfix import make_message

BOB, CAROL, DAVE = "bob@example.org", "carol@example.org", "dave@example.org"
ERIN = "erin@example.org"  # userdb default always, but read receipts off
ALICE = "alice@example.net"  # asks for notifications, at the other site
PLUGIN = "dovecot-plugin/lib90_msgstatus_plugin.so"
REPORT_JSON = "tests/tools/report_json"
KEYWORD = "$MDNSent"


class MdnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.dc = cls.sb.dovecot(
            users={BOB: "bob-secret", CAROL: "carol-secret", DAVE: "dave-secret",
                   ERIN: "erin-secret"},
            userdb_fields={DAVE: {"msgstatus_mdn": "always"},
                           ERIN: {"msgstatus_mdn": "always"}},
            mail_plugins=["notify", "msgstatus"],
            plugin_paths=[paths.binary(PLUGIN)],
            plugin=cls.sd.dovecot_plugin_settings())
        cls.site = cls.sb.mail_site("example.net", users={ALICE: "alice-secret"})
        cls.pf = cls.sb.postfix(domains=["example.org"], lmtp=cls.dc,
                                transports={"example.net": cls.site.postfix})
        # the site's Postfix takes statusd's notifications, through a sendmail that fails
        # (EX_TEMPFAIL, queuing nothing) while the file cls.broken exists
        cls.broken = os.path.join(cls.sb.path("statusd"), "sendmail-broken")
        wrapper = os.path.join(cls.sb.path("statusd"), "sendmail")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nif [ -e {cls.broken} ]; then echo 'queue file write error' >&2;"
                    f" exit 75; fi\nexec /usr/sbin/sendmail -C {cls.pf.config_dir} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        cls.sd.stop()
        cls.sd.settings["mdn_sendmail"] = wrapper
        cls.sd.start()
        cls.n = 0
        # bob opts in through the preferences API; carol chooses nothing (default never)
        code, doc = cls.sd.api("/api/v1/preferences", cls.sd.token(BOB), method="PUT",
                               body={"mdn": "always"})
        assert code == 200 and doc["mdn"] == "always", doc

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def deliver(self, user, dnt=ALICE, sender=ALICE, extra=()):
        """Deliver a message asking for a notification to user over LMTP (envelope sender:
        the Return-Path Dovecot writes); its Message-ID."""
        MdnTest.n += 1
        msgid = f"<mdn{os.getpid()}x{self.n}@example.net>"
        headers = [("Disposition-Notification-To", dnt)] + list(extra)
        self.dc.deliver(user, make_message(sender, [user], subject=f"Question {self.n}",
                                           headers=headers, message_id=msgid),
                        sender=sender)
        return msgid

    def imap(self, user):
        c = self.dc.imap(user)
        c.select("INBOX")
        self.addCleanup(lambda: c.state != "LOGOUT" and c.logout())
        return c

    @staticmethod
    def uid_of(c, msgid):
        typ, data = c.uid("SEARCH", None, "HEADER", "Message-ID", msgid)
        uids = data[0].split()
        assert typ == "OK" and len(uids) == 1, (typ, data)
        return uids[0]

    @staticmethod
    def flags(c, uid):
        c.noop()  # the keyword is set by the plugin after the command: see it
        typ, data = c.uid("FETCH", uid, "(FLAGS)")
        return data[0].decode()

    def notifications(self, msgid):
        """The MDNs about msgid in alice's mailbox at the other site, parsed."""
        out = []
        for raw in self.site.messages(ALICE):
            if b"multipart/report" not in raw or msgid.encode() not in raw:
                continue
            res = subprocess.run([paths.binary(REPORT_JSON)], input=raw, capture_output=True,
                                 check=True)
            out.append((raw, json.loads(res.stdout)))
        return out

    def decision(self, user, msgid):
        rows = self.pg.psql("SELECT decision, reason, state FROM mdn "
                            f"WHERE recipient = '{user}' AND message_id = '{msgid}'")
        return rows[0] if rows else None

    def settle(self):
        """Let what statusd handed to Postfix reach the other site."""
        self.pf.flush()
        self.pf.wait_queue_empty()
        self.site.postfix.flush()
        self.site.postfix.wait_queue_empty()

    def wait_notifications(self, msgid, n=1):
        try:
            wait_for(f"{n} MDN about {msgid}", lambda: len(self.notifications(msgid)) >= n,
                     timeout=30)
        except Exception:
            self.fail(f"no MDN about {msgid}: decision {self.decision(BOB, msgid)}\n"
                      f"statusd: {self.sd.child.log()[-1500:]}\n"
                      f"maillog: {self.pf.maillog()[-1500:]}")
        return self.notifications(msgid)

    def check_mdn(self, raw, doc, user, msgid):
        self.assertEqual(doc["kind"], "mdn", doc)
        self.assertEqual(doc["disposition"],
                         "automatic-action/MDN-sent-automatically; displayed", doc)
        self.assertEqual(doc["original_message_id"], msgid, doc)
        self.assertEqual([r["final_recipient"] for r in doc["recipients"]], [user], doc)
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode()
        self.assertIn("Return-Path: <>", head, "sent with the null envelope sender")
        self.assertIn("report-type=disposition-notification", head)
        self.assertIn(f"To: <{ALICE}>", head)
        self.assertIn(f"In-Reply-To: {msgid}", head)
        self.assertNotIn("Disposition-Notification-To", head)

    # tests
    def test_opted_in_sends_exactly_one(self):
        msgid = self.deliver(BOB)
        c = self.imap(BOB)
        uid = self.uid_of(c, msgid)
        c.uid("FETCH", uid, "(BODY[])")  # implicit \Seen
        found = self.wait_notifications(msgid)
        self.assertEqual(len(found), 1)
        self.check_mdn(*found[0], BOB, msgid)
        wait_for("$MDNSent", lambda: KEYWORD in self.flags(c, uid), timeout=15)
        self.assertEqual(self.decision(BOB, msgid)[0::2], ["send", "sent"])

        # read again: FETCH, unseen and seen; the keyword keeps the plugin quiet
        c.uid("FETCH", uid, "(BODY[])")
        c.uid("STORE", uid, "-FLAGS", "(\\Seen)")
        c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        # without the keyword (a client removed it) statusd's record decides: no second
        c.uid("STORE", uid, "-FLAGS", f"({KEYWORD} \\Seen)")
        c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        wait_for("$MDNSent again", lambda: KEYWORD in self.flags(c, uid), timeout=15)
        c.logout()
        # restarts
        self.sd.stop()
        self.sd.start()
        self.dc.stop()
        self.dc.start()
        c = self.imap(BOB)
        c.uid("STORE", uid, "-FLAGS", f"({KEYWORD} \\Seen)")
        c.uid("FETCH", uid, "(BODY[])")
        wait_for("$MDNSent after the restarts", lambda: KEYWORD in self.flags(c, uid),
                 timeout=15)
        self.settle()
        self.assertEqual(len(self.notifications(msgid)), 1, "exactly one MDN")
        self.assertEqual(self.pg.scalar(
            f"SELECT count(*) FROM mdn WHERE message_id = '{msgid}'"), "1")

    def test_userdb_default_and_store(self):
        msgid = self.deliver(DAVE)
        c = self.imap(DAVE)
        uid = self.uid_of(c, msgid)
        c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        found = self.wait_notifications(msgid)
        self.check_mdn(*found[0], DAVE, msgid)
        wait_for("$MDNSent", lambda: KEYWORD in self.flags(c, uid), timeout=15)
        self.settle()
        self.assertEqual(len(self.notifications(msgid)), 1)

    def assert_none_sent(self, user, msgid, reason):
        c = self.imap(user)
        uid = self.uid_of(c, msgid)
        c.uid("FETCH", uid, "(BODY[])")
        wait_for("statusd's decision", lambda: self.decision(user, msgid) is not None,
                 timeout=15)
        decision = self.decision(user, msgid)
        self.assertIn(reason, decision[1], decision)
        self.assertEqual(decision[2], "none")
        time.sleep(1)  # the answer reached the plugin: it sets no keyword
        self.assertNotIn(KEYWORD, self.flags(c, uid))
        self.settle()
        self.assertEqual(self.notifications(msgid), [])

    def test_not_opted_in_sends_none(self):
        msgid = self.deliver(CAROL)
        self.assert_none_sent(CAROL, msgid, "preference is never")

    def test_read_receipts_off_sends_none(self):
        # read receipts off wins over the userdb default (and over mdn = always)
        code, doc = self.sd.api("/api/v1/preferences", self.sd.token(ERIN), method="PUT",
                                body={"read_receipts": False})
        self.assertEqual(code, 200, doc)
        msgid = self.deliver(ERIN)
        self.assert_none_sent(ERIN, msgid, "read receipts off")
        code, doc = self.sd.api("/api/v1/preferences", self.sd.token(ERIN), method="PUT",
                                body={"mdn": "always"})
        self.assertEqual(code, 200, doc)
        msgid = self.deliver(ERIN)
        self.assert_none_sent(ERIN, msgid, "read receipts off")

    def test_dnt_differs_from_return_path(self):
        msgid = self.deliver(BOB, dnt=ALICE, sender="bounces@example.net")
        self.assert_none_sent(BOB, msgid, "differs from the Return-Path")

    def test_statusd_down_during_the_read(self):
        msgid = self.deliver(BOB)
        self.sd.stop()
        try:
            c = self.imap(BOB)
            uid = self.uid_of(c, msgid)
            t0 = time.monotonic()
            c.uid("FETCH", uid, "(BODY[])")
            self.assertLess(time.monotonic() - t0, 2, "the read does not wait for statusd")
            wait_for("a pickup file", lambda: any(
                not n.startswith(".") for n in os.listdir(self.sd.pickup_dir)), timeout=15)
        finally:
            self.sd.start()
        found = self.wait_notifications(msgid)
        self.check_mdn(*found[0], BOB, msgid)
        self.settle()
        self.assertEqual(len(self.notifications(msgid)), 1)
        self.assertNotIn(KEYWORD, self.flags(c, uid), "nobody heard statusd's answer")

    def test_sendmail_failing_then_back(self):
        msgid = self.deliver(BOB)
        open(self.broken, "w").close()
        try:
            c = self.imap(BOB)
            uid = self.uid_of(c, msgid)
            c.uid("FETCH", uid, "(BODY[])")
            wait_for("a failed attempt", lambda: self.pg.scalar(
                f"SELECT attempts FROM mdn WHERE message_id = '{msgid}' AND state = 'pending'")
                == "1", timeout=15)
            self.assertIn("exited with 75: queue file write error", self.pg.scalar(
                f"SELECT last_error FROM mdn WHERE message_id = '{msgid}'"))
            wait_for("$MDNSent: statusd decided to send", lambda: KEYWORD in self.flags(c, uid),
                     timeout=15)
            self.sd.stop()
        finally:
            os.unlink(self.broken)
        self.sd.start()
        found = self.wait_notifications(msgid)  # the retry, 10 s after the failure
        self.check_mdn(*found[0], BOB, msgid)
        self.settle()
        self.assertEqual(len(self.notifications(msgid)), 1)
        self.assertEqual(self.decision(BOB, msgid)[2], "sent")


if __name__ == "__main__":
    main()
