#!/usr/bin/env python3
"""End-to-end read-receipt latency: from an IMAP STORE +FLAGS (\\Seen) completing to the
sender's WebSocket client receiving the "read" event.

    bench/latency.py [--messages 1000] [--after-report]

One private PostgreSQL, statusd and Dovecot with the msgstatus plugin. The messages are
recorded as the milter would (queued, sender alice) and delivered to bob over LMTP. Alice's
WebSocket client follows the feed live; bob's IMAP client marks the messages \\Seen one at
a time, waiting for each read event to arrive before the next command, and the time from
the tagged OK of the STORE to the arrival of the event is recorded. Prints p50, p90, p99
and the maximum. With --after-report, statusd first stores a DSN about the first message
(as a site does that gets reports back): its ingest session then has the report tables.
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.parse

import websocket


from benchutil import percentile  # first: it puts the sandbox on sys.path
from msgsandbox import Sandbox, paths
from msgsandbox.postfix import make_message
from msgsandbox.statusd import now_rfc3339

ALICE, BOB = "alice@example.net", "bob@example.org"



def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--after-report", action="store_true",
                    help="store a DSN first, as a site that gets reports back has")
    args = ap.parse_args()

    with Sandbox(name="bench-latency") as sb:
        pg = sb.postgres(fsync=True)
        sd = sb.statusd(pg)
        dc = sb.dovecot(users={BOB: "bob-secret"}, mail_plugins=["notify", "msgstatus"],
                        plugin_paths=[paths.binary("dovecot-plugin/lib90_msgstatus_plugin.so")],
                        plugin=sd.dovecot_plugin_settings())
        tids = [f"lat{os.getpid()}x{i}" for i in range(args.messages)]
        sd.send_events([{"v": 1, "id": f"{t}q", "type": "queued", "time": now_rfc3339(0),
                         "source": "bench", "tracking_id": t, "recipient": BOB,
                         "sender": ALICE, "sasl_user": ALICE} for t in tids])
        if args.after_report:
            sd.send_events([{"v": 1, "id": f"{tids[0]}r", "type": "report",
                             "time": now_rfc3339(0), "source": "milter", "tracking_id": tids[0],
                             "recipient": BOB,
                             "details": {"kind": "dsn", "status": "delivered",
                                         "report_id": "bench" + "r" * 20}}])
        for t in tids:
            dc.deliver(BOB, make_message(ALICE, [BOB], subject=t,
                                         headers=[("Msgstatus-Id", t)]))
        _, health = sd.http("/healthz")
        token = urllib.parse.quote(sd.token(ALICE))
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{sd.http_port}/api/v1/messages/stream?access_token={token}",
            timeout=10)
        json.loads(ws.recv())  # hello: from the head on
        imap = dc.imap(BOB)
        imap.select("INBOX")
        _, data = imap.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        lat = []
        for uid in uids:
            imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            done = time.monotonic()
            while True:
                ev = json.loads(ws.recv())
                if ev.get("status") == "read":
                    break
            lat.append((time.monotonic() - done) * 1000)
        imap.logout()
        ws.close()
        print(f"{len(lat)} read receipts, IMAP STORE OK -> WebSocket event, ms:")
        print(f"p50 {statistics.median(lat):.2f}  p90 {percentile(lat, 90):.2f}  "
              f"p99 {percentile(lat, 99):.2f}  max {max(lat):.2f}")


if __name__ == "__main__":
    main()
