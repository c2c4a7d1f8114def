"""Moves are not deletions: the Dovecot plugin in a real, private Dovecot 2.3 (IMAP, LMTP,
Sieve) with statusd and PostgreSQL behind it, driven by imaplib and doveadm. The plugin
reports each copy of a tracked message that enters a mailbox of the recipient (delivered,
copied) and each copy expunged (expunged); the sender sees deleted only when no copy is
left:

- UID MOVE to Archive: delivered (then read in the Archive: read);
- COPY, STORE \\Deleted, EXPUNGE on one connection, and the COPY and the EXPUNGE on two
  connections: delivered;
- read, moved to the \\Trash mailbox: still read; the Trash emptied: deleted;
- Sieve fileinto at delivery: delivered into that mailbox; expunged there: deleted;
- doveadm expunge: deleted.
"""
import os
import pwd
import unittest

from e2e import event, main, require_root, with_sieve
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for
from msgsandbox.postfix import make_message

BOB = "bob@example.org"
SENDER = "alice@example.net"
PLUGIN = "dovecot-plugin/lib90_msgstatus_plugin.so"
TYPES = {4: "delivered", 7: "read", 8: "unread", 12: "copied", 13: "expunged"}
MAILBOXES = """namespace inbox {
  mailbox Archive {
    special_use = \\Archive
    auto = create
  }
  mailbox Trash {
    special_use = \\Trash
    auto = create
  }
  mailbox Filed {
    auto = create
  }
}
"""
SIEVE = """require ["fileinto"];
if header :contains "subject" "file-me" {
  fileinto "Filed";
  stop;
}
"""


class MovesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        settings, extra = with_sieve(cls.sd.dovecot_plugin_settings(), MAILBOXES)
        cls.dc = cls.sb.dovecot(
            users={BOB: "bob-secret"}, mail_plugins=["notify", "msgstatus"],
            lmtp_plugins=["sieve"], plugin_paths=[paths.binary(PLUGIN)], plugin=settings,
            extra_config=extra)
        # bob's Sieve script, in his home (where Dovecot's userdb puts it)
        home = os.path.dirname(cls.dc.mailbox_dir(BOB))
        os.makedirs(home, exist_ok=True)
        script = os.path.join(home, ".dovecot.sieve")
        with open(script, "w") as f:
            f.write(SIEVE)
        mail = pwd.getpwnam("mail")
        for p in (os.path.dirname(home), home, script):
            os.chown(p, mail.pw_uid, mail.pw_gid)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def tracked(self, subject="msg"):
        """Record a message to bob as the milter would, deliver it over LMTP; its id."""
        MovesTest.n += 1
        tid = f"mv{os.getpid()}x{self.n}"
        self.assertTrue(all("ack" in r for r in self.sd.send_events(
            [event("queued", tracking_id=tid, recipient=BOB, sender=SENDER,
                   sasl_user=SENDER)])))
        self.dc.deliver(BOB, make_message(SENDER, [BOB], subject=f"{subject} {tid}",
                                          headers=[("Msgstatus-Id", tid)]))
        return tid

    def events(self, tid):
        rows = self.pg.psql("SELECT type, details->>'mailbox' FROM events "
                            f"WHERE tracking_id = '{tid}' AND source = 'dovecot' "
                            "ORDER BY event_time, type")
        return sorted((TYPES.get(int(t), t), m) for t, m in rows)

    def wait_events(self, tid, want, timeout=15):
        want = sorted(want)
        try:
            wait_for(f"events {want}", lambda: self.events(tid) == want, timeout=timeout)
        except Exception:
            self.fail(f"want {want}, have {self.events(tid)}\n"
                      f"dovecot: {self.dc.log()[-1500:]}")

    def status(self, tid):
        code, doc = self.sd.status(tid, user=SENDER)
        self.assertEqual(code, 200, doc)
        self.assertEqual([r["recipient"] for r in doc["recipients"]], [BOB])
        return doc["recipients"][0]["status"]

    def imap(self, mailbox="INBOX"):
        c = self.dc.imap(BOB)
        c.select(mailbox)
        self.addCleanup(lambda: c.state != "LOGOUT" and c.logout())
        return c

    def uid_of(self, c, tid):
        c.noop()
        typ, data = c.uid("SEARCH", None, "SUBJECT", tid)
        self.assertEqual(typ, "OK")
        self.assertTrue(data[0], f"{tid} not in the selected mailbox")
        return data[0].split()[-1].decode()

    def ok(self, reply):
        self.assertEqual(reply[0], "OK", reply)
        return reply

    # tests
    def test_uid_move_to_archive(self):
        tid = self.tracked()
        self.wait_events(tid, [("delivered", "INBOX")])
        c = self.imap()
        self.ok(c.uid("MOVE", self.uid_of(c, tid), "Archive"))
        self.wait_events(tid, [("delivered", "INBOX"), ("copied", "Archive"),
                               ("expunged", "INBOX")])
        self.assertEqual(self.status(tid), "delivered")
        # read where it now is
        a = self.imap("Archive")
        self.ok(a.uid("STORE", self.uid_of(a, tid), "+FLAGS", "(\\Seen)"))
        self.wait_events(tid, [("delivered", "INBOX"), ("copied", "Archive"),
                               ("expunged", "INBOX"), ("read", "Archive")])
        self.assertEqual(self.status(tid), "read")

    def test_copy_then_expunge(self):
        tid = self.tracked()
        self.wait_events(tid, [("delivered", "INBOX")])
        c = self.imap()
        uid = self.uid_of(c, tid)
        self.ok(c.uid("COPY", uid, "Archive"))
        self.ok(c.uid("STORE", uid, "+FLAGS", "(\\Deleted)"))
        self.ok(c.expunge())
        self.wait_events(tid, [("delivered", "INBOX"), ("copied", "Archive"),
                               ("expunged", "INBOX")])
        self.assertEqual(self.status(tid), "delivered")

    def test_copy_and_expunge_on_two_connections(self):
        tid = self.tracked()
        self.wait_events(tid, [("delivered", "INBOX")])
        one, two = self.imap(), self.imap()
        self.ok(one.uid("COPY", self.uid_of(one, tid), "Archive"))
        uid = self.uid_of(two, tid)
        self.ok(two.uid("STORE", uid, "+FLAGS", "(\\Deleted)"))
        self.ok(two.expunge())
        self.wait_events(tid, [("delivered", "INBOX"), ("copied", "Archive"),
                               ("expunged", "INBOX")])
        self.assertEqual(self.status(tid), "delivered")

    def test_trash_then_empty_trash(self):
        tid = self.tracked()
        self.wait_events(tid, [("delivered", "INBOX")])
        c = self.imap()
        uid = self.uid_of(c, tid)
        self.ok(c.uid("STORE", uid, "+FLAGS", "(\\Seen)"))
        self.ok(c.uid("MOVE", uid, "Trash"))
        self.wait_events(tid, [("delivered", "INBOX"), ("read", "INBOX"),
                               ("copied", "Trash"), ("expunged", "INBOX")])
        self.assertEqual(self.status(tid), "read")
        # empty the Trash: the last copy goes
        t = self.imap("Trash")
        self.ok(t.uid("STORE", self.uid_of(t, tid), "+FLAGS", "(\\Deleted)"))
        self.ok(t.expunge())
        self.wait_events(tid, [("delivered", "INBOX"), ("read", "INBOX"),
                               ("copied", "Trash"), ("expunged", "INBOX"),
                               ("expunged", "Trash")])
        self.assertEqual(self.status(tid), "deleted")

    def test_sieve_fileinto_at_delivery(self):
        tid = self.tracked(subject="file-me")
        self.wait_events(tid, [("delivered", "Filed")])
        self.assertEqual(self.status(tid), "delivered")
        f = self.imap("Filed")
        self.ok(f.uid("STORE", self.uid_of(f, tid), "+FLAGS", "(\\Deleted)"))
        self.ok(f.expunge())
        self.wait_events(tid, [("delivered", "Filed"), ("expunged", "Filed")])
        self.assertEqual(self.status(tid), "deleted")

    def test_doveadm_expunge(self):
        tid = self.tracked()
        self.wait_events(tid, [("delivered", "INBOX")])
        self.dc.doveadm("expunge", "-u", BOB, "mailbox", "INBOX", "header",
                        "Msgstatus-Id", tid)
        self.wait_events(tid, [("delivered", "INBOX"), ("expunged", "INBOX")])
        self.assertEqual(self.status(tid), "deleted")


if __name__ == "__main__":
    main()
