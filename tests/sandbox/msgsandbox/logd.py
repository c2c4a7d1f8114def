"""msgstatus-logd in the sandbox: follows a sandbox Postfix's maillog."""
import os
import signal

from .core import paths, wait_for


class Logd:
    """msgstatus-logd, as root by default. With user (root only), as docs/deployment.md's
    unit runs it: as that system user with CAP_DAC_READ_SEARCH only (setpriv), to read
    the log postlogd keeps for root, and its state folder its own."""

    def __init__(self, sb, statusd, postfix=None, maillog_file=None, settings=None, name="logd",
                 start=True, user=None):
        self.sb = sb
        self.name = name
        self.user = user
        self.dir = sb.mkdir(name, owner=user) if user else sb.mkdir(name)
        self.settings = {
            "maillog_file": maillog_file or (postfix.maillog_path if postfix else ""),
            "events_socket": statusd.socket_path,
            "state_dir": os.path.join(self.dir, "state"),
            "verbose": "yes",
        }
        self.settings.update(settings or {})
        if user is not None:
            sb.mkdir(name, "state", owner=user, mode=0o700)
        self.config = os.path.join(self.dir, "logd.conf")
        self.child = None
        if start:
            self.start()

    @property
    def position_file(self):
        return os.path.join(self.settings["state_dir"], "position")

    def write_config(self):
        with open(self.config, "w") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")

    def start(self):
        self.write_config()
        argv = [paths.binary("logd/msgstatus-logd"), "-c", self.config]
        if self.user is not None:
            argv = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups",
                    "--inh-caps=-all,+dac_read_search", "--ambient-caps=+dac_read_search",
                    "--bounding-set=-all,+dac_read_search", "--no-new-privs", "--"] + argv
        self.child = self.sb.spawn(self.name, argv)
        wait_for("msgstatus-logd to start", lambda: "started" in self.child.log(),
                 proc=self.child.popen)

    def reload(self):
        self.child.send_signal(signal.SIGHUP)

    def kill(self):
        """SIGKILL: a crash, for tests of what survives one."""
        self.child.send_signal(signal.SIGKILL)
        self.child.popen.wait(10)

    def stop(self):
        if self.child is None or not self.child.alive():
            return None
        rc = self.child.stop()
        self.sb.expect_exit(self.child, rc, 0)
        return rc

    def close(self):
        self.stop()
