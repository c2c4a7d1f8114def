"""The demo (scripts/run, scripts/demo.py) with the least privilege docs/security.md describes,
since it is what newcomers copy: its daemons run as the system user msgstatus, not root; its
sockets are for the users who need them only; PostgreSQL authenticates by peer and the
msgstatus role is not a superuser. And mail still flows: the sample message is delivered and
relayed, and reading it reaches statusd through the Dovecot plugin.

Runs scripts/demo.py (what scripts/run starts after building) on the build under test, in a
folder of its own, and stops it with SIGINT as Ctrl-C would."""
import grp
import json
import os
import pwd
import queue
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

from e2e import main, require_root
from msgsandbox import free_port, paths

DEMO = os.path.join(paths.source, "scripts", "demo.py")
DAEMONS = ("statusd", "msgstatus-milter", "msgstatus-logd")
CAP_DAC_READ_SEARCH = 1 << 2


def as_user(user, argv):
    """Run argv as user (from root); the CompletedProcess."""
    pw = pwd.getpwnam(user)

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, preexec_fn=drop,
                          cwd="/")


def can_connect(user, path):
    """Whether user can connect to the UNIX socket path."""
    code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
            "try:\n s.connect(sys.argv[1]); print('connected')\n"
            "except OSError as e:\n print(e)\n")
    res = as_user(user, [sys.executable, "-c", code, path])
    return res.stdout.strip() == "connected", res.stdout.strip()


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


