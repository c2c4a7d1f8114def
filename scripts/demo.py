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

With --two-sites: two msgstatus sites, example.org (A, alice) and example.net (B, bob), each
msgsandbox's MsgstatusSite (tests/sandbox/msgsandbox/site.py) with the same least privilege:
own database on one PostgreSQL, statusd over HTTPS (the demo's private CA), the milter,
OpenDKIM signing, Dovecot, Postfix, the log follower; their DNS records in one Knot. No
Roundcube and no stand-in remote servers. alice@A mails bob@B: B authenticates it (DKIM)
and tracks it under its own id, and reports bob's delivered to A (a signed report over
HTTPS, docs/federation.md); then bob reads it at B (IMAP) and alice's status at A turns
read, reported by example.net, as A's dashboard shows.
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
    ap.add_argument("--two-sites", action="store_true",
                    help="two msgstatus sites instead: example.org (A) and example.net (B), "
                    "with DKIM signing and their DNS records (docs/federation.md); alice@A "
                    "mails bob@B, B correlates it; statusd's HTTP ports are --http-port and "
                    "the next one, if free")
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
    if args.two_sites:
        return two_sites(args)
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
        watch(sd, tracking_id, shown, [pg, sd, milter, dovecot, postfix, logd]
              + ([rc] if rc else []))


def watch(sd, tracking_id, shown, servers):
    """Print each change of the message's recipients' statuses at sd until Ctrl-C or until
    one of the servers stops; shown: the statuses printed already."""
    try:
        while all(c.child.alive() for c in servers):
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


def two_sites(args):
    """Sites A (example.org) and B (example.net), each msgsandbox's MsgstatusSite with the
    demo's least privilege; alice@A mails bob@B; B's correlation, then both dashboards."""
    print("demo: starting two msgstatus sites (PostgreSQL, Knot DNS, and per site statusd "
          "over HTTPS, the milter, OpenDKIM, Dovecot, Postfix, the log follower)...",
          flush=True)
    alice, bob = ALICE, "bob@example.net"
    with Sandbox(root=args.folder) as sb:
        started = time.monotonic()
        pg = sb.postgres(fsync=True, app_user=USER)
        # B's report sender trusts the demo's private CA, as A's endpoint uses it
        common = dict(pg=pg, user=USER, dovecot={"lmtp_user": "postfix"},
                      postfix={"retry": 60}, statusd={"federation_ca_file": sb.ca().cert})
        a = sb.msgstatus_site("example.org", {alice: PASSWORDS[alice]},
                              http_port=port_or_free(args.http_port), **common)
        b = sb.msgstatus_site("example.net", {bob: "bob-secret"}, routes={"example.org": a},
                              http_port=port_or_free(args.http_port + 1), **common)
        a.route("example.net", b)
        print(f"demo: both sites up in {time.monotonic() - started:.1f} s", flush=True)

        sample = make_message(alice, [bob], subject="Hello from site A",
                              body="Did it arrive at B, and was it read?\n")
        _qid, tid = a.send(alice, [bob], message=sample)
        keep_in_sent(a.dovecot, sample)
        try:
            row = wait_for("B's correlation of the sample", lambda: b.pg.psql(
                "SELECT tracking_id, dkim_domain, aligned FROM inbound "
                f"WHERE origin_tracking_id = '{tid}'"), timeout=30)[0]
            wait_for("bob's delivery at B", lambda: b.pg.scalar(
                f"SELECT count(*) FROM events WHERE tracking_id = '{row[0]}' AND type = 4")
                != "0", timeout=30)
            wait_for("A's record of the relay to B", lambda: statuses(a.statusd, tid).get(
                bob, {}).get("status") not in (None, "queued"), timeout=30)
            wait_for("B's report of the delivery at A", lambda: statuses(a.statusd, tid).get(
                bob, {}).get("status") == "delivered", timeout=30)
            at_a_before = statuses(a.statusd, tid)[bob]
            # CROSS-SITE READ: bob reads the message at B (IMAP FETCH: \Seen); B's report
            # sender tells A, signed; alice's status at A turns read, reported by example.net
            read_at = time.monotonic()
            c = b.dovecot.imap(bob)
            try:
                c.select("INBOX")
                c.fetch(b"1", "(BODY[])")
            finally:
                c.logout()
            wait_for("B's report of the read at A", lambda: statuses(a.statusd, tid).get(
                bob, {}).get("status") == "read", timeout=30)
            read_ms = (time.monotonic() - read_at) * 1000
            reporter = a.pg.scalar(
                "SELECT details->>'reporter' FROM events WHERE source = 'federation' AND "
                f"type = 7 AND message = (SELECT id FROM messages WHERE tracking_id = '{tid}')")
        except SandboxError as e:
            sys.exit(f"demo: {e}; see {args.folder}/logs/")

        print()
        print("Two msgstatus sites are running (Ctrl-C stops everything).")
        print(f"  folder       {args.folder}  (logs in {args.folder}/logs/)")
        print(f"  DNS          Knot on {a.dns.server}, zones in {a.dns.dir}/zones/")
        print(f"  HTTPS        certificates of the demo's private CA {a.ca_file}: the "
              "browser warns once (or import the CA); curl --cacert it")
        for site, user, pw in ((a, alice, PASSWORDS[alice]), (b, bob, "bob-secret")):
            sd = site.statusd
            print(f"  site {'A' if site is a else 'B'} {site.domain}")
            print(f"    dashboard  {sd.url}/#token={sd.token(user, ttl=86400)}  ({user})")
            print(f"    endpoint   {site.endpoint}  (its _msgstatus record)")
            print(f"    send mail  swaks --server 127.0.0.1:{site.postfix.port} --auth-user "
                  f"{user} --auth-password {pw} --from {user} --to ...")
            print(f"    statusctl  build/statusd/statusctl -c {sd.config}")
            print(f"    database   psql \"{site.pg.conninfo}\"")
        print()
        print(f"Sample message {tid} from {alice} to {bob}:")
        print(f"  at A         {describe(at_a_before)}  (reported by example.net)")
        print(f"  at B         delivered to bob, DKIM-authenticated for {row[1]} "
              f"(aligned: {row[2]}): B tracks it as {row[0]}")
        print(f"  read at B    bob fetched it over IMAP (as curl -s --user {bob}:bob-secret "
              f"'imap://127.0.0.1:{b.dovecot.imap_port}/INBOX;UID=1')")
        print(f"  cross-site   at A: {statuses(a.statusd, tid)[bob]['status']}, reported by "
              f"{reporter}, {read_ms:.0f} ms after bob's FETCH at B; A's dashboard shows it")
        print()
        sys.stdout.flush()
        if args.once:
            return
        print("Watching the sample message at A; changes appear below.", flush=True)
        watch(a.statusd, tid, statuses(a.statusd, tid),
              [pg] + [p for s in (a, b) for p in (s.statusd, s.milter, s.dkim, s.dovecot,
                                                  s.postfix, s.logd)])


if __name__ == "__main__":
    main()
