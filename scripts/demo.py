"""Start a private msgstatus mail system in a local folder, send a sample message, show where
to look, and keep it running until Ctrl-C. Run through scripts/run, which builds first.

Everything is private: PostgreSQL, statusd, msgstatus-milter, msgstatus-logd, Postfix
(SMTP on 127.0.0.1), Dovecot (IMAP on 127.0.0.1, LMTP for local delivery, with the msgstatus
plugin when it is built), Roundcube with the msgstatus plugin (where it is installed) and
two smtp-sinks standing in for remote mail servers: one that accepts (example.net) and one
that greylists (example.com). The local domain is
example.org, with the users alice@ and bob@ (passwords alice-secret and bob-secret).

With the least privilege docs/deployment.md and docs/security.md describe: statusd, the
milter and the log follower run as the system user msgstatus (created if missing, the one
change outside the folder), the log follower with CAP_DAC_READ_SEARCH only; PostgreSQL
authenticates by peer and msgstatus's role owns its database and nothing more; the milter's
socket is for Postfix only (0660, group postfix), Dovecot's LMTP socket too (0600, postfix),
statusd's event socket for msgstatus and the mail user (0660, group mail).
"""
import argparse
import os
import shutil
import signal
import pwd
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "sandbox"))
os.environ.setdefault("MSGSTATUS_BUILD_DIR", os.path.join(SOURCE, "build"))

from msgsandbox import Sandbox, roundcube  # noqa: E402
from msgsandbox.core import SandboxError, paths, wait_for  # noqa: E402
from msgsandbox.postfix import make_message  # noqa: E402

MARKER = ".msgstatus-demo"
USER = "msgstatus"  # the system user statusd, the milter and logd run as
ALICE, BOB = "alice@example.org", "bob@example.org"
PASSWORDS = {ALICE: "alice-secret", BOB: "bob-secret"}
CAROL, DAVE = "carol@example.net", "dave@example.com"
PLUGIN = "dovecot-plugin/lib90_msgstatus_plugin.so"


def port_or_free(port):
    """The preferred port if it is free on 127.0.0.1, else any free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def reachable(path):
    """Whether unprivileged users (postfix, dovecot, mail) can pass through every parent."""
    path = os.path.abspath(path)
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return True
        if os.path.exists(parent) and not os.stat(parent).st_mode & 0o001:
            return False
        path = parent


def system_user(name):
    """Create the system user (and its group) the daemons run as, if it is missing."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                    "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
                    "msgstatus daemons", name], check=True)
    print(f"demo: created the system user {name} for statusd, the milter and the log "
          "follower (docs/deployment.md, section 3)", file=sys.stderr)


def fresh_folder(path):
    if os.path.exists(path):
        if not os.path.exists(os.path.join(path, MARKER)):
            sys.exit(f"demo: {path} exists and is not a msgstatus demo folder; choose another "
                     "with --folder")
        shutil.rmtree(path)
    os.makedirs(path)
    os.chmod(path, 0o755)  # Dovecot's and Postfix's unprivileged processes pass through it
    open(os.path.join(path, MARKER), "w").close()


def dovecot_options(sd):
    """Dovecot with the msgstatus plugin if it is built, else plain Dovecot."""
    so = os.path.join(paths.build, PLUGIN)
    if not os.path.exists(so):
        return {}, False
    return dict(mail_plugins=["notify", "msgstatus"], plugin_paths=[so],
                plugin=sd.dovecot_plugin_settings()), True


def keep_in_sent(dovecot, message):
    """File the sender's copy in alice's Sent folder, as her mail client would."""
    import imaplib
    c = dovecot.imap(ALICE)
    try:
        c.create("Sent")
        c.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(time.time()), message)
    finally:
        c.logout()


def statuses(sd, tracking_id):
    code, doc = sd.status(tracking_id, user=ALICE)
    if code != 200:
        return {}
    return {r["recipient"]: r for r in doc["recipients"]}