class DemoRun:
    """Runs the demo with ARGS in a folder of its own until it printed a line matching
    READY; stops it with SIGINT (Ctrl-C) at the end."""
    ARGS = []
    READY = None

    @classmethod
    def setUpClass(cls):
        require_root()
        cls.tmp = tempfile.mkdtemp(prefix="msgstatus-demo-test-")
        os.chmod(cls.tmp, 0o755)
        cls.folder = os.path.join(cls.tmp, "demo")
        env = dict(os.environ, MSGSTATUS_BUILD_DIR=paths.build)
        cls.proc = subprocess.Popen(  # --two-sites: B's statusd takes the next port if free
            [sys.executable, DEMO, "--folder", cls.folder, "--http-port", str(free_port()),
             "--webmail-port", str(free_port()), *cls.ARGS],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True)
        cls.lines = queue.Queue()
        cls.output = []
        threading.Thread(target=cls._read, daemon=True).start()
        try:
            cls.wait_line(cls.READY, timeout=240)
        except Exception:
            cls.stop_demo()
            raise

    @classmethod
    def _read(cls):
        for line in cls.proc.stdout:
            cls.lines.put(line)
        cls.lines.put(None)

    @classmethod
    def wait_line(cls, regex, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = cls.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                raise AssertionError(f"the demo did not print {regex!r}:\n" +
                                     "".join(cls.output[-40:]))
            cls.output.append(line)
            if re.search(regex, line):
                return line

    @classmethod
    def stop_demo(cls):
        if cls.proc.poll() is None:
            os.kill(cls.proc.pid, signal.SIGINT)  # Ctrl-C: the demo stops everything
            try:
                cls.proc.wait(120)
            except subprocess.TimeoutExpired:
                os.kill(cls.proc.pid, signal.SIGKILL)
                cls.proc.wait(10)

    @classmethod
    def tearDownClass(cls):
        cls.stop_demo()
        subprocess.run(["rm", "-rf", cls.tmp])

    def printed(self, regex):
        m = re.search(regex, "".join(self.output), re.M)
        self.assertIsNotNone(m, f"{regex!r} not in the demo's output")
        return m

    def check_daemons_run_as_msgstatus(self):
        pw = pwd.getpwnam("msgstatus")
        found = {name: [] for name in DAEMONS}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
                status = proc_status(pid)
            except OSError:
                continue
            name = os.path.basename(argv[0])
            if name in found and any(a.startswith(self.folder + "/") for a in argv):
                found[name].append(status)
        for name, statuses in found.items():
            self.assertTrue(statuses, f"no {name} of the demo running")
            for st in statuses:
                self.assertEqual(st["Uid"].split(), [str(pw.pw_uid)] * 4, name)
                self.assertEqual(st["Gid"].split(), [str(pw.pw_gid)] * 4, name)
                caps = int(st["CapEff"], 16)
                want = CAP_DAC_READ_SEARCH if name == "msgstatus-logd" else 0
                self.assertEqual(caps, want, f"{name}: capabilities {st['CapEff']}")

    def check_ctrl_c_stops_everything(self):
        self.stop_demo()
        self.assertEqual(self.proc.returncode, 0, "".join(self.output[-20:]))
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            self.assertFalse(any(a.startswith(self.folder + "/") for a in argv),
                             f"still running: {argv}")


class DemoTest(DemoRun, unittest.TestCase):
    READY = r"^  dave@example\.com\s"

    def test_1_daemons_run_as_msgstatus(self):
        self.check_daemons_run_as_msgstatus()

    def test_2_sockets_are_for_their_users_only(self):
        milter = os.path.join(self.folder, "milter", "milter.sock")
        lmtp = os.path.join(self.folder, "dovecot", "run", "lmtp")
        events = os.path.join(self.folder, "statusd", "run", "events.sock")
        postfix = grp.getgrnam("postfix").gr_gid
        st = os.stat(milter)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, postfix)
        st = os.stat(lmtp)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, pwd.getpwnam("postfix").pw_uid)
        st = os.stat(events)
        self.assertEqual(stat.S_IMODE(st.st_mode) & 0o007, 0)
        self.assertEqual(st.st_gid, grp.getgrnam("mail").gr_gid)
        for path in (milter, lmtp, events):
            ok, why = can_connect("nobody", path)
            self.assertFalse(ok, f"nobody connected to {path}")
        # and the users that need them can
        self.assertEqual(can_connect("postfix", milter), (True, "connected"))
        self.assertEqual(can_connect("postfix", lmtp), (True, "connected"))
        self.assertEqual(can_connect("mail", events), (True, "connected"))
        self.assertEqual(can_connect("msgstatus", events), (True, "connected"))

    def test_3_postgresql_least_privilege(self):
        m = self.printed(r'psql "host=(\S+) port=(\d+) user=msgstatus dbname=msgstatus"')
        host, port = m.group(1), m.group(2)
        with open(os.path.join(self.folder, "pg", "data", "pg_hba.conf")) as f:
            rules = [line.split() for line in f if line.strip() and not line.startswith("#")]
        self.assertTrue(rules)
        for rule in rules:
            self.assertNotIn("trust", rule, rule)
        res = subprocess.run(
            ["psql", "-X", "-At", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres",
             "-c", "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
             "FROM pg_roles WHERE rolname = 'msgstatus'",
             "-c", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'msgstatus'"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.split(), ["f|f|f|f|f", "msgstatus"])
        # another local user gets in as neither role
        for role in ("msgstatus", "postgres"):
            res = as_user("nobody", ["psql", "-X", "-At", "-h", host, "-p", port, "-U", role,
                                     "-d", "msgstatus", "-c", "SELECT 1"])
            self.assertNotEqual(res.returncode, 0, f"nobody connected as {role}")
            self.assertIn("authentication failed", res.stderr)

    def test_4_mail_flows_and_a_read_reaches_statusd(self):
        out = "".join(self.output)
        self.assertRegex(out, r"(?m)^  bob@example\.org\s+delivered")
        self.assertRegex(out, r"(?m)^  carol@example\.net\s+relayed")
        if "the Dovecot plugin is not built" in out:
            self.skipTest("the Dovecot plugin is not built")
        imap_port = self.printed(r"imap://127\.0\.0\.1:(\d+)/INBOX").group(1)
        url = self.printed(r"status API\s+curl -s .* (http://\S+/status)").group(1)
        token = self.printed(r"export TOKEN=(\S+)").group(1)
        import imaplib
        c = imaplib.IMAP4("127.0.0.1", int(imap_port), timeout=30)
        c.login("bob@example.org", "bob-secret")
        c.select("INBOX")
        c.uid("FETCH", "1", "(BODY[])")
        c.logout()
        deadline = time.monotonic() + 30
        while True:
            req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=10) as r:
                doc = json.load(r)
            bob = [x for x in doc["recipients"] if x["recipient"] == "bob@example.org"]
            if bob and bob[0]["status"] == "read":
                break
            self.assertLess(time.monotonic(), deadline, f"bob's read did not arrive: {doc}")
            time.sleep(0.2)

    def test_5_ctrl_c_stops_everything(self):
        self.check_ctrl_c_stops_everything()


class TwoSitesDemoTest(DemoRun, unittest.TestCase):
    """scripts/run --two-sites: sites A (example.org) and B (example.net); the sample from
    alice@A to bob@B is authenticated and tracked at B, which reports its delivery to A;
    bob reads it at B and alice's status at A turns read, reported by example.net; both
    dashboards answer over HTTPS (the demo's private CA); Ctrl-C stops both sites."""
    ARGS = ["--two-sites"]
    READY = r"^  cross-site "

    def test_1_daemons_run_as_msgstatus(self):
        self.check_daemons_run_as_msgstatus()
        for name in ("example.org", "example.net"):  # both sites' statusd
            self.assertTrue(os.path.exists(os.path.join(self.folder, name + "-statusd",
                                                        "statusd.conf")))

    def test_2_sample_is_correlated_at_b(self):
        tid = self.printed(r"^Sample message (\S+) from alice@example\.org to "
                           r"bob@example\.net:").group(1)
        self.printed(r"^  at A\s+delivered\b.*\(reported by example\.net\)$")
        tag = self.printed(r"^  at B\s+delivered to bob, DKIM-authenticated for example\.org "
                           r"\(aligned: envelope,from\): B tracks it as (\S+)$").group(1)
        self.assertNotEqual(tag, tid)
        conninfo = self.printed(r'database\s+psql "(\S+ \S+ \S+ dbname=msgstatus_example_net)"')
        res = subprocess.run(["psql", "-X", "-A", "-t", "-d", conninfo.group(1).replace(
            "user=msgstatus", "user=postgres"), "-c", "SELECT tracking_id FROM inbound "
            f"WHERE origin_tracking_id = '{tid}'"], capture_output=True, text=True, timeout=30)
        self.assertEqual(res.stdout.split(), [tag], res.stderr)

    def test_4_cross_site_read(self):
        """The demo's line, and A's own log: B's read of the sample, reported by
        example.net, stored at A (not A's own)."""
        self.printed(r"^  read at B    bob fetched it over IMAP ")
        self.printed(r"^  cross-site   at A: read, reported by example\.net, \d+ ms after bob's "
                     r"FETCH at B; A's dashboard shows it$")
        self.assertNotIn("not yet", "".join(self.output))
        tid = self.printed(r"^Sample message (\S+) from").group(1)
        conninfo = self.printed(r'database\s+psql "(\S+ \S+ \S+ dbname=msgstatus_example_org)"')
        res = subprocess.run(["psql", "-X", "-A", "-t", "-d", conninfo.group(1).replace(
            "user=msgstatus", "user=postgres"), "-c", "SELECT type, source, "
            "details->>'reporter' FROM events WHERE message = (SELECT id FROM messages "
            f"WHERE tracking_id = '{tid}') AND type IN (4, 7) ORDER BY log_offset"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(res.stdout.split(), ["4|federation|example.net",
                                              "7|federation|example.net"], res.stderr)

    def test_3_dashboards_over_https(self):
        import ssl
        ca = self.printed(r"private CA (\S+):").group(1)
        ctx = ssl.create_default_context(cafile=ca)
        urls = re.findall(r"(?m)^    dashboard  (https://127\.0\.0\.1:\d+)/#token=",
                          "".join(self.output))
        self.assertEqual(len(urls), 2, "one dashboard per site")
        for url in urls:
            with urllib.request.urlopen(url + "/", timeout=10, context=ctx) as r:
                self.assertEqual(r.status, 200)
                self.assertIn(b"<html", r.read().lower())

    def test_5_ctrl_c_stops_everything(self):
        self.check_ctrl_c_stops_everything()


if __name__ == "__main__":
    main()
