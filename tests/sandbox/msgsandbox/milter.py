"""msgstatus-milter in the sandbox."""
import os
import shutil
import signal
import subprocess

from .core import paths, wait_for


class Milter:
    """msgstatus-milter, as root with a socket for everyone (0666) by default.

    With user (root only), as docs/deployment.md runs it: the milter runs as that system
    user; its socket is 0660 in a folder user:postfix 2750, so the socket gets the group
    postfix (the setgid bit) and only Postfix (and the milter's user) can reach it; the spool
    is the user's own (0700).
    """

    def __init__(self, sb, statusd, settings=None, name="milter", start=True, user=None):
        self.sb = sb
        self.name = name
        self.user = user
        self.dir = sb.mkdir(name, owner=user, group="postfix", mode=0o2750) if user \
            else sb.mkdir(name)
        self.socket_path = os.path.join(self.dir, "milter.sock")
        self.settings = {
            "milter_socket": "unix:" + self.socket_path,
            "milter_socket_mode": "0660" if user else "0666",
            "events_socket": statusd.socket_path,
            "spool_dir": os.path.join(self.dir, "spool"),
        }
        if user is not None:
            sb.mkdir(name, "spool", owner=user, mode=0o700)
        # the site's secret for the ENVIDs of the DSNs it asks for (msgstatus-milter.conf(5))
        self.settings["report_secret_file"] = os.path.join(self.dir, "report.secret")
        with open(self.settings["report_secret_file"], "wb") as f:
            f.write(os.urandom(32))
        os.chmod(self.settings["report_secret_file"], 0o600)
        if user is not None:
            shutil.chown(self.settings["report_secret_file"], user)
        self.settings.update(settings or {})
        self.config = os.path.join(self.dir, "milter.conf")
        self.child = None
        if start:
            self.start()

    @property
    def spec(self):
        """The socket as Postfix's smtpd_milters wants it."""
        return self.settings["milter_socket"]

    @property
    def spool_dir(self):
        return self.settings["spool_dir"]

    def write_config(self):
        with open(self.config, "w") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")

    def start(self):
        self.write_config()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.child = self.sb.spawn(self.name, [paths.binary("milter/msgstatus-milter"),
                                               "-c", self.config], user=self.user)
        wait_for("the milter to listen", lambda: os.path.exists(self.socket_path),
                 proc=self.child.popen)

    def worker_pid(self):
        """The libmilter worker process (child of the supervisor)."""
        out = subprocess.run(["pgrep", "-P", str(self.child.pid)], capture_output=True,
                             text=True).stdout.split()
        return int(out[0]) if out else None

    def reload(self):
        self.child.send_signal(signal.SIGHUP)

    def stop(self):
        if self.child is None or not self.child.alive():
            return None
        rc = self.child.stop()
        self.sb.expect_exit(self.child, rc, 0)
        return rc

    def close(self):
        self.stop()

    def spool_bytes(self):
        total = 0
        for name in os.listdir(self.spool_dir):
            if name.endswith(".spool"):
                total += os.path.getsize(os.path.join(self.spool_dir, name))
        return total
