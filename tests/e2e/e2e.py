"""Shared helpers for the end-to-end tests (imported by the test_*.py scripts)."""
import glob
import itertools
import os
import sys
import unittest

from msgsandbox.statusd import now_rfc3339

_ids = itertools.count(1)


def schema_version():
    """The version a migrated database is at: the number of the newest sql/NNN_*.sql."""
    from msgsandbox import paths
    names = glob.glob(os.path.join(paths.source, "sql", "[0-9][0-9][0-9]_*.sql"))
    return max(int(os.path.basename(n)[:3]) for n in names)


def event(type_="queued", tracking_id="trk", recipient="bob@example.net", offset_ms=0, **kw):
    """A valid protocol-1 event; keyword arguments add or override fields."""
    ev = {"v": 1, "id": f"t{os.getpid()}-{next(_ids)}", "type": type_,
          "time": now_rfc3339(offset_ms), "source": "test", "tracking_id": tracking_id,
          "recipient": recipient}
    ev.update(kw)
    return {k: v for k, v in ev.items() if v is not None}


def main():
    """unittest.main with verbose output; exit 77 (skipped) when told to."""
    if os.environ.get("MSGSTATUS_E2E_SKIP"):
        sys.exit(77)
    unittest.main(verbosity=2)


class StatusdTest(unittest.TestCase):
    """Tests against a private PostgreSQL and statusd, shared by the class: cls.sb, cls.pg,
    cls.sd."""

    @classmethod
    def setUpClass(cls):
        from msgsandbox import Sandbox
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def send(self, events):
        """Send events on statusd's socket; each must be acknowledged."""
        replies = self.sd.send_events(events)
        self.assertTrue(all("ack" in r for r in replies), replies)

    def statusctl(self, *args):
        """Run statusctl with statusd's configuration; it must succeed."""
        import subprocess
        from msgsandbox import paths
        out = subprocess.run([paths.binary("statusd/statusctl"), "-c", self.sd.config, *args],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def status_of(self, msg_id, rcpt):
        """The recipient's entry in the message's status, as its sender sees it."""
        code, doc = self.sd.status(msg_id)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}[rcpt]


def tsan_build():
    """Whether the programs under test are the ThreadSanitizer build (scripts/test --tsan)."""
    from msgsandbox import paths
    try:
        with open(os.path.join(paths.build, "CMakeCache.txt")) as f:
            return "MSGSTATUS_TSAN:BOOL=ON\n" in f.read()
    except OSError:
        return False


def require_root():
    if os.geteuid() != 0:
        print("skipped: needs root (private Postfix/Dovecot instances)")
        sys.exit(77)


def mail_chain(cls, users, statusd_settings=None, macros=None, milter_settings=None,
               **postfix_kw):
    """Start the whole private chain on a test class: cls.sb, .pg, .sd (statusd), .milter,
    .dovecot (IMAP, LMTP, the msgstatus plugin), .postfix (SASL through Dovecot, the milter
    for example.org, LMTP to Dovecot) and .logd. macros: main.cf's milter_macro_defaults
    (default msgstatus_domains = example.org); milter_settings: more milter settings;
    postfix_kw: more Postfix arguments."""
    from msgsandbox import Sandbox, paths
    cls.sb = Sandbox()
    cls.pg = cls.sb.postgres()
    cls.sd = cls.sb.statusd(cls.pg, settings=statusd_settings)
    cls.milter = cls.sb.milter(cls.sd, settings=milter_settings)
    cls.dovecot = cls.sb.dovecot(users=users, mail_plugins=["notify", "msgstatus"],
                                 plugin_paths=[paths.binary("dovecot-plugin/lib90_msgstatus_plugin.so")],
                                 plugin=cls.sd.dovecot_plugin_settings())
    cls.postfix = cls.sb.postfix(domains=["example.org"], lmtp=cls.dovecot, sasl=cls.dovecot,
                                 milter=cls.milter,
                                 milter_macro_defaults=macros or
                                 {"msgstatus_domains": "example.org"}, **postfix_kw)
    cls.logd = cls.sb.logd(cls.sd, postfix=cls.postfix)


def with_sieve(plugin, extra_config=""):
    """Per-user Sieve scripts (Pigeonhole) at ~/.dovecot.sieve, in the installed Dovecot's
    syntax: (plugin settings, dovecot.conf text) for Dovecot(plugin=, extra_config=), with
    plugin and extra_config as given plus what Sieve needs."""
    from msgsandbox.dovecot import version
    plugin = dict(plugin)
    if version() >= (2, 4):
        extra_config += ("sieve_script personal {\n  driver = file\n  path = ~/sieve\n"
                         "  active_path = ~/.dovecot.sieve\n}\n")
    else:
        plugin["sieve"] = "file:~/sieve;active=~/.dovecot.sieve"
    return plugin, extra_config
