"""Only the addresses the sender used: the whole private chain (Postfix with the milter and
logd, Dovecot with the msgstatus plugin and Sieve, statusd, PostgreSQL), mail sent over
SMTP with SASL, read over IMAP. An event counts only for an address the sender used, or
one the mail system tied to it (Postfix's orig_to=, LMTP's ORCPT); every other event is
in nothing the sender sees (status, list, timeline, feeds):

- mail to robert@, an alias of bob@: only robert@ shows, delivered, then read;
- fred@ forwards to dave@ and keeps a copy (an alias that Postfix expands and logs): only
  fred@ shows, and dave's read counts for fred@;
- a copy injected over LMTP into carol's mailbox, carrying the Msgstatus-Id of a message
  alice sent to bob only, then read: carol is not shown;
- bob's Sieve redirect to dave@, re-injected through a listener without the milter (so the
  header stays): dave is not shown.
"""
import os
import pwd
import unittest

from e2e import main, require_root, with_sieve
from msgsandbox import Sandbox, paths
from msgsandbox.core import free_port, wait_for
from msgsandbox.postfix import make_message

ALICE, BOB, CAROL, DAVE = ("alice@example.org", "bob@example.org", "carol@example.org",
                           "dave@example.org")
ROBERT = "robert@example.org"  # an alias of bob's
FRED = "fred@example.org"  # forwards to dave and keeps a copy
AUTH = (ALICE, "alice-secret")
PLUGIN = "dovecot-plugin/lib90_msgstatus_plugin.so"
SIEVE = """require ["fileinto"];
if header :contains "subject" "redirect-me" {
  redirect "dave@example.org";
  stop;
}
"""


class AddressesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.milter = cls.sb.milter(cls.sd)
        # Sieve's redirect goes out through a Postfix listener without the milter (a
        # re-injection path that keeps the header); its port is set before Postfix starts
        cls.reinject_port = free_port()
        settings, extra = with_sieve(cls.sd.dovecot_plugin_settings(),
                                     f"submission_host = 127.0.0.1:{cls.reinject_port}\n")
        cls.dovecot = cls.sb.dovecot(
            users={ALICE: "alice-secret", BOB: "bob-secret", CAROL: "carol-secret",
                   DAVE: "dave-secret", FRED: "fred-secret"},
            mail_plugins=["notify", "msgstatus"], lmtp_plugins=["sieve"],
            plugin_paths=[paths.binary(PLUGIN)], plugin=settings, extra_config=extra)
        home = os.path.dirname(cls.dovecot.mailbox_dir(BOB))
        os.makedirs(home, exist_ok=True)
        script = os.path.join(home, ".dovecot.sieve")
        with open(script, "w") as f:
            f.write(SIEVE)
        mail = pwd.getpwnam("mail")
        for p in (os.path.dirname(home), home, script):
            os.chown(p, mail.pw_uid, mail.pw_gid)
        reinject = (f"127.0.0.1:{cls.reinject_port} inet n - n - - smtpd\n"
                    "  -o smtpd_milters= -o non_smtpd_milters=\n")
        cls.postfix = cls.sb.postfix(
            domains=["example.org"], lmtp=cls.dovecot, sasl=cls.dovecot, milter=cls.milter,
            milter_macro_defaults={"msgstatus_domains": "example.org"}, services=reinject,
            settings={"virtual_alias_maps":
                      "inline:{ robert@example.org=bob@example.org, "
                      "{ fred@example.org = fred@example.org, dave@example.org } }"})
        cls.logd = cls.sb.logd(cls.sd, postfix=cls.postfix)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def send(self, rcpts, subject):
        """Send as alice (SASL); returns the tracking id."""
        qid = self.postfix.send(ALICE, rcpts, subject=subject, auth=AUTH)
        return wait_for(f"the milter's record of {qid}",
                        lambda: self.pg.scalar(f"SELECT tracking_id FROM messages "
                                               f"WHERE queue_id = '{qid}'"), timeout=20)

    def recipients(self, tid):
        code, doc = self.sd.status(tid, user=ALICE)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r["status"] for r in doc["recipients"]}

    def wait_statuses(self, tid, want, timeout=30):
        try:
            wait_for(f"statuses {want}", lambda: self.recipients(tid) == want,
                     timeout=timeout)
        except Exception:
            self.fail(f"want {want}, have {self.recipients(tid)}\n"
                      f"logd: {self.logd.child.log()[-1000:]}\n"
                      f"dovecot: {self.dovecot.log()[-1500:]}")

    def plugin_events(self, tid, user):
        """The plugin's events of user for the message, with whom they count for."""
        return self.pg.psql(
            "SELECT e.type, coalesce(e.rcpt, '-') FROM events e JOIN messages m"
            f" ON m.id = e.message WHERE m.tracking_id = '{tid}' AND e.source = 'dovecot'"
            f" AND e.recipient = '{user}' ORDER BY e.event_time, e.type")

    def wait_plugin_events(self, tid, user, n):
        wait_for(f"{n} events of {user}", lambda: len(self.plugin_events(tid, user)) >= n,
                 timeout=30)
        return self.plugin_events(tid, user)

    def read(self, user, subject):
        c = self.dovecot.imap(user)
        try:
            c.select("INBOX")
            typ, data = c.uid("SEARCH", None, "SUBJECT", subject)
            self.assertTrue(data[0], f"{subject} not in {user}'s INBOX")
            c.uid("STORE", data[0].split()[-1], "+FLAGS", "(\\Seen)")
        finally:
            c.logout()

    def assert_never_shown(self, tid, user):
        """user is in nothing alice sees: status, list, timeline, the log her feeds and
        webhooks are made of."""
        self.assertNotIn(user, self.recipients(tid))
        token = self.sd.token(ALICE)
        code, doc = self.sd.api(f"/api/v1/messages?recipient={user}", token)
        self.assertEqual((code, [m["tracking_id"] for m in doc["messages"]]), (200, []))
        code, doc = self.sd.api(f"/api/v1/messages/{tid}/timeline", token)
        self.assertEqual(code, 200, doc)
        self.assertNotIn(user, {e["recipient"] for e in doc["events"]})
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message"
            f" WHERE m.tracking_id = '{tid}' AND e.log_offset IS NOT NULL"
            f" AND e.rcpt = '{user}'"), "0")

    # tests
    def test_alias(self):
        tid = self.send([ROBERT], "alias-1")
        self.wait_statuses(tid, {ROBERT: "delivered"})
        self.read(BOB, "alias-1")
        self.wait_statuses(tid, {ROBERT: "read"})
        self.assertEqual(self.wait_plugin_events(tid, BOB, 2),
                         [["4", ROBERT], ["7", ROBERT]])
        self.assert_never_shown(tid, BOB)

    def test_forward_that_keeps_a_copy(self):
        tid = self.send([FRED], "forward-1")
        self.wait_statuses(tid, {FRED: "delivered"})
        self.read(DAVE, "forward-1")
        self.wait_statuses(tid, {FRED: "read"})
        self.assert_never_shown(tid, DAVE)

    def test_copy_injected_over_lmtp(self):
        tid = self.send([BOB], "inject-1")
        self.wait_statuses(tid, {BOB: "delivered"})
        forged = make_message("mallory@example.net", [CAROL], subject="inject-1",
                              headers=[("Msgstatus-Id", tid)])
        self.dovecot.deliver(CAROL, forged)
        self.read(CAROL, "inject-1")
        self.assertEqual(self.wait_plugin_events(tid, CAROL, 2), [["4", "-"], ["7", "-"]])
        self.assertEqual(self.recipients(tid), {BOB: "delivered"})
        self.assert_never_shown(tid, CAROL)

    def test_sieve_redirect(self):
        tid = self.send([BOB], "redirect-me-1")
        # bob's script sends it on to dave, header and all; only dave's mailbox has it
        self.assertEqual(self.wait_plugin_events(tid, DAVE, 1), [["4", "-"]])
        self.read(DAVE, "redirect-me-1")
        self.wait_plugin_events(tid, DAVE, 2)
        self.assertEqual(self.plugin_events(tid, BOB), [])
        self.assertNotIn(DAVE, self.recipients(tid))
        self.assert_never_shown(tid, DAVE)


if __name__ == "__main__":
    main()
