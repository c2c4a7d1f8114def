"""Start a private msgstatus system in a local folder, send a sample message, show where to
look, and keep it running until Ctrl-C. Run through scripts/run, which builds first."""
import argparse
import os
import shutil
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "sandbox"))
os.environ.setdefault("MSGSTATUS_BUILD_DIR", os.path.join(SOURCE, "build"))

from msgsandbox import Sandbox  # noqa: E402
from msgsandbox.statusd import now_rfc3339  # noqa: E402

MARKER = ".msgstatus-demo"


def port_or_free(port):
    """The preferred port if it is free on 127.0.0.1, else any free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def fresh_folder(path):
    if os.path.exists(path):
        if not os.path.exists(os.path.join(path, MARKER)):
            sys.exit(f"demo: {path} exists and is not a msgstatus demo folder; choose another "
                     "with --folder")
        shutil.rmtree(path)
    os.makedirs(path)
    open(os.path.join(path, MARKER), "w").close()


def sample_events(tracking_id):
    """The life of a sample message to three recipients, as the producers would report it."""
    base = dict(v=1, source="demo", tracking_id=tracking_id,
                message_id=f"<{tracking_id}@demo.example>", queue_id="4XdemoQ1")
    evs = []
    for i, rcpt in enumerate(["bob@demo.example", "carol@example.net", "dave@example.com"]):
        evs.append(dict(base, id=f"{tracking_id}-q{i}", type="queued", time=now_rfc3339(-3000),
                        recipient=rcpt, sender="alice@demo.example",
                        sasl_user="alice@demo.example", size=2048))
    evs.append(dict(base, id=f"{tracking_id}-d0", type="delivered", time=now_rfc3339(-2000),
                    recipient="bob@demo.example"))
    evs.append(dict(base, id=f"{tracking_id}-r0", type="read", time=now_rfc3339(-1000),
                    recipient="bob@demo.example"))
    evs.append(dict(base, id=f"{tracking_id}-s1", type="relayed", time=now_rfc3339(-2500),
                    recipient="carol@example.net",
                    details={"mta": "mx.example.net[192.0.2.10]:25", "dsn": "2.0.0",
                             "smtp_reply": "250 2.0.0 Ok: queued as 9F3A1"}))
    evs.append(dict(base, id=f"{tracking_id}-f2", type="deferred", time=now_rfc3339(-2500),
                    recipient="dave@example.com",
                    details={"dsn": "4.2.0", "smtp_reply": "451 4.2.0 greylisted, try later"}))
    return evs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--folder", default=os.path.join(os.getcwd(), "demo"),
                    help="where everything lives (recreated; default ./demo)")
    ap.add_argument("--http-port", type=int, default=8025)
    ap.add_argument("--once", action="store_true",
                    help="start, show the sample, and stop (for a quick check)")
    args = ap.parse_args()
    # Ctrl-C must work even when started from a script that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    fresh_folder(args.folder)
    with Sandbox(root=args.folder) as sb:
        pg = sb.postgres(fsync=True)
        http_port = port_or_free(args.http_port)
        sd = sb.statusd(pg, http_port=http_port)

        tracking_id = "demo" + time.strftime("%H%M%S")
        replies = sd.send_events(sample_events(tracking_id))
        assert all("ack" in r for r in replies), replies
        status, doc = sd.status(tracking_id, user="alice@demo.example")

        token = sd.token("alice@demo.example", ttl=86400)
        auth = "-H \"Authorization: Bearer $TOKEN\""
        print()
        print("msgstatus is running (Ctrl-C stops everything).")
        print(f"  folder       {args.folder}  (logs in {args.folder}/logs/)")
        print(f"  health       curl -s {sd.url}/healthz")
        print(f"  token        export TOKEN={token}")
        print("               (alice@demo.example, valid a day; more: statusctl token create)")
        print(f"  status API   curl -s {auth} {sd.url}/api/v1/messages/{tracking_id}/status")
        print(f"  live feed    curl -sN {auth} '{sd.url}/api/v1/messages/events?offset=0&epoch="
              f"{sd.http('/healthz')[1]['log']['epoch']}'")
        print(f"  events in    {sd.socket_path}  (protocol: docs/protocol.md)")
        print(f"  database     psql \"{pg.conninfo}\"")
        print(f"  statusctl    build/statusd/statusctl -c {sd.config} status {tracking_id}")
        print()
        print(f"Sample message {doc['message_id']} from {doc['sender']}:")
        for r in doc["recipients"]:
            print(f"  {r['recipient']:<22} {r['status']:<9} {r['smtp_reply'] or ''}")
        print()
        sys.stdout.flush()
        if args.once:
            return
        try:
            while sd.child.alive() and pg.child.alive():
                time.sleep(1)
            print("demo: a server stopped; see the logs", file=sys.stderr)
        except KeyboardInterrupt:
            print("\nstopping...")


if __name__ == "__main__":
    main()
