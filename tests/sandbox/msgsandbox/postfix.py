"""A private Postfix 3.7 instance and Postfix's smtp-sink, as sandbox services.

    pf = sb.add_service(Postfix(sb, domains=["example.org"], lmtp=dovecot,
                                transports={"remote.example": sink}))
    qid = pf.send("alice@example.org", ["bob@example.org"], subject="hi", body="hello\n")
    pf.wait_status(qid, "bob@example.org", "sent")

How the instance is kept private (nothing under /etc/postfix or /var/spool/postfix is
written):

- main.cf and master.cf are written by this class into <sandbox>/<name>/etc; every Postfix
  program is pointed there with -c (postfix, postqueue, master), -C (sendmail) or
  MAIL_CONFIG.
- queue_directory and data_directory are inside the sandbox; `postfix check` creates their
  subdirectories (postfix-script check-fatal -> post-install create-missing, driven by the
  read-only $meta_directory/postfix-files of the installed package).
- The mail log is written by postlogd to <sandbox>/<name>/maillog (maillog_file).
- smtpd listens on 127.0.0.1:<free port> only; nothing is chrooted.
- The master runs in the foreground as a sandbox child, as root; it drops privileges to
  mail_owner (postfix) for its services itself.

Pitfalls found while building this (Postfix 3.7.11, Debian 12):

- Debian ships no /etc/postfix/main.cf here. That is fine: every program reads the
  main.cf of the directory it is given, and meta_directory (postfix-files, dynamicmaps.cf)
  keeps its compiled-in default /etc/postfix, which is only read.
- A non-default config directory is trusted only for root: run by anyone else, sendmail,
  postdrop and postqueue read the *default* main.cf to see whether the directory is listed
  in alternate_config_directories, and die ("open file /etc/postfix/main.cf: No such file
  or directory") as there is none. The sandbox runs them as root; a test cannot submit
  with `sendmail` as an unprivileged user against this instance.
- maillog_file must start with one of maillog_file_prefixes (default "/var, /dev/stdout"),
  otherwise postlogd refuses it; we set the prefix to the sandbox folder.
- maillog_file needs the postlog unix-dgram service in master.cf, or `postfix check`
  fails ("missing 'postlog' service in master.cf").
- `postfix start-fg` does not give us the master's PID: it runs postfix-script, which runs
  `master -s` as *its* child (it execs the master only when it is PID 1), and the master
  makes itself a session leader, out of the sandbox's reach. A test killed during start-up
  left masters behind. So start() does start-fg's two steps itself: `postfix check`, then
  `master -c DIR -s` as the sandbox child (already a session leader, so the master's
  process group is the one the sandbox created): stopping is SIGTERM by PID, exactly what
  `postfix stop` sends, and whatever is left in that group gets SIGKILL.
- Dovecot's auth penalty is per client IP: a test that fails SMTP AUTH on purpose should
  do it from another loopback address (e.g. swaks --local-interface 127.0.0.2), or every
  later login from 127.0.0.1 waits 2 s or more.
"""
import email.message
import email.utils
import json
import os
import pty
import re
import select
import signal
import smtplib
import socket
import subprocess
import textwrap
import time

from .core import SandboxError, free_port, wait_for

POSTFIX = "/usr/sbin/postfix"
MASTER = "/usr/lib/postfix/sbin/master"
POSTQUEUE = "/usr/sbin/postqueue"
SENDMAIL = "/usr/sbin/sendmail"
SMTP_SINK = "/usr/sbin/smtp-sink"


