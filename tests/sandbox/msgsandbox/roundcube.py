"""A private Roundcube 1.6 (Debian's roundcube-core) served by PHP's built-in web server on
127.0.0.1, with IMAP and SMTP to the sandbox's Dovecot and Postfix, SQLite for its own
data, and the msgstatus plugin from the source tree.

Debian's package keeps the code in /usr/share/roundcube and the instance in /var/lib and
/etc; this builds a second instance in the sandbox from the same code: INSTALL_PATH is a
folder of links to the code, with its own config/, plugins/, temp/ and logs/. Nothing of
the system's Roundcube is changed.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess

from .core import SandboxError, free_port, paths, wait_for

CODE = "/usr/share/roundcube"
PHP = "/usr/bin/php"

ROUTER = r"""<?php
// PHP's built-in server: static files as they are, everything else through Roundcube.
define('INSTALL_PATH', __DIR__ . '/');
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path !== '/' && substr($path, -4) !== '.php' && is_file(__DIR__ . $path)) {
    return false;
}
chdir(__DIR__);
require __DIR__ . '/index.php';
"""


def available():
    """Why Roundcube cannot run here, or None."""
    if not os.path.isfile(os.path.join(CODE, "index.php")):
        return "roundcube-core is not installed"
    if not os.access(PHP, os.X_OK):
        return "php-cli is not installed"
    return None


def php_str(s):
    return "'" + str(s).replace("\\", "\\\\").replace("'", "\\'") + "'"


def write_config(path, settings):
    with open(path, "w") as f:
        f.write("<?php\n$config = [];\n")
        for k, v in settings.items():
            if isinstance(v, bool):
                val = "true" if v else "false"
            elif isinstance(v, list):
                val = "[" + ", ".join(php_str(x) for x in v) + "]"
            elif isinstance(v, int):
                val = str(v)
            else:
                val = php_str(v)
            f.write(f"$config[{php_str(k)}] = {val};\n")


class Roundcube:
    def __init__(self, sb, statusd, dovecot, postfix, name="roundcube", port=None,
                 user="www-data"):
        why = available()
        if why:
            raise SandboxError(why)
        self.sb = sb
        self.name = name
        self.port = port or free_port()
        self.user = user
        pw = pwd.getpwnam(user)
        self.dir = root = sb.mkdir(name)
        for entry in ("index.php", "program", "skins", "SQL"):
            os.symlink(os.path.join(CODE, entry), os.path.join(root, entry))
        plugins = sb.mkdir(name, "plugins")
        for entry in os.listdir(os.path.join(CODE, "plugins")):
            os.symlink(os.path.join(CODE, "plugins", entry), os.path.join(plugins, entry))
        # a copy, so that the web server's user can read it wherever the source tree is
        shutil.copytree(os.path.join(paths.source, "webmail", "roundcube", "msgstatus"),
                        os.path.join(plugins, "msgstatus"))
        config = sb.mkdir(name, "config")
        for entry in ("defaults.inc.php", "mimetypes.php"):
            os.symlink(os.path.join("/etc/roundcube", entry), os.path.join(config, entry))
        for d in ("temp", "logs", "data"):
            sb.mkdir(name, d, owner=user, mode=0o700)
        secret = os.path.join(root, "data", "msgstatus.secret")
        with open(secret, "w") as f:
            f.write(statusd.secret + "\n")
        os.chown(secret, pw.pw_uid, pw.pw_gid)
        os.chmod(secret, 0o600)
        db = os.path.join(root, "data", "roundcube.db")
        with open(os.path.join(CODE, "SQL", "sqlite.initial.sql"), "rb") as f:
            subprocess.run(["sqlite3", db], input=f.read(), check=True, capture_output=True)
        os.chown(db, pw.pw_uid, pw.pw_gid)
        plugin_settings = {
            "msgstatus_url": statusd.url,
            "msgstatus_secret_file": secret,
            "msgstatus_token_ttl": 300,
        }
        settings = {
            "db_dsnw": f"sqlite:///{db}?mode=0600",
            "imap_host": f"127.0.0.1:{dovecot.imap_port}",
            "smtp_host": f"127.0.0.1:{postfix.port}",
            "smtp_user": "%u",
            "smtp_pass": "%p",
            "des_key": os.urandom(12).hex(),
            "skin": "elastic",
            "plugins": ["msgstatus"],
            "log_dir": os.path.join(root, "logs"),
            "temp_dir": os.path.join(root, "temp"),
            "enable_installer": False,
            "support_url": "",
            "sent_mbox": "Sent",
            "create_default_folders": True,
        }
        write_config(os.path.join(config, "config.inc.php"), settings)
        # the plugin's own file, as a deployment has it (config.inc.php.dist)
        write_config(os.path.join(plugins, "msgstatus", "config.inc.php"), plugin_settings)
        with open(os.path.join(root, "router.php"), "w") as f:
            f.write(ROUTER)
        self.child = sb.spawn(name, [PHP, "-S", f"127.0.0.1:{self.port}", "-t", root,
                                     os.path.join(root, "router.php")],
                              user=user, cwd=root, env={"PHP_CLI_SERVER_WORKERS": "4"})
        wait_for(f"{name} on port {self.port}", self._listening, proc=self.child.popen)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def errors(self):
        """Roundcube's own error log."""
        try:
            with open(os.path.join(self.dir, "logs", "errors.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        if self.child is None:
            return
        pid = self.child.popen.pid
        self.child.stop()
        # PHP's server forks its PHP_CLI_SERVER_WORKERS into its own process group (the
        # session spawn started): end them too, or they keep the port
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_for(f"{self.name}'s workers to exit", lambda: not self._listening(), timeout=10)
