"""msgstatus-setup (msgstatus-setup(8)) against a private Postfix configuration made from
Debian's own main.cf and master.cf, a private Dovecot configuration with the snippet of the
installed Dovecot's version, and private statusd.conf, state and tmpfiles.d folders
(--config-only: no users, database, services or reloads). Checks what enable writes, that it
keeps existing milters, that running it again changes nothing, that master.cf's postlog is
added only when missing, that --dry-run changes nothing and shows the diff, that a failing
check puts everything back, and that disable restores the files byte for byte."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from e2e import main
from msgsandbox import paths

DEBIAN_MAIN = "/usr/share/postfix/main.cf.debian"
DEBIAN_MASTER = "/usr/share/postfix/master.cf.dist"
MILTER = "{ unix:msgstatus/milter.sock, default_action=accept }"


def dovecot_snippet():
    out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout
    minor = re.match(r"2\.(\d+)", out)
    name = "90-msgstatus.conf" if minor and minor.group(1) == "3" else "90-msgstatus-2.%s.conf" % (
        minor.group(1) if minor else "x")
    return os.path.join(paths.source, "dovecot-plugin", name)


class SetupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="msgstatus-setup-")
        self.pf = os.path.join(self.tmp, "postfix")
        self.dc = os.path.join(self.tmp, "dovecot")
        os.makedirs(self.pf)
        os.makedirs(os.path.join(self.dc, "conf.d"))
        shutil.copy(DEBIAN_MAIN, os.path.join(self.pf, "main.cf"))
        shutil.copy(DEBIAN_MASTER, os.path.join(self.pf, "master.cf"))
        # a site that signs with OpenDKIM already
        with open(os.path.join(self.pf, "main.cf"), "a") as f:
            f.write("smtpd_milters = unix:opendkim/opendkim.sock\n")
        with open(os.path.join(self.dc, "dovecot.conf"), "w") as f:
            f.write("!include_try conf.d/*.conf\n")
        os.makedirs(os.path.join(self.tmp, "msgstatus"))
        shutil.copy(os.path.join(paths.source, "etc", "statusd.conf"), os.path.join(self.tmp, "msgstatus"))
        shutil.copy(os.path.join(paths.source, "etc", "milter.conf"), os.path.join(self.tmp, "msgstatus"))
        self.snippet = dovecot_snippet()
        self.env = dict(os.environ,
                        MSGSTATUS_CONF_DIR=os.path.join(self.tmp, "msgstatus"),
                        MSGSTATUS_STATE_DIR=os.path.join(self.tmp, "state"),
                        MSGSTATUS_TMPFILES_DIR=os.path.join(self.tmp, "tmpfiles.d"),
                        MSGSTATUS_DOVECOT_SNIPPET=self.snippet)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def setup(self, *args, expect=0):
        argv = [paths.binary("msgstatus-setup"), "-c", self.pf, "-d",
                os.path.join(self.dc, "dovecot.conf"), "-g", "mail", "--config-only"] + list(args)
        res = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=120)
        self.assertEqual(res.returncode, expect, "%s\nstdout: %s\nstderr: %s" % (args, res.stdout, res.stderr))
        return res

    def pc(self, name):
        return subprocess.run(["postconf", "-c", self.pf, "-h", name], capture_output=True,
                              text=True, check=True).stdout.strip()

    def files(self):
        """every file the command may write, by path"""
        got = {}
        for root, _, names in os.walk(self.tmp):
            for n in names:
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    got[os.path.relpath(p, self.tmp)] = f.read()
        return got

    def test_enable_is_idempotent_and_keeps_milters(self):
        self.setup("enable", "example.org")
        self.assertEqual(self.pc("smtpd_milters"), MILTER + ", unix:opendkim/opendkim.sock")
        self.assertEqual(self.pc("non_smtpd_milters"), "$smtpd_milters")
        self.assertEqual(self.pc("milter_macro_defaults"), "{ msgstatus_domains = example.org }")
        self.assertEqual(self.pc("enable_long_queue_ids"), "yes")
        self.assertEqual(self.pc("maillog_file"), "/var/log/postfix.log")
        with open(self.snippet, "rb") as a, open(os.path.join(self.dc, "conf.d", "90-msgstatus.conf"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        with open(os.path.join(self.tmp, "msgstatus", "statusd.conf")) as f:
            self.assertEqual(re.findall(r"^events_socket_group.*", f.read(), re.M), ["events_socket_group = mail"])
        with open(os.path.join(self.tmp, "tmpfiles.d", "msgstatus.conf")) as f:
            tmpfiles = f.read()
        self.assertIn("d /run/msgstatus 0750 msgstatus mail -", tmpfiles)
        self.assertIn("d /var/spool/msgstatus/pickup 2770 msgstatus mail -", tmpfiles)
        # the milter reads Postfix's own notices, and has a secret for its ENVIDs
        self.assertEqual(self.pc("internal_mail_filter_classes"), "bounce")
        secret = os.path.join(self.tmp, "msgstatus", "report.secret")
        with open(os.path.join(self.tmp, "msgstatus", "milter.conf")) as f:
            self.assertEqual(re.findall(r"^report_secret_file.*", f.read(), re.M),
                             ["report_secret_file = " + secret])
        self.assertEqual(os.stat(secret).st_mode & 0o777, 0o600)
        self.assertEqual(os.path.getsize(secret), 32)
        # Debian's master.cf has postlog: not added twice
        with open(os.path.join(self.pf, "master.cf")) as f:
            self.assertEqual(len(re.findall(r"^postlog\s", f.read(), re.M)), 1)

        before = self.files()
        self.setup("enable", "example.org")
        self.assertEqual(self.files(), before, "a second enable changed files")

        self.setup("enable", ".example.org", "example.net")
        self.assertEqual(self.pc("milter_macro_defaults"),
                         "{ msgstatus_domains = .example.org, example.net, example.org }")
        self.assertEqual(self.pc("smtpd_milters"), MILTER + ", unix:opendkim/opendkim.sock")
        res = self.setup("status")
        self.assertIn("domains: .example.org, example.net, example.org", res.stdout)
        self.assertIn("postfix smtpd_milters: yes", res.stdout)

    def test_disable_restores_the_files(self):
        with open(os.path.join(self.pf, "master.cf")) as f:
            master = f.read()
        # a master.cf without postlog gets it, once, and loses it again on disable
        with open(os.path.join(self.pf, "master.cf"), "w") as f:
            f.write(re.sub(r"^postlog\s.*\n", "", master, flags=re.M))
        before = self.files()
        self.setup("enable", "example.org", "example.net")
        self.setup("enable", "example.org")
        with open(os.path.join(self.pf, "master.cf")) as f:
            self.assertEqual(len(re.findall(r"^postlog\s", f.read(), re.M)), 1)
        self.setup("disable", "example.net")
        self.assertEqual(self.pc("milter_macro_defaults"), "{ msgstatus_domains = example.org }")
        self.assertIn("msgstatus/milter.sock", self.pc("smtpd_milters"))
        self.setup("disable", "example.org")
        after = self.files()
        after.pop(os.path.join("state", "setup.state"), None)
        self.assertEqual(after, before)
        res = self.setup("status", expect=1)
        self.assertIn("domains: none", res.stdout)

    def test_dry_run_changes_nothing(self):
        before = self.files()
        res = self.setup("--dry-run", "enable", "example.org")
        self.assertEqual(self.files(), before)
        self.assertIn("+smtpd_milters = " + MILTER + ", unix:opendkim/opendkim.sock", res.stdout)
        self.assertIn("-smtpd_milters = unix:opendkim/opendkim.sock", res.stdout)
        self.assertIn("+++ %s/conf.d/90-msgstatus.conf" % self.dc, res.stdout)
        self.assertIn("+events_socket_group = mail", res.stdout)

    def test_failed_check_puts_everything_back(self):
        bad = os.path.join(self.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write("protocol imap {\n  no_such_dovecot_setting = 1\n}\n")
        self.env["MSGSTATUS_DOVECOT_SNIPPET"] = bad
        before = self.files()
        res = self.setup("enable", "example.org", expect=1)
        self.assertIn("putting the configuration back", res.stderr)
        after = self.files()
        after.pop(os.path.join("state", "setup.state"), None)
        self.assertEqual(after, before)

    def test_bad_input(self):
        res = self.setup("enable", "exa mple.org", expect=1)
        self.assertIn("not a domain name", res.stderr)
        self.setup("enable", "'; rm -rf /", expect=1)
        self.setup("enable", expect=2)
        self.setup("frobnicate", expect=2)


if __name__ == "__main__":
    if shutil.which("postconf") is None or shutil.which("doveconf") is None:
        print("postconf or doveconf not installed")
        sys.exit(77)
    if os.geteuid() != 0:
        print("postfix check on a private configuration needs root")
        sys.exit(77)
    main()
