"""msgstatus-logd in the sandbox: follows a sandbox Postfix's maillog."""
import os
import signal

from .core import paths, wait_for


class Logd:
    def __init__(self, sb, statusd, postfix=None, maillog_file=None, settings=None, name="logd",
                 start=True):
        self.sb = sb
        self.name = name
        self.dir = sb.mkdir(name)
        self.settings = {
            "maillog_file": maillog_file or (postfix.maillog_path if postfix else ""),
            "events_socket": statusd.socket_path,
            "state_dir": os.path.join(self.dir, "state"),
            "verbose": "yes",
        }
        self.settings.update(settings or {})
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
        self.child = self.sb.spawn(self.name, [paths.binary("logd/msgstatus-logd"),
                                               "-c", self.config])
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