def describe(r):
    reply = r.get("smtp_reply") or ""
    return f"{r['status']:<9} {reply}".rstrip()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default=os.path.join(os.getcwd(), "demo"),
                    help="where everything lives (recreated; default ./demo, or "
                    "/var/tmp/msgstatus-demo if other users cannot reach ./demo)")
    ap.add_argument("--http-port", type=int, default=8025,
                    help="statusd's HTTP port if free (default 8025)")
    ap.add_argument("--webmail-port", type=int, default=8026,
                    help="Roundcube's HTTP port if free (default 8026), where Roundcube is "
                    "installed")
    ap.add_argument("--once", action="store_true",
                    help="start, send the sample, show it, and stop (for a quick check)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("demo: run as root: the private Postfix and Dovecot drop privileges "
                 "themselves, and the daemons run as the user msgstatus (nothing system-wide is "
                 "started or changed but that user)")
    # Ctrl-C must work even when started from a script that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    if not reachable(args.folder):
        fallback = "/var/tmp/msgstatus-demo"
        print(f"demo: {os.path.dirname(os.path.abspath(args.folder))} is closed to other "
              f"users, whom Postfix and Dovecot run as: using {fallback} (or choose with "
              "--folder)", file=sys.stderr)
        args.folder = fallback
    system_user(USER)
    fresh_folder(args.folder)
    print("demo: starting PostgreSQL, statusd, the milter, Dovecot, Postfix and the log "
          "follower...", flush=True)
    with Sandbox(root=args.folder) as sb:
        pg = sb.postgres(fsync=True, app_user=USER)
        webmail = roundcube.available() is None
        rc_port = port_or_free(args.webmail_port) if webmail else None
        sd = sb.statusd(pg, http_port=port_or_free(args.http_port),
                        settings={"http_cors_origins": f"http://127.0.0.1:{rc_port}"}
                        if webmail else None, user=USER)
        milter = sb.milter(sd, user=USER)
        dc_opts, plugin = dovecot_options(sd)
        dovecot = sb.dovecot(users=PASSWORDS, lmtp_user="postfix", **dc_opts)
        accept = sb.smtp_sink(name="mx-example-net")
        greylist = sb.smtp_sink(name="mx-example-com", mode="defer", at="rcpt",
                                reply="451 4.7.1 greylisted, please try again later")
        postfix = sb.postfix(domains=["example.org"], lmtp=dovecot, sasl=dovecot,
                             milter=milter, milter_macro_defaults={"msgstatus_domains":
                                                                   "example.org"},
                             transports={"example.net": accept, "example.com": greylist},
                             retry=60)
        logd = sb.logd(sd, postfix=postfix, user=USER)
        rc = sb.roundcube(sd, dovecot, postfix, port=rc_port) if webmail else None

        sample = make_message(ALICE, [BOB, CAROL, DAVE], subject="Hello from msgstatus",
                              body="Did it arrive, and was it read?\n")
        qid = postfix.send(ALICE, [BOB, CAROL, DAVE], message=sample,
                           auth=(ALICE, PASSWORDS[ALICE]))
        keep_in_sent(dovecot, sample)
        tracking_id = wait_for("the milter's record of the sample message",
                               lambda: pg.scalar("SELECT tracking_id FROM messages "
                                                 f"WHERE queue_id = '{qid}'"), timeout=30)
        want = {BOB: "delivered", CAROL: "relayed", DAVE: "deferred"}
        try:
            wait_for("the sample's delivery results", lambda: all(
                statuses(sd, tracking_id).get(r, {}).get("status") == s
                for r, s in want.items()), timeout=30)
        except SandboxError as e:
            print(f"demo: {e}; see {args.folder}/logs/", file=sys.stderr)

        token = sd.token(ALICE, ttl=86400)
        code, _ = sd.http("/")
        epoch = sd.http("/healthz")[1]["log"]["epoch"]
        auth = "-H \"Authorization: Bearer $TOKEN\""
        print()
        print("msgstatus is running (Ctrl-C stops everything).")
        print(f"  folder       {args.folder}  (logs in {args.folder}/logs/)")
        if code == 200:
            print(f"  dashboard    {sd.url}/#token={token}")
        if rc is not None:
            print(f"  webmail      {rc.url}/  (Roundcube with the msgstatus plugin; log in as "
                  f"{ALICE} / {PASSWORDS[ALICE]}, or {BOB} / {PASSWORDS[BOB]})")
        print(f"  token        export TOKEN={token}")
        print(f"               ({ALICE}, valid a day; more: statusctl token create)")
        print(f"  status API   curl -s {auth} {sd.url}/api/v1/messages/{tracking_id}/status")
        print(f"  live feed    curl -sN {auth} '{sd.url}/api/v1/messages/events?offset=0&epoch="
              f"{epoch}'")
        print(f"  send mail    swaks --server 127.0.0.1:{postfix.port} --auth-user {ALICE} "
              f"--auth-password {PASSWORDS[ALICE]} --from {ALICE} --to {BOB}")
        print(f"  read mail    curl -s --user {BOB}:{PASSWORDS[BOB]} "
              f"'imap://127.0.0.1:{dovecot.imap_port}/INBOX;UID=1'")
        if plugin:
            print("               (reading marks it \\Seen: the Dovecot plugin reports it read)")
        else:
            print("               (the Dovecot plugin is not built: no read receipts)")
        print(f"  statusctl    build/statusd/statusctl -c {sd.config} status {tracking_id}")
        print(f"  database     psql \"{pg.conninfo}\"")
        print(f"  privileges   statusd, the milter and the log follower run as {USER}; "
              "PostgreSQL: peer authentication,")
        print(f"               the role {USER} owns its database only (see "
              f"{args.folder}/pg/data/pg_hba.conf)")
        print()
        print(f"Sample message {tracking_id} (queue id {qid}) from {ALICE}:")
        shown = statuses(sd, tracking_id)
        for rcpt in (BOB, CAROL, DAVE):
            if rcpt in shown:
                print(f"  {rcpt:<20} {describe(shown[rcpt])}")
        print()
        sys.stdout.flush()
        if args.once:
            return
        print("Watching the sample message; changes appear below.", flush=True)
        try:
            while all(c.child.alive() for c in (pg, sd, milter, dovecot, postfix, logd)
                      + ((rc,) if rc else ())):
                time.sleep(1)
                now = statuses(sd, tracking_id)
                for rcpt, r in now.items():
                    if rcpt not in shown or shown[rcpt]["status"] != r["status"]:
                        print(f"  {time.strftime('%H:%M:%S')}  {rcpt:<20} {describe(r)}",
                              flush=True)
                shown = now or shown
            print("demo: a server stopped; see the logs", file=sys.stderr)
        except KeyboardInterrupt:
            print("\nstopping...")


if __name__ == "__main__":
    main()