def make_message(sender, recipients, subject="msgsandbox test", body="Hello.\n", headers=None,
                 message_id=None):
    """An RFC 5322 message as bytes, with From/To/Subject/Date/Message-ID set.

    headers: extra (name, value) pairs or a dict, added after the standard ones.
    """
    if isinstance(recipients, str):
        recipients = [recipients]
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = message_id or email.utils.make_msgid(domain="sandbox.test")
    for name, value in (headers.items() if isinstance(headers, dict) else headers or ()):
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def smtp_greets(host, port, timeout=2.0):
    """True if an SMTP server on host:port answers with a 220 greeting (then QUIT)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        f = s.makefile("rb")
        line = f.readline()
        if line.startswith(b"220-"):  # multi-line greeting: read to its last line
            while line[3:4] == b"-":
                line = f.readline()
        ok = line[:3] == b"220"
        try:
            s.sendall(b"QUIT\r\n")
            f.readline()
        except OSError:
            pass
        f.close()
        return ok


def _spec(x):
    """A milter spec from a string or an object with a .spec (e.g. msgsandbox.milter.Milter)."""
    return x if isinstance(x, str) else x.spec


class SmtpSink:
    """Postfix's smtp-sink(1) as a fake remote MX on 127.0.0.1:<port>, a sandbox child.

    mode:   "accept" (250 to everything), "defer" (4xx, smtp-sink -r) or "reject"
            (5xx, smtp-sink -f) at the stage `at`.
    at:     "connect", "helo" (HELO and EHLO), "mail", "rcpt", "data" (the DATA command)
            or "dot" (end of message data: the message is sent, then refused).
    reply:  optional text of the 4xx/5xx reply (-b / -B), e.g. "550 5.1.1 No such user".
    dump:   write each mail transaction to <sandbox>/<name>/mail (see messages()).

    The behaviour changes by restarting smtp-sink on the same port (set()), so a Postfix
    transport pointing at .nexthop keeps working. smtp-sink runs as `user` (it refuses to
    run as root without -u).
    """

    STAGES = {"connect": "CONNECT", "helo": "HELO,EHLO", "ehlo": "HELO,EHLO", "mail": "MAIL",
              "rcpt": "RCPT", "data": "DATA", "dot": ".", ".": "."}

    def __init__(self, sb, mode="accept", at="rcpt", reply=None, port=None, name="smtp-sink",
                 hostname="sink.sandbox.test", dump=True, user="nobody", start=True):
        self.sb = sb
        self.name = name
        self.port = port or free_port()
        self.hostname = hostname
        self.user = user
        self.dir = sb.mkdir(name)
        self.dump_dir = sb.mkdir(name, "mail", owner=user) if dump else None
        self.mode, self.at, self.reply = mode, at, reply
        self.child = None
        if start:
            self.start()

    @property
    def nexthop(self):
        """What a Postfix transport map entry points at: smtp:[127.0.0.1]:<port>."""
        return f"smtp:[127.0.0.1]:{self.port}"

    def argv(self):
        argv = [SMTP_SINK, "-h", self.hostname]
        if self.mode != "accept":
            if self.at not in self.STAGES:
                raise ValueError(f"smtp-sink: unknown stage {self.at!r}")
            if self.mode == "defer":
                argv += ["-r", self.STAGES[self.at]]
                if self.reply:
                    argv += ["-b", self.reply]
            elif self.mode == "reject":
                argv += ["-f", self.STAGES[self.at]]
                if self.reply:
                    argv += ["-B", self.reply]
            else:
                raise ValueError(f"smtp-sink: unknown mode {self.mode!r}")
        if self.dump_dir:
            # strftime template; smtp-sink appends a random hex suffix per message.
            argv += ["-d", os.path.join(self.dump_dir, "%Y%m%d%H%M%S.")]
        # The last two arguments: listen address and listen(2) backlog.
        return argv + [f"127.0.0.1:{self.port}", "32"]

    def start(self):
        if self.child is not None and self.child.alive():
            return
        self.child = self.sb.spawn(self.name, self.argv(), user=self.user)
        wait_for(f"{self.name} on port {self.port}", self._listening, proc=self.child.popen)

    def _listening(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
            return True

    def set(self, mode="accept", at="rcpt", reply=None):
        """Change the behaviour: restart smtp-sink on the same port."""
        self.stop()
        self.mode, self.at, self.reply = mode, at, reply
        self.start()

    def stop(self):
        if self.child is not None:
            self.child.stop()

    def close(self):
        self.stop()

    def messages(self):
        """Every transaction that reached DATA, as bytes, oldest first: smtp-sink's X-* and
        Received: headers, then the message. Messages refused at DATA or at the end of data
        are written too, so look for a Message-ID rather than counting."""
        if not self.dump_dir:
            raise SandboxError(f"{self.name} was started without dump=True")
        out = []
        for name in sorted(os.listdir(self.dump_dir),
                           key=lambda n: os.path.getmtime(os.path.join(self.dump_dir, n))):
            with open(os.path.join(self.dump_dir, name), "rb") as f:
                out.append(f.read())
        return out


class Postfix:
    """A private Postfix as root: own config dir, queue, data dir and maillog in the sandbox.

    Parameters (all optional):
      domains       local (virtual mailbox) domains, delivered by LMTP.
      lmtp          where those domains go: a Dovecot (uses .lmtp_socket), a socket path, or
                    a full Postfix next-hop ("lmtp:unix:/path"). None: such mail is deferred.
      mailboxes     if given, the only addresses smtpd accepts in the local domains (others
                    get 550 at RCPT); by default every address is accepted and the LMTP server
                    decides (an unknown user then bounces).
      transports    {domain: next hop, SmtpSink or another Postfix}, e.g.
                    {"remote.example": sink}: mail for domain goes to its SMTP port.
      milter        a milter socket ("unix:/path", "inet:127.0.0.1:port") or an object with
                    .spec, or a list of them (in the order Postfix calls them): used for
                    smtpd_milters and non_smtpd_milters, default_action=accept.
      milter_macro_defaults  {macro: value}, e.g. {"msgstatus_domains": "example.org"}.
      sasl          Dovecot (uses .auth_socket) or the path of a Dovecot auth socket: enables
                    SMTP AUTH in smtpd (smtpd_sasl_type = dovecot).
      maximal_queue_lifetime, bounce_queue_lifetime   Postfix time values ("1d", "30s").
      retry         seconds for queue_run_delay / minimal_backoff_time (maximal: twice that).
      services      extra master.cf text (whole entries, e.g. another smtpd listener with -o
                    overrides), appended as written.
      settings      main.cf parameters {name: value}: replace generated ones, or are added.
      myhostname    the instance's host name (in Received:, the maillog, smtpd's greeting).
                    Two instances that send each other mail need different ones: Postfix's
                    smtp client refuses a server that greets it with its own name.
    """

    def __init__(self, sb, domains=("example.org",), lmtp=None, mailboxes=None,
                 transports=None, milter=None, milter_macro_defaults=None, sasl=None,
                 maximal_queue_lifetime="1d", bounce_queue_lifetime="1d", retry=2,
                 settings=None, myhostname="mx.sandbox.test", name="postfix", start=True,
                 services=""):
        if os.geteuid() != 0:
            raise SandboxError("a private Postfix needs root (tests exit 77 when not root)")
        self.sb = sb
        self.name = name
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = sb.mkdir(name)
        self.config_dir = sb.mkdir(name, "etc")
        # queue_directory: post-install creates the subdirectories; the top must be root's.
        self.queue_dir = sb.mkdir(name, "queue")
        self.data_dir = os.path.join(self.dir, "data")  # created by post-install (postfix:0700)
        self.maillog_path = os.path.join(self.dir, "maillog")
        self.transport_file = os.path.join(self.config_dir, "transport")
        self.mailbox_file = os.path.join(self.config_dir, "vmailbox")
        self.domains = list(domains)
        self.lmtp = lmtp
        self.mailboxes = None if mailboxes is None else list(mailboxes)
        self.transports = dict(transports or {})
        self.milter = milter
        self.milter_macro_defaults = dict(milter_macro_defaults or {})
        self.sasl = sasl
        self.maximal_queue_lifetime = maximal_queue_lifetime
        self.bounce_queue_lifetime = bounce_queue_lifetime
        self.retry = retry
        self.myhostname = myhostname
        self.settings = dict(settings or {})
        self.services = services
        self.child = None
        self.write_config()
        if start:
            self.start()

    @property
    def nexthop(self):
        """What another Postfix's transport map points at to send here: its smtpd port."""
        return f"smtp:[{self.host}]:{self.port}"

    # ---- configuration -------------------------------------------------------------------

    def _lmtp_nexthop(self):
        if self.lmtp is None:
            return "retry:4.3.0 no LMTP server configured in this sandbox"
        target = self.lmtp if isinstance(self.lmtp, str) else self.lmtp.lmtp_socket
        return target if target.startswith("lmtp:") else "lmtp:unix:" + target

    def _milter_value(self):
        milters = self.milter if isinstance(self.milter, (list, tuple)) else [self.milter]
        return ", ".join("{ %s, default_action=accept }" % _spec(m) for m in milters)

    def main_cf(self):
        """main.cf as (comment, [(name, value), ...]) groups; every line has its reason."""
        sasl_path = None
        if self.sasl is not None:
            sasl_path = self.sasl if isinstance(self.sasl, str) else self.sasl.auth_socket
        groups = [
            ("Behave like a fresh Postfix 3.6+ install (no backwards-compatibility warnings).",
             [("compatibility_level", "3.6")]),
            ("Private state: queue and data directories inside the sandbox. meta_directory "
             "keeps its default (/etc/postfix: postfix-files, dynamicmaps.cf; only read).",
             [("queue_directory", self.queue_dir), ("data_directory", self.data_dir)]),
            ("The Debian package's users and group (no users are added for the sandbox).",
             [("mail_owner", "postfix"), ("setgid_group", "postdrop")]),
            ("Log to a file through postlogd (needs the postlog service in master.cf); the "
             "file must lie under one of maillog_file_prefixes.",
             [("maillog_file", self.maillog_path), ("maillog_file_prefixes", self.sb.root)]),
            ("A fixed identity, independent of the machine's host name and DNS.",
             [("myhostname", self.myhostname), ("mydomain", "sandbox.test"),
              ("myorigin", "$myhostname"), ("append_dot_mydomain", "no"),
              ("smtpd_banner", "$myhostname ESMTP msgsandbox")]),
            ("Loopback only, IPv4 only: smtpd's own listener is in master.cf.",
             [("inet_interfaces", "127.0.0.1"), ("inet_protocols", "ipv4"),
              ("mynetworks", "127.0.0.0/8")]),
            ("No local(8) delivery and no /etc/aliases: all mail is virtual, LMTP or relayed.",
             [("mydestination", ""), ("local_recipient_maps", ""), ("alias_maps", ""),
              ("alias_database", "")]),
            ("Local mailbox domains go to Dovecot by LMTP. An empty virtual_mailbox_maps "
             "accepts every address there and lets Dovecot say who exists.",
             [("virtual_mailbox_domains", ", ".join(self.domains)),
              ("virtual_mailbox_maps",
               f"texthash:{self.mailbox_file}" if self.mailboxes is not None else ""),
              ("virtual_transport", self._lmtp_nexthop())]),
            ("Per-domain routes (e.g. to smtp-sink); everything else fails at once instead "
             "of trying DNS and the Internet.",
             [("transport_maps", f"texthash:{self.transport_file}"),
              ("default_transport", "error:5.4.4 no route out of the sandbox"),
              ("smtp_dns_support_level", "disabled")]),
            ("Relay for localhost (tests submit from 127.0.0.1) and authenticated clients.",
             [("smtpd_relay_restrictions",
               "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination")]),
            ("Fast retries so deferred mail is retried within seconds, queue lifetimes "
             "tests can shorten to see mail expire, and a dead sink or LMTP socket fails "
             "within seconds.",
             [("queue_run_delay", f"{self.retry}s"), ("minimal_backoff_time", f"{self.retry}s"),
              ("maximal_backoff_time", f"{2 * self.retry}s"),
              ("maximal_queue_lifetime", self.maximal_queue_lifetime),
              ("bounce_queue_lifetime", self.bounce_queue_lifetime),
              ("smtp_connect_timeout", "5s"), ("lmtp_connect_timeout", "5s")]),
            ("Queue ids that are unique over time (statusd joins log lines by them).",
             [("enable_long_queue_ids", "yes")]),
        ]
        if self.milter is not None:
            groups.append(("The milter sees SMTP and sendmail/pickup mail, and Postfix's own "
                           "notices (bounce(8)'s success, delay and failure reports, which "
                           "it reads); mail flows on when it is down (default_action=accept).",
                           [("smtpd_milters", self._milter_value()),
                            ("non_smtpd_milters", self._milter_value()),
                            ("internal_mail_filter_classes", "bounce")]))
        if self.milter_macro_defaults:
            groups.append(("Macros Postfix sends to milters when it has no value of its own.",
                           [("milter_macro_defaults", ", ".join(
                               f"{{ {k} = {v} }}" if re.search(r"[\s,]", str(v))
                               else f"{k}={v}" for k, v in self.milter_macro_defaults.items()))]))
        if sasl_path is not None:
            groups.append(("SMTP AUTH through Dovecot's auth socket (absolute path: smtpd is "
                           "not chrooted). Without TLS: smtpd_tls_auth_only stays off.",
                           [("smtpd_sasl_auth_enable", "yes"), ("smtpd_sasl_type", "dovecot"),
                            ("smtpd_sasl_path", sasl_path)]))
        # The test's settings replace generated values in place (Postfix would warn about
        # a parameter given twice); the others are added at the end.
        extra = dict(self.settings)
        for _, params in groups:
            for i, (k, _v) in enumerate(params):
                if k in extra:
                    params[i] = (k, extra.pop(k))
        if extra:
            groups.append(("Extra settings given by the test.", list(extra.items())))
        return groups

    def master_cf(self):
        """master.cf lines: only the services this instance uses, none chrooted."""
        return f"""\
# Generated by msgsandbox: a private Postfix. No service is chrooted (chroot column "n").
# service type  private unpriv  chroot  wakeup  maxproc command
# SMTP, on loopback and a free port only.
127.0.0.1:{self.port} inet n - n - - smtpd
# sendmail/postdrop drop files into maildrop; pickup hands them to cleanup.
pickup    unix  n       -       n       60      1       pickup
# Every message passes cleanup (header fixes, non_smtpd_milters).
cleanup   unix  n       -       n       -       0       cleanup
# The queue manager schedules deliveries and retries.
qmgr      unix  n       -       n       300     1       qmgr
# Address rewriting and routing (transport_maps, virtual domains).
rewrite   unix  -       -       n       -       -       trivial-rewrite
# Delivery status: bounces, deferral logs, DSN/trace.
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
# Address verification (verify service) is used by reject_unverified_* if a test wants it.
verify    unix  -       -       n       -       1       verify
# postqueue -f / flush().
flush     unix  n       -       n       1000?   0       flush
# postqueue -p / -j (queue_ids()).
showq     unix  n       -       n       -       -       showq
# Table lookups through proxy: maps, if a test's settings use them.
proxymap  unix  -       -       n       -       -       proxymap
# Remote delivery (to smtp-sink via transport_maps).
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
# Delivery to Dovecot.
lmtp      unix  -       -       n       -       -       lmtp
# default_transport = error:..., and retry: when no LMTP server is configured.
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
# discard: as a transport in a test's transport_maps (mail that should vanish).
discard   unix  -       -       n       -       -       discard
# Connection/rate counters for smtpd, and the SMTP connection cache.
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
# postlogd writes maillog_file (required when maillog_file is set).
postlog   unix-dgram n  -       n       -       1       postlogd
""" + self.services

    def write_config(self):
        """(Re)write main.cf, master.cf and the lookup tables from the current attributes."""
        lines = ["# Generated by msgsandbox (tests/sandbox/msgsandbox/postfix.py): a private",
                 "# Postfix instance for tests. Edit the Postfix object, not this file."]
        for comment, params in self.main_cf():
            lines.append("")
            lines.extend("# " + c for c in _wrap(comment, 88))
            lines.extend(f"{k} = {v}" for k, v in params)
        _write(os.path.join(self.config_dir, "main.cf"), "\n".join(lines) + "\n")
        _write(os.path.join(self.config_dir, "master.cf"), self.master_cf())
        _write(self.transport_file, "".join(
            f"{dom} {t if isinstance(t, str) else t.nexthop}\n"
            for dom, t in self.transports.items()))
        _write(self.mailbox_file, "".join(f"{a} ok\n" for a in self.mailboxes or ()))

    def set_transport(self, domain, target, reload=True):
        """Route domain to target (a next hop, an SmtpSink or another Postfix); None
        removes the route."""
        if target is None:
            self.transports.pop(domain, None)
        else:
            self.transports[domain] = target
        self.write_config()
        if reload:
            self.reload()

    def postconf(self, *args):
        """Run postconf against this instance; returns its stdout."""
        return self.sb.run(["/usr/sbin/postconf", "-c", self.config_dir, *args]).stdout

    def check(self, timeout=60):
        """`postfix -c DIR check`; returns its warnings. Raises SandboxError if it fails.

        This is what `postfix start` runs before the master: integrity checks, and
        post-install create-missing, which makes the queue and data subdirectories.
        Postfix commands print their messages only when stderr is a terminal (otherwise
        they go to the log, which may be what is broken), so the check runs on a pty.
        """
        main_fd, tty_fd = pty.openpty()
        try:
            proc = subprocess.Popen([POSTFIX, "-c", self.config_dir, "check"],
                                    stdin=subprocess.DEVNULL, stdout=tty_fd, stderr=tty_fd,
                                    cwd=self.sb.root, start_new_session=True)
        finally:
            os.close(tty_fd)
        out = b""
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if select.select([main_fd], [], [], 0.5)[0]:
                    try:
                        chunk = os.read(main_fd, 4096)
                    except OSError:  # EIO: every process holding the pty has exited
                        break
                    if not chunk:
                        break
                    out += chunk
            rc = proc.wait(max(0.1, deadline - time.monotonic()))
        except BaseException:
            # Timed out or interrupted (e.g. by the sandbox's SIGTERM handler): the script's
            # helpers (post-install, postsuper) are in its process group; end them all.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
            raise
        finally:
            os.close(main_fd)
        text = out.decode(errors="replace").replace("\r\n", "\n")
        with open(os.path.join(self.sb.mkdir("logs"), f"{self.name}-check.log"), "a") as f:
            f.write(text)
        if rc != 0:
            raise SandboxError(f"postfix check failed ({rc}):\n{text.strip()}")
        return text

    # ---- life cycle ----------------------------------------------------------------------

    def running(self):
        """True if a master holds this instance's pid file lock (`master -t` says no)."""
        res = self.sb.run([MASTER, "-c", self.config_dir, "-t"], check=False)
        return res.returncode != 0

    @property
    def master_pid(self):
        """The master's PID (our sandbox child), or None when it is not running."""
        return self.child.pid if self.child is not None and self.child.alive() else None

    def start(self):
        """Start the mail system; returns when smtpd answers on its port.

        The same two steps as `postfix start-fg`, but with the master as our own child:
        start-fg runs postfix-script, which runs `master -s` as *its* child (it execs the
        master only as PID 1), so the sandbox would own a shell, not the master. Here:
        `postfix check` (the checks start runs, which also create the queue directories),
        then `master -c DIR -s` (foreground; stdout/stderr go to the sandbox's log).
        """
        if self.child is not None and self.child.alive():
            return
        self.check()
        self.child = self.sb.spawn(self.name, [MASTER, "-c", self.config_dir, "-s"])
        try:
            wait_for(f"{self.name} to answer on port {self.port}",
                     lambda: smtp_greets(self.host, self.port), timeout=30,
                     proc=self.child.popen)
        except SandboxError as e:
            self.stop()
            raise SandboxError(
                f"{e}\n{self.child.log()[-2000:]}{self.maillog()[-2000:]}\n(errors the master "
                "hits before postlogd runs, e.g. a port in use, are logged nowhere)") from None

    def reload(self, timeout=20):
        """`postfix reload` and wait until the master logged that it re-read its config."""
        mark = self.log_mark()
        self.sb.run([POSTFIX, "-c", self.config_dir, "reload"])
        self.wait_log(r"postfix/master\[\d+\]: reload", timeout=timeout, since=mark)

    def stop(self, timeout=20):
        """Stop the mail system: SIGTERM to the master (what `postfix stop` sends), which
        passes it on to its children and exits without waiting for them; so then wait
        until the master's process group is empty (SIGKILL after a grace period), also
        when interrupted. Safe to call twice."""
        child = self.child
        if child is None or getattr(child, "group_ended", False):
            return None
        try:
            return child.stop(timeout=timeout)
        finally:
            end_process_group(child.pid)
            child.group_ended = True  # never scan for that (reusable) group id again

    def close(self):
        self.stop()

    # ---- sending -------------------------------------------------------------------------

    def send(self, sender, recipients, message=None, *, subject="msgsandbox test",
             body="Hello.\n", headers=None, auth=None, refused=None, timeout=30):
        """Submit one message over SMTP; returns its Postfix queue id.

        message: bytes/str of the whole message; if None one is made from subject, body and
        headers. auth: (user, password) for SMTP AUTH. refused: a dict to collect recipients
        smtpd refused ({rcpt: (code, text)}); without it any refusal raises
        smtplib.SMTPRecipientsRefused.
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        if message is None:
            message = make_message(sender, recipients, subject, body, headers)
        if isinstance(message, str):
            message = message.encode()
        bad = {}
        with smtplib.SMTP(self.host, self.port, local_hostname="client.sandbox.test",
                          timeout=timeout) as s:
            s.ehlo()
            if auth is not None:
                s.login(*auth)
            code, text = s.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, sender)
            for r in recipients:
                code, text = s.rcpt(r)
                if code not in (250, 251):
                    bad[r] = (code, text)
            if bad and (refused is None or len(bad) == len(recipients)):
                s.rset()
                raise smtplib.SMTPRecipientsRefused(bad)
            code, text = s.data(message)
            if code != 250:
                raise smtplib.SMTPDataError(code, text)
        if refused is not None:
            refused.update(bad)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        if not m:
            raise SandboxError(f"no queue id in the reply to DATA: {text!r}")
        return m.group(1).decode()

    def sendmail(self, sender, recipients, message=None, *, args=(), subject="msgsandbox test",
                 body="Hello.\n", headers=None, timeout=30):
        """Submit one message with this instance's sendmail command (as root).

        Returns the Message-ID of the message (sendmail prints no queue id: use
        queue_id_of(message_id) to get it from the maillog).
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        if message is None:
            message = make_message(sender, recipients, subject, body, headers)
        if isinstance(message, str):
            message = message.encode()
        argv = [SENDMAIL, "-C", self.config_dir, "-i", "-f", sender, *args, "--", *recipients]
        res = subprocess.run(argv, input=message, capture_output=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise SandboxError(f"sendmail exited with {res.returncode}: "
                               f"{res.stderr.decode(errors='replace').strip()}")
        m = re.search(rb"^Message-ID:\s*(<[^>]*>)", message, re.I | re.M)
        return m.group(1).decode() if m else None

    # ---- queue ---------------------------------------------------------------------------

    def flush(self):
        """`postqueue -f`: retry all deferred mail now."""
        self.sb.run([POSTQUEUE, "-c", self.config_dir, "-f"])

    def queue(self):
        """The queue as `postqueue -j` reports it: a list of dicts (queue_id, queue_name, ...)."""
        out = self.sb.run([POSTQUEUE, "-c", self.config_dir, "-j"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def queue_ids(self):
        return [e["queue_id"] for e in self.queue()]

    def queue_empty(self):
        return not self.queue()

    def wait_queue_empty(self, timeout=30):
        wait_for(f"{self.name}'s queue to empty", self.queue_empty, timeout=timeout,
                 interval=0.2)

    # ---- the mail log --------------------------------------------------------------------

    def maillog(self, since=0):
        """The maillog text (from byte offset since)."""
        try:
            with open(self.maillog_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_mark(self):
        """The current end of the maillog: pass it as since= to wait for later lines only."""
        try:
            return os.path.getsize(self.maillog_path)
        except OSError:
            return 0

    def wait_log(self, regex, timeout=30, since=0):
        """Wait for a maillog line matching regex (re.M); returns the match."""
        pat = re.compile(regex, re.M)
        try:
            return wait_for(f"{self.name} maillog to match {regex!r}",
                            lambda: pat.search(self.maillog(since)), timeout=timeout,
                            interval=0.1)
        except SandboxError as e:
            tail = "\n    ".join(self.maillog(since).splitlines()[-15:])
            raise SandboxError(f"{e}; maillog tail:\n    {tail}") from None

    def wait_status(self, queue_id, recipient=None, status="sent", timeout=30, since=0):
        """Wait for the delivery log line "QID: to=<rcpt>, ... status=STATUS (...)"."""
        rcpt = re.escape(recipient) if recipient else "[^>]*"
        return self.wait_log(rf"^.*\b{re.escape(queue_id)}: to=<{rcpt}>,.*"
                             rf" status={status}\b.*$", timeout=timeout, since=since)

    def queue_id_of(self, message_id, timeout=30, since=0):
        """The queue id cleanup logged for a Message-ID (for mail sent with sendmail());
        the first one after byte offset since, if the same Message-ID was sent twice."""
        m = self.wait_log(rf"\b([0-9A-Za-z]+): message-id={re.escape(message_id)}",
                          timeout=timeout, since=since)
        return m.group(1)


def group_members(pgid):
    """PIDs of the live (not zombie) processes in process group pgid."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if state != "Z" and int(pgrp) == pgid:
            members.append(int(name))
    return members


def end_process_group(pgid, grace=5.0):
    """Wait until a process group the sandbox created (spawn() starts a new session, so its
    id is our child's PID) has no live members; SIGKILL what is left after grace seconds.
    Daemons such as the Postfix or Dovecot master signal their children and exit without
    waiting: without this, their children could still write into a sandbox being removed.
    Returns True when the group is empty."""
    deadline = time.monotonic() + grace
    killed = False
    while group_members(pgid):
        if time.monotonic() > deadline:
            if killed:
                return False
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
            killed, deadline = True, time.monotonic() + 5.0
        time.sleep(0.05)
    return True


def _write(path, text, mode=0o644):
    """Write a config file, dated 2 s in the past: Postfix re-reads a main.cf (any file it
    loads as a dictionary) until its mtime is more than a second old ("pausing to let it
    cool down"), which cost up to 2 s on every postconf/postfix command after a rewrite."""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    past = time.time() - 2
    os.utime(path, (past, past))


def _wrap(text, width):
    return textwrap.wrap(text, width - 2)
