"""Sandbox core: the folder, child processes, ports, clean-up."""
import atexit
import contextlib
import errno
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}


@contextlib.contextmanager
def _signals_held():
    """Defer SIGTERM/SIGHUP/SIGINT (delivered when the block ends)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _unblocking(preexec):
    """The child must not inherit the held signal mask."""
    def run():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if preexec is not None:
            preexec()
    return run


class SandboxError(Exception):
    pass


class Paths:
    """Where the source tree and the build tree are (ctest sets MSGSTATUS_BUILD_DIR)."""

    def __init__(self):
        self.source = os.environ.get("MSGSTATUS_SOURCE_DIR") or os.path.abspath(
            os.path.join(HERE, "..", "..", ".."))
        self.build = os.environ.get("MSGSTATUS_BUILD_DIR") or os.path.join(self.source, "build")

    def binary(self, rel):
        path = os.path.join(self.build, rel)
        if not os.access(path, os.X_OK):
            raise SandboxError(f"{path} is not built (set MSGSTATUS_BUILD_DIR?)")
        return path


paths = Paths()


def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=20.0, interval=0.05, proc=None):
    """Poll predicate() until it returns a true value; raise SandboxError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ConnectionError):
            pass
        if proc is not None and proc.poll() is not None:
            raise SandboxError(f"{what}: process exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise SandboxError(f"timed out waiting for {what}")
        time.sleep(interval)


class Child:
    """A process started by the sandbox."""

    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal the process and wait; SIGKILL if it does not exit in time."""
        if not self.alive():
            return self.popen.returncode
        os.kill(self.popen.pid, sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            return self.popen.wait(5)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer", "panic:")

    def sanitizer_reports(self):
        """Lines of the log where a sanitizer (or our own panic) reported a problem."""
        return [line for line in self.log().splitlines()
                if any(mark in line for mark in self.SANITIZER_MARKS)]


class Sandbox:
    """One folder of private servers. Use as a context manager."""

    def __init__(self, root=None, keep=None, name="msgsandbox"):
        if keep is None:
            keep = bool(os.environ.get("MSGSTATUS_KEEP_SANDBOX"))
        self.keep = keep
        if root is None:
            self.root = tempfile.mkdtemp(prefix=name + "-")
            self.own_root = True
        else:
            self.root = os.path.abspath(root)
            os.makedirs(self.root, exist_ok=True)
            self.own_root = False
        os.chmod(self.root, 0o755)
        self.children = []
        self.services = []  # objects with .close(), closed in reverse order
        self.findings = []  # problems found in our own programs: reported at close
        self.closed = False
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.close()
        sys.exit(128 + signum)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def mkdir(self, *parts, mode=0o755, owner=None, group=None):
        """A folder in the sandbox; owner (and its group, or group) when given."""
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        if owner is not None:
            pw = pwd.getpwnam(owner)
            gid = grp.getgrnam(group).gr_gid if group is not None else pw.pw_gid
            os.chown(p, pw.pw_uid, gid)
        os.chmod(p, mode)  # after chown, which clears the setgid bit
        return p

    def spawn(self, name, argv, env=None, user=None, cwd=None, groups=()):
        """Start argv in the background, output to <root>/logs/<name>.log; as user (when
        root), with the extra supplementary groups named in groups."""
        logdir = self.mkdir("logs")
        log_path = os.path.join(logdir, name + ".log")
        logf = open(log_path, "ab")
        preexec = None
        if user is not None and os.geteuid() == 0:
            pw = pwd.getpwnam(user)
            extra = [grp.getgrnam(g).gr_gid for g in groups]

            def preexec():
                os.setgid(pw.pw_gid)
                os.initgroups(user, pw.pw_gid)
                if extra:
                    os.setgroups(os.getgroups() + extra)
                os.setuid(pw.pw_uid)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        # A SIGTERM between fork and registration would leave the child running
        # unknown to close(): hold the stop signals until it is on the list.
        with _signals_held():
            try:
                popen = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=full_env, cwd=cwd or self.root,
                                         preexec_fn=_unblocking(preexec), start_new_session=True)
            finally:
                logf.close()
            child = Child(name, popen, log_path)
            self.children.append(child)
        return child

    def run(self, argv, user=None, check=True, input=None, env=None, timeout=60):
        """Run a command to completion and return its CompletedProcess (text)."""
        preexec = None
        if user is not None and os.geteuid() == 0:
            pw = pwd.getpwnam(user)

            def preexec():
                os.setgid(pw.pw_gid)
                os.initgroups(user, pw.pw_gid)
                os.setuid(pw.pw_uid)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        res = subprocess.run(argv, capture_output=True, text=True, input=input, env=full_env,
                             preexec_fn=preexec, cwd=self.root, timeout=timeout)
        if check and res.returncode != 0:
            raise SandboxError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def add_service(self, svc):
        self.services.append(svc)
        return svc

    def close(self):
        if self.closed:
            return
        self.closed = True
        # A stop signal arriving now must not cut the shutdown short.
        with _signals_held():
            self._close()

    def _close(self):
        for svc in reversed(self.services):  # what can start stopping before its turn
            try:
                getattr(svc, "begin_close", lambda: None)()
            except Exception as e:
                print(f"msgsandbox: closing {svc}: {e}", file=sys.stderr)
        for svc in reversed(self.services):
            try:
                svc.close()
            except Exception as e:  # keep closing the rest
                print(f"msgsandbox: closing {svc}: {e}", file=sys.stderr)
        for child in reversed(self.children):
            child.stop()
        for child in self.children:
            for line in child.sanitizer_reports():
                self.findings.append(f"{child.name}: {line}")
        if self.findings:
            self.keep = True
        if self.own_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        elif self.keep:
            print(f"msgsandbox: kept {self.root}", file=sys.stderr)
        if self.findings:
            raise SandboxError("problems in the programs under test:\n  " +
                               "\n  ".join(self.findings[:20]))

    def expect_exit(self, child, rc, want=0):
        """Record a finding if one of our daemons exited with an unexpected status."""
        if rc != want:
            tail = "\n    ".join(child.log().splitlines()[-10:])
            self.findings.append(f"{child.name} exited with status {rc}, not {want}:\n    {tail}")

    def tmpfs(self, name, size):
        """A small tmpfs of its own (root only), so that a test can fill it."""
        return self.add_service(Tmpfs(self, name, size))

    # Services, defined in their own modules.
    def postgres(self, **kw):
        from .pg import Postgres
        return self.add_service(Postgres(self, **kw))

    def statusd(self, pg, **kw):
        from .statusd import Statusd
        return self.add_service(Statusd(self, pg, **kw))

    def milter(self, statusd, **kw):
        from .milter import Milter
        return self.add_service(Milter(self, statusd, **kw))

    def logd(self, statusd, **kw):
        from .logd import Logd
        return self.add_service(Logd(self, statusd, **kw))

    def postfix(self, **kw):
        from .postfix import Postfix
        return self.add_service(Postfix(self, **kw))

    def smtp_sink(self, **kw):
        from .postfix import SmtpSink
        return self.add_service(SmtpSink(self, **kw))

    def dovecot(self, **kw):
        from .dovecot import Dovecot
        return self.add_service(Dovecot(self, **kw))

    def knot(self, zones, **kw):
        from .knot import Knot
        return self.add_service(Knot(self, zones, **kw))

    def ca(self):
        """The sandbox's private certificate authority (tls.py), made on first use."""
        if getattr(self, "_ca", None) is None:
            from .tls import PrivateCA
            self._ca = self.add_service(PrivateCA(self))
        return self._ca

    def msgstatus_site(self, domain, users, **kw):
        """A complete msgstatus site for domain (site.py): its own database, statusd over
        HTTPS, the milter, OpenDKIM, Dovecot, Postfix, logd and its zone in DNS. All sites
        of a sandbox share one PostgreSQL server and one Knot (made by the first site
        unless given as pg= and dns=)."""
        from .site import MsgstatusSite
        if kw.get("pg") is None:
            if getattr(self, "_site_pg", None) is None:
                self._site_pg = self.postgres()
            kw["pg"] = self._site_pg
        if kw.get("dns") is None:
            if getattr(self, "_site_dns", None) is None:
                self._site_dns = self.knot({})
            kw["dns"] = self._site_dns
        return MsgstatusSite(self, domain, users, **kw)

    def mail_site(self, domain, users, **kw):
        """A plain Postfix + Dovecot site for domain, without msgstatus (site.py)."""
        from .site import MailSite
        return MailSite(self, domain, users, **kw)

    def roundcube(self, statusd, dovecot, postfix, **kw):
        from .roundcube import Roundcube
        return self.add_service(Roundcube(self, statusd, dovecot, postfix, **kw))


class Tmpfs:
    """A tmpfs mounted in the sandbox folder; fill() fills it to the last byte."""

    def __init__(self, sb, name, size):
        self.path = sb.mkdir(name)
        self.filler = os.path.join(self.path, ".filler")
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                        f"msgsandbox-{name}", self.path], check=True, capture_output=True)

    def fill(self):
        """Fill the file system; the bytes written."""
        written = 0
        with open(self.filler, "ab", buffering=0) as f:
            for size in (65536, 4096, 512, 1):  # then the last partial blocks
                block = b"\0" * size
                try:
                    while True:
                        written += f.write(block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
        return written

    def empty(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.filler)

    def close(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)
