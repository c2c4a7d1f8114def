"""A private Dovecot 2.3 or 2.4 (IMAP + LMTP) as a sandbox service.

    dc = sb.add_service(Dovecot(sb, users={"bob@example.org": "pw"},
                                userdb_fields={"bob@example.org": {"msgstatus_read_receipts": "no"}},
                                mail_plugins=["notify", "msgstatus"],
                                plugin_paths=[build + "/dovecot-plugin/lib90_msgstatus_plugin.so"],
                                plugin={"msgstatus_...": "..."}))  # the plugin's settings
    dc.deliver("bob@example.org", message_bytes)
    imap = dc.imap("bob@example.org")

Everything lives in <sandbox>/<name>: the generated dovecot.conf, base_dir (run/: the master's
sockets, the LMTP socket and the auth socket for Postfix), state_dir (state/), the users
file, the mail (home/<domain>/<user>/Maildir, owned by the system user "mail") and one log
file for errors, info and debug lines. IMAP listens on 127.0.0.1:<free port> only. The
master runs in the foreground (`dovecot -F -c FILE`) as a child of the sandbox, as root:
it drops privileges itself (dovecot / dovenull for its helpers, "mail" for mail access).

The configuration is written in the syntax of the installed Dovecot (version()): 2.3
(Debian 12) or 2.4 (Debian 13). What differs, as docs/deployment.md shows for servers:
  2.3  mail_plugins = $mail_plugins notify msgstatus;  plugin { msgstatus_socket = ... }
  2.4  dovecot_config_version first; mail_plugins { notify = yes }; plugin settings at the
       top level; passdb/userdb NAME { passwd_file_path, fields { } }; %{user | lower};
       mail_driver + mail_path; auth_allow_cleartext; inet_listener's listen.

Pitfalls:
- state_dir must be moved too: the master records every running instance in
  $state_dir/instances (default /var/lib/dovecot), i.e. outside the sandbox.
- All users share one existing system uid/gid ("mail", uid 8 on Debian), below Dovecot's
  default first_valid_uid = 500: first/last_valid_uid/gid are narrowed to exactly it.
- The userdb is passwd-file (not static) so that single users can carry extra userdb fields
  (e.g. msgstatus_read_receipts=no); uid, gid and home come from default_fields, so every
  user has the same uid/gid as with a static userdb. Unknown users do not exist, so LMTP
  answers 550 for them (and Postfix bounces). Dovecot 2.3's passwd-file userdb passes on
  only extra fields named userdb_<field> (others are silently dropped): the users file
  writes them with that prefix.
- Userdb fields Dovecot does not know become plugin settings for that user: that is how
  a per-user plugin {} override works (2.4: a userdb field overrides the setting of its
  name, which must be a known one, as a plugin's are once its settings module is in place).
- Dovecot 2.4 learns a plugin's settings only from a settings module in its fixed
  modules/settings directory: for the msgstatus plugin (a plugin_paths entry named
  lib90_msgstatus_plugin.so), lib90_msgstatus_settings.so beside it must be installed there
  (scripts/test --debian 13 does that in its root); the sandbox checks it is the same file.
- passwd-file notices a changed file, but looks at it at most once a second: set_user()
  waits for the next second instead of reloading.
- On reload the master may re-create its UNIX listeners: the LMTP and auth sockets are
  gone for a few milliseconds, so reload() waits until they answer again.
"""
import imaplib
import os
import pwd
import re
import smtplib
import socket
import subprocess
import time

from .core import SandboxError, free_port, wait_for
from .postfix import end_process_group

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
SYSTEM_MODULES = "/usr/lib/dovecot/modules"
SETTINGS_MODULES = SYSTEM_MODULES + "/settings"  # Dovecot 2.4's config process loads these

_version = None


