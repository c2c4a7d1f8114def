#!/usr/bin/env python3
"""End-to-end read-receipt latency: from an IMAP STORE +FLAGS (\\Seen) completing to the
sender's WebSocket client receiving the "read" event.

    bench/latency.py [--messages 1000] [--after-report] [--baseline BUILD_DIR [--rounds 3]]

One private PostgreSQL, statusd and Dovecot with the msgstatus plugin. The messages are
recorded as the milter would (queued, sender alice) and delivered to bob over LMTP. Alice's
WebSocket client follows the feed live; bob's IMAP client marks the messages \\Seen one at
a time, waiting for each read event to arrive before the next command, and the time from
the tagged OK of the STORE to the arrival of the event is recorded. Prints p50, p90, p99
and the maximum, and the CPU statusd and PostgreSQL (all of its processes) spent per read:
each read is a batch of one event. With --after-report, statusd first stores a DSN about the
first message (as a site does that gets reports back): its ingest session then has the
report tables.

With --baseline BUILD_DIR, another build's statusd and Dovecot plugin run beside this one,
with a database of their own migrated from that build's source tree (BUILD_DIR/.., its
sql/) and a Dovecot of their own; the messages are split into --rounds rounds, each run by
both in turn (the order alternating), and each prints its own line per round.
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.parse

import websocket


from benchutil import cpu_seconds, percentile, pg_cpu  # first: it puts the sandbox on sys.path
from msgsandbox import Sandbox, paths
from msgsandbox.postfix import make_message
from msgsandbox.statusd import now_rfc3339

ALICE, BOB = "alice@example.net", "bob@example.org"


class Site:
    """A statusd and a Dovecot with the plugin of one build, bob's mail delivered."""

    def __init__(self, sb, pg, name, tids, after_report, build=None):
        ours = paths.build
        settings = {}
        if build is not None:
            source = os.path.dirname(os.path.abspath(build))
            pg.psql(f"CREATE DATABASE {name}", db="postgres")
            paths.build = os.path.abspath(build)
            settings = {"sql_dir": os.path.join(source, "sql"),
                        "database": pg.conninfo.replace(f"dbname={pg.dbname}",
                                                        f"dbname={name}")}
        try:
            self.sd = sb.statusd(pg, name=f"statusd-{name}", settings=settings)
            self.dc = sb.dovecot(
                name=f"dovecot-{name}", users={BOB: "bob-secret"},
                mail_plugins=["notify", "msgstatus"],
                plugin_paths=[paths.binary("dovecot-plugin/lib90_msgstatus_plugin.so")],
                plugin=self.sd.dovecot_plugin_settings())
        finally:
            paths.build = ours
        self.name = name
        self.sd.send_events([{"v": 1, "id": f"{t}q", "type": "queued", "time": now_rfc3339(0),
                              "source": "bench", "tracking_id": t, "recipient": BOB,
                              "sender": ALICE, "sasl_user": ALICE} for t in tids])
        if after_report:
            self.sd.send_events([{"v": 1, "id": f"{tids[0]}r", "type": "report",
                                  "time": now_rfc3339(0), "source": "milter",
                                  "tracking_id": tids[0], "recipient": BOB,
                                  "details": {"kind": "dsn", "status": "delivered",
                                              "report_id": "bench" + "r" * 20}}])
        for t in tids:
            self.dc.deliver(BOB, make_message(ALICE, [BOB], subject=t,
                                              headers=[("Msgstatus-Id", t)]))
        token = urllib.parse.quote(self.sd.token(ALICE))
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.sd.http_port}/api/v1/messages/stream?access_token={token}",
            timeout=10)
        json.loads(self.ws.recv())  # hello: from the head on
        self.imap = self.dc.imap(BOB)
        self.imap.select("INBOX")
        _, data = self.imap.uid("SEARCH", None, "ALL")
        self.uids = data[0].split()

    def run(self, pg, uids):
        """Mark uids \\Seen one at a time; the latencies (ms), and statusd's and
        PostgreSQL's CPU per read (ms)."""
        lat = []
        sd_cpu, db_cpu = cpu_seconds(self.sd.child.popen.pid), pg_cpu(pg)
        for uid in uids:
            self.imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            done = time.monotonic()
            while True:
                ev = json.loads(self.ws.recv())
                if ev.get("status") == "read":
                    break
            lat.append((time.monotonic() - done) * 1000)
        n = max(len(uids), 1)
        return (lat, (cpu_seconds(self.sd.child.popen.pid) - sd_cpu) / n * 1000,
                (pg_cpu(pg) - db_cpu) / n * 1000)

    def close(self):
        self.imap.logout()
        self.ws.close()


def line(name, lat, sd_ms, pg_ms):
    return (f"{name}: p50 {statistics.median(lat):.2f}  p90 {percentile(lat, 90):.2f}  "
            f"p99 {percentile(lat, 99):.2f}  max {max(lat):.2f}  "
            f"CPU per read: statusd {sd_ms:.3f} ms, PostgreSQL {pg_ms:.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--after-report", action="store_true",
                    help="store a DSN first, as a site that gets reports back has")
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="also run another build's statusd and plugin, alternating")
    ap.add_argument("--rounds", type=int, default=3,
                    help="with --baseline: rounds the messages are split into")
    args = ap.parse_args()

    with Sandbox(name="bench-latency") as sb:
        pg = sb.postgres(fsync=True)
        sites = [Site(sb, pg, "this", [f"lat{os.getpid()}x{i}" for i in range(args.messages)],
                      args.after_report)]
        if args.baseline:
            sites.append(Site(sb, pg, "baseline",
                              [f"lab{os.getpid()}x{i}" for i in range(args.messages)],
                              args.after_report, build=args.baseline))
        rounds = args.rounds if args.baseline else 1
        per = -(-args.messages // rounds)
        totals = {s.name: [] for s in sites}
        print(f"{args.messages} read receipts, IMAP STORE OK -> WebSocket event, ms:")
        for r in range(rounds):
            order = sites if r % 2 == 0 else sites[::-1]
            for s in order:
                lat, sd_ms, pg_ms = s.run(pg, s.uids[r * per:(r + 1) * per])
                totals[s.name].append((lat, sd_ms, pg_ms))
                if args.baseline:
                    print(f"round {r + 1} " + line(s.name, lat, sd_ms, pg_ms), flush=True)
        for s in sites:
            lat = [x for t in totals[s.name] for x in t[0]]
            print(line(f"all {s.name}" if args.baseline else "all", lat,
                       statistics.median(t[1] for t in totals[s.name]),
                       statistics.median(t[2] for t in totals[s.name])))
            s.close()


if __name__ == "__main__":
    main()