def version():
    """The installed Dovecot's (major, minor), e.g. (2, 3) or (2, 4)."""
    global _version
    if _version is None:
        out = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True,
                             check=True).stdout
        m = re.match(r"(\d+)\.(\d+)", out)
        if not m:
            raise SandboxError(f"cannot tell Dovecot's version from {out!r}")
        _version = (int(m.group(1)), int(m.group(2)))
    return _version

DEFAULT_USERS = {"alice@example.org": "alice-secret", "bob@example.org": "bob-secret"}


class Dovecot:
    """A private Dovecot: IMAP on 127.0.0.1:<port>, LMTP and SASL auth on sockets in base_dir.

    Parameters (all optional):
      users          {address: plaintext password}; default alice@ and bob@example.org.
      userdb_fields  {address: {field: value}}: extra userdb fields for single users.
      mail_plugins   plugins for imap and lmtp (e.g. ["notify", "msgstatus"]).
      imap_plugins, lmtp_plugins   plugins for one protocol only (added after mail_plugins).
      plugin         {setting: value} for the plugin {} section.
      plugin_paths   .so files (e.g. from the build tree) to load: mail_plugin_dir becomes a
                     sandbox folder with symlinks to all of /usr/lib/dovecot/modules plus these.
      extra_config   raw dovecot.conf text appended at the end (for anything else).
      mail_user      the existing system user that owns all mail (default "mail").
      lmtp_user      the only user who may use the LMTP socket (mode 0600), e.g. "postfix"
                     (Postfix's lmtp client); default: everyone (0666).
      debug          mail_debug and auth_debug (to the log).
    """

    def __init__(self, sb, users=None, userdb_fields=None, mail_plugins=(), imap_plugins=(),
                 lmtp_plugins=(), plugin=None, plugin_paths=(), extra_config="",
                 mail_user="mail", debug=False, name="dovecot", start=True, lmtp_user=None):
        if os.geteuid() != 0:
            raise SandboxError("a private Dovecot needs root (tests exit 77 when not root)")
        self.sb = sb
        self.name = name
        self.dir = sb.mkdir(name)
        self.base_dir = os.path.join(self.dir, "run")  # created by the master (root, 0755)
        self.state_dir = sb.mkdir(name, "state")
        self.home_root = sb.mkdir(name, "home", owner=mail_user, mode=0o700)
        self.module_dir = os.path.join(self.dir, "modules")
        self.config = os.path.join(self.dir, "dovecot.conf")
        self.users_file = os.path.join(self.dir, "users")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.imap_port = free_port()
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.userdb_fields = {k: dict(v) for k, v in (userdb_fields or {}).items()}
        self.mail_plugins = list(mail_plugins)
        self.imap_plugins = list(imap_plugins)
        self.lmtp_plugins = list(lmtp_plugins)
        self.plugin = dict(plugin or {})
        self.plugin_paths = [os.path.abspath(p) for p in plugin_paths]
        self.extra_config = extra_config
        self.mail_user = mail_user
        self.lmtp_user = lmtp_user
        self.debug = debug
        self.child = None
        if start:
            self.start()

    @property
    def lmtp_socket(self):
        """The LMTP socket (Postfix: virtual_transport = lmtp:unix:<this>)."""
        return os.path.join(self.base_dir, "lmtp")

    @property
    def auth_socket(self):
        """The SASL auth socket for Postfix (smtpd_sasl_type = dovecot, smtpd_sasl_path)."""
        return os.path.join(self.base_dir, "auth-postfix")

    # ---- configuration -------------------------------------------------------------------

    def mailbox_dir(self, user):
        """The Maildir of user (home/<domain>/<local part>/Maildir)."""
        local, _, domain = user.lower().partition("@")
        return os.path.join(self.home_root, domain, local, "Maildir")

    def config_text(self):
        pw = pwd.getpwnam(self.mail_user)
        v24 = version() >= (2, 4)
        if v24:
            lines = [
                "# Generated by msgsandbox (tests/sandbox/msgsandbox/dovecot.py): a private Dovecot",
                "# 2.4 for tests. Edit the Dovecot object, not this file.",
                "# 2.4 wants these two first: the syntax and the storage format this file is for.",
                "dovecot_config_version = 2.4.1",
                "dovecot_storage_version = 2.4.1",
                "",
            ]
        else:
            lines = [
                "# Generated by msgsandbox (tests/sandbox/msgsandbox/dovecot.py): a private Dovecot",
                "# for tests. Edit the Dovecot object, not this file.",
                "",
            ]
        lines += [
            "# Process titles (ps) name the instance; `doveadm -i` could select it too.",
            f"instance_name = msgsandbox-{self.name}",
            "# Sockets, pid file and login chroot inside the sandbox, not /run/dovecot.",
            f"base_dir = {self.base_dir}",
            "# The master writes $state_dir/instances: keep it out of /var/lib/dovecot.",
            f"state_dir = {self.state_dir}",
            "# IMAP for clients, LMTP for Postfix (no POP3, no submission, no imaps).",
            "protocols = imap lmtp",
            "# Every inet listener binds to loopback only.",
            "listen = 127.0.0.1",
            "# No certificates in the sandbox; plaintext logins are fine on loopback.",
            "ssl = no",
            "auth_allow_cleartext = yes" if v24 else "disable_plaintext_auth = no",
            "# PLAIN for Postfix SASL (swaks --auth PLAIN) and IMAP; LOGIN for clients preferring it.",
            "auth_mechanisms = plain login",
            "# Tests try wrong passwords on purpose: answer at once instead of after 2 s.",
            "auth_failure_delay = 0",
            "# One log file for everything: errors, info and (with debug) debug lines, in order.",
            f"log_path = {self.log_path}",
            f"info_log_path = {self.log_path}",
            f"debug_log_path = {self.log_path}",
            "# Failed logins are logged with their reason (helps when a test cannot log in).",
            "auth_verbose = yes",
            f"auth_debug = {'yes' if self.debug else 'no'}",
            f"mail_debug = {'yes' if self.debug else 'no'}",
            "# Fixed host name: LMTP greeting and Received: headers do not depend on the machine.",
            "hostname = imap.sandbox.test",
            "# Existing system users only: helpers run as dovecot, login processes as dovenull.",
            "default_internal_user = dovecot",
            "default_login_user = dovenull",
            f"# All mail belongs to the system user {self.mail_user} (uid {pw.pw_uid}, below the "
            "default first_valid_uid 500): allow exactly that uid/gid.",
            f"first_valid_uid = {pw.pw_uid}",
            f"last_valid_uid = {pw.pw_uid}",
            f"first_valid_gid = {pw.pw_gid}",
            f"last_valid_gid = {pw.pw_gid}",
            "# Maildir in each user's home (homes are inside the sandbox, see userdb).",
        ]
        lines += ["mail_driver = maildir", "mail_path = ~/Maildir"] if v24 else \
            ["mail_location = maildir:~/Maildir"]
        lines += [
            "# Plugins: the system modules plus any given .so files, symlinked into one folder.",
            f"mail_plugin_dir = {self.module_dir}",
        ]
        lines += _plugins_setting(self.mail_plugins, v24, "")
        if "msgstatus" in self.mail_plugins + self.imap_plugins + self.lmtp_plugins:
            lines.append(
                "# As 90-msgstatus.conf: the plugin reads the header from the cache, not the file.")
            if v24:
                lines += ["mail_always_cache_fields {", "  hdr.Msgstatus-Id = yes", "}"]
            else:
                lines.append(
                    "mail_always_cache_fields = $mail_always_cache_fields hdr.Msgstatus-Id")
        lines += [
            "",
            "# Users: one passwd-file with plaintext passwords (test data); lookups are",
            "# case-insensitive.",
        ]
        if v24:
            home = f"{self.home_root}/%{{user | domain | lower}}/%{{user | username | lower}}"
            lines += [
                "passdb passwd-file {",
                f"  passwd_file_path = {self.users_file}",
                "  auth_username_format = %{user | lower}",
                "}",
                "# passwd-file (not static) so single users can carry extra fields; uid, gid and",
                "# home are the same for everyone.",
                "userdb passwd-file {",
                f"  passwd_file_path = {self.users_file}",
                "  auth_username_format = %{user | lower}",
                "  fields {",
                f"    uid = {pw.pw_uid}",
                f"    gid = {pw.pw_gid}",
                f"    home = {home}",
                "  }",
                "}",
            ]
        else:
            lines += [
                "passdb {",
                "  driver = passwd-file",
                f"  args = scheme=PLAIN username_format=%Lu {self.users_file}",
                "}",
                "# passwd-file (not static) so single users can carry extra fields; uid, gid and",
                "# home are the same defaults for everyone.",
                "userdb {",
                "  driver = passwd-file",
                f"  args = username_format=%Lu {self.users_file}",
                f"  default_fields = uid={pw.pw_uid} gid={pw.pw_gid} home={self.home_root}/%Ld/%Ln",
                "}",
            ]
        lines += [
            "",
            "# The one namespace: INBOX and folders below it.",
            "namespace inbox {",
            "  inbox = yes",
            "}",
            "",
            "service imap-login {",
            "  # IMAP on a free loopback port; no IMAPS.",
            "  inet_listener imap {",
            f"    {'listen' if v24 else 'address'} = 127.0.0.1",
            f"    port = {self.imap_port}",
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
            "}",
            "service lmtp {",
            "  # In base_dir; Postfix's lmtp client (user postfix) and tests (root) connect.",
            "  unix_listener lmtp {",
        ]
        if self.lmtp_user:
            lines += ["    mode = 0600", f"    user = {self.lmtp_user}",
                      f"    group = {self.lmtp_user}"]
        else:
            lines += ["    mode = 0666"]
        lines += [
            "  }",
            "}",
            "service auth {",
            "  # The SASL socket for Postfix's smtpd (smtpd_sasl_type = dovecot).",
            "  unix_listener auth-postfix {",
            "    mode = 0660",
            "    user = postfix",
            "    group = postfix",
            "  }",
            "}",
            "",
            "protocol imap {",
            "  # Tests open several sessions per user from 127.0.0.1 (default limit: 10).",
            "  mail_max_userip_connections = 100",
        ]
        lines += _plugins_setting(self.imap_plugins, v24, "  ")
        lines.append("}")
        if self.lmtp_plugins:
            lines.append("protocol lmtp {")
            lines += _plugins_setting(self.lmtp_plugins, v24, "  ")
            lines.append("}")
        if self.plugin:
            lines.append("")
            lines.append("# Settings for the mail plugins (userdb fields override them per user).")
            if v24:
                lines.extend(f"{k} = {v}" for k, v in self.plugin.items())
            else:
                lines.append("plugin {")
                lines.extend(f"  {k} = {v}" for k, v in self.plugin.items())
                lines.append("}")
        if self.extra_config:
            lines += ["", "# Extra configuration given by the test.", self.extra_config]
        return "\n".join(lines) + "\n"

    def write_config(self):
        """Write dovecot.conf, the users file and the plugin folder."""
        _write(self.config, self.config_text())
        self._write_users()
        self._link_modules()

    def _write_users(self):
        users = {u.lower(): p for u, p in self.users.items()}
        fields = {u.lower(): f for u, f in self.userdb_fields.items()}
        for user in fields:
            if user not in users:
                raise SandboxError(f"userdb_fields for unknown user {user}")
        rows = []
        for u, p in users.items():
            # user:password:uid:gid:gecos:home:shell:extra fields. uid/gid/home are empty
            # (userdb default_fields); passwd-file passes on only extra fields named userdb_*.
            extra = " ".join(f"userdb_{k}={v}" for k, v in fields.get(u, {}).items())
            rows.append(f"{u}:{{PLAIN}}{p}::::::{extra}\n")
        _write(self.users_file, "".join(rows))

    def set_user(self, user, password, **userdb_fields):
        """Add or change a user (password and userdb fields) while Dovecot runs.

        No reload needed: passwd-file re-reads a changed file, but checks it at most once
        per second (per auth process), so this returns once the next second has begun.
        """
        self.users[user] = password
        self.userdb_fields[user] = dict(userdb_fields)
        self._write_users()
        time.sleep(1.02 - time.time() % 1.0)

    def _link_modules(self):
        os.makedirs(self.module_dir, exist_ok=True)
        for entry in os.listdir(self.module_dir):
            os.unlink(os.path.join(self.module_dir, entry))
        for entry in os.listdir(SYSTEM_MODULES):
            os.symlink(os.path.join(SYSTEM_MODULES, entry), os.path.join(self.module_dir, entry))
        for path in self.plugin_paths:
            if not os.path.isfile(path):
                raise SandboxError(f"Dovecot plugin {path} does not exist (not built?)")
            link = os.path.join(self.module_dir, os.path.basename(path))
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(path, link)
            _check_settings_module(path)

    # ---- life cycle ----------------------------------------------------------------------

    def start(self):
        """Write the configuration and start `dovecot -F`; returns when IMAP answers."""
        if self.child is not None and self.child.alive():
            return
        self.write_config()
        res = self.sb.run(["/usr/bin/doveconf", "-c", self.config, "-n"], check=False)
        if res.returncode != 0:
            raise SandboxError(f"dovecot.conf is invalid: {res.stderr.strip()}")
        self.child = self.sb.spawn(self.name, [DOVECOT, "-F", "-c", self.config])
        try:
            wait_for(f"{self.name} to answer IMAP on port {self.imap_port}", self._ready,
                     timeout=30, proc=self.child.popen)
        except SandboxError as e:
            self.stop()
            raise SandboxError(f"{e}; log: {self.log()[-2000:]}{self.child.log()[-2000:]}") \
                from None

    def _ready(self):
        if not (os.path.exists(self.lmtp_socket) and os.path.exists(self.auth_socket)):
            return False
        with socket.create_connection(("127.0.0.1", self.imap_port), timeout=2) as s:
            return s.recv(200).startswith(b"* OK")

    def reload(self, timeout=20):
        """`doveadm reload`: the master re-reads dovecot.conf (after write_config()).

        Returns when the master logged the SIGHUP and its sockets answer again: while
        reloading, the master may unlink and re-create UNIX listeners (lmtp, auth-postfix),
        which then are missing for a few milliseconds.
        """
        mark = self.log_mark()
        self.doveadm("reload")
        self.wait_log(r"SIGHUP received - reloading configuration", timeout=timeout, since=mark)
        wait_for(f"{self.name} to answer again after reload", self._ready, timeout=timeout)

    def stop(self):
        """SIGTERM to the master, which stops its children; then wait until the master's
        process group (the sandbox's session for it) is empty, SIGKILL after a grace
        period, also when interrupted. Safe to call twice."""
        child = self.child
        if child is None or getattr(child, "group_ended", False):
            return None
        try:
            return child.stop()
        finally:
            end_process_group(child.pid)
            child.group_ended = True  # never scan for that (reusable) group id again

    def close(self):
        self.stop()

    # ---- clients -------------------------------------------------------------------------

    def password(self, user):
        for u, p in self.users.items():
            if u.lower() == user.lower():
                return p
        raise SandboxError(f"no such Dovecot user {user}")

    def imap(self, user, password=None, timeout=30):
        """A logged-in imaplib.IMAP4 client (call .logout() when done)."""
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=timeout)
        client.login(user, password if password is not None else self.password(user))
        return client

    def deliver(self, user, message, sender="sender@sandbox.test", timeout=30, rcpt_options=()):
        """Deliver a message to one or more users over LMTP (the UNIX socket).

        rcpt_options are RCPT TO parameters for every recipient (e.g. an ORCPT, as Postfix
        sends one: ["ORCPT=rfc822;alias@example.org"]).

        Returns {recipient: (code, text)} with LMTP's final reply for each recipient (one
        reply per recipient after DATA, which smtplib.LMTP.sendmail does not read); raises
        smtplib.SMTPRecipientsRefused if any recipient was refused, at RCPT or after DATA.
        """
        rcpts = [user] if isinstance(user, str) else list(user)
        if isinstance(message, str):
            message = message.encode()
        replies = {}
        lmtp = smtplib.LMTP(self.lmtp_socket, local_hostname="client.sandbox.test",
                            timeout=timeout)
        try:
            lmtp.ehlo_or_helo_if_needed()
            code, text = lmtp.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, sender)
            accepted = []
            for r in rcpts:
                replies[r] = lmtp.rcpt(r, list(rcpt_options))
                if replies[r][0] in (250, 251):
                    accepted.append(r)
            if accepted:
                replies[accepted[0]] = lmtp.data(message)
                for r in accepted[1:]:
                    replies[r] = lmtp.getreply()
            lmtp.quit()
        finally:
            lmtp.close()
        refused = {r: reply for r, reply in replies.items() if reply[0] not in (250, 251)}
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        return replies

    def doveadm(self, *args, check=True):
        """Run doveadm against this instance; returns its stdout."""
        res = self.sb.run([DOVEADM, "-c", self.config, *args], check=check)
        return res.stdout

    def messages(self, user, mailbox="INBOX"):
        """The raw messages in a user's mailbox (bytes), read over IMAP, oldest first."""
        c = self.imap(user)
        try:
            c.select(mailbox, readonly=True)
            _, data = c.uid("SEARCH", None, "ALL")
            out = []
            for uid in data[0].split():
                _, parts = c.uid("FETCH", uid, "(BODY.PEEK[])")
                out.append(parts[0][1])
            return out
        finally:
            c.logout()

    # ---- log -----------------------------------------------------------------------------

    def log(self, since=0):
        """The Dovecot log (errors, info, debug) from byte offset since."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_mark(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def errors(self, since=0):
        """Log lines at level Error, Fatal or Panic."""
        return [line for line in self.log(since).splitlines()
                if re.search(r"\b(Error|Fatal|Panic):", line)]

    def wait_log(self, regex, timeout=30, since=0):
        """Wait for a log line matching regex (re.M); returns the match."""
        pat = re.compile(regex, re.M)
        try:
            return wait_for(f"{self.name} log to match {regex!r}",
                            lambda: pat.search(self.log(since)), timeout=timeout, interval=0.1)
        except SandboxError as e:
            tail = "\n    ".join(self.log(since).splitlines()[-15:])
            raise SandboxError(f"{e}; log tail:\n    {tail}") from None


def _check_settings_module(plugin):
    """On Dovecot 2.4, the settings module built beside plugin (libNN_X_plugin.so:
    libNN_X_settings.so), if there is one, must be the one installed in modules/settings:
    the config process knows a plugin's settings only from there."""
    if version() < (2, 4) or not plugin.endswith("_plugin.so"):
        return
    built = plugin[:-len("_plugin.so")] + "_settings.so"
    if not os.path.exists(built):
        return
    installed = os.path.join(SETTINGS_MODULES, os.path.basename(built))
    try:
        with open(built, "rb") as a, open(installed, "rb") as b:
            if a.read() == b.read():
                return
        why = "differs from the one built"
    except FileNotFoundError:
        why = "is missing"
    raise SandboxError(f"Dovecot 2.4 learns the plugin's settings from {installed}, which {why}:"
                       f" install {built} there first")


def _plugins_setting(plugins, v24, indent):
    """mail_plugins lines adding plugins to the inherited ones: a boollist on 2.4."""
    if not plugins:
        return []
    if v24:
        return ([f"{indent}mail_plugins {{"] + [f"{indent}  {p} = yes" for p in plugins] +
                [f"{indent}}}"])
    return [f"{indent}mail_plugins = $mail_plugins {' '.join(plugins)}"]


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)

