#!/usr/bin/env python3
"""Feed catch-up benchmark: how fast a client that resumes from offset 0 receives a long
backlog over Server-Sent Events, side by side with reading the same rows straight out of
PostgreSQL.

    bench/catchup.py [--events 1000000] [--rounds 3]

One private PostgreSQL and statusd. The backlog is loaded once through statusd's socket
(bench/ingest_load, the same realistic mix as bench/ingest.py: per message two recipients,
queued x2, relayed, delivered, read), all of it sent by one user. Then, per round:

  statusd SSE   GET /api/v1/messages/events?offset=0&epoch=E as that user with a signed
                token; timed from the request until the record with the head's offset has
                arrived. The client reads raw bytes and counts records, so it is not the
                bottleneck. This is the whole path: authorization filter, JSON per event,
                the per-connection buffer limit (CATCHUP_WATER) and lws. Also the CPU time
                statusd and its PostgreSQL backend used per event.
  psql COPY     COPY (SELECT the same columns FROM events ORDER BY log_offset) TO STDOUT
                into /dev/null: the floor of reading these rows out of PostgreSQL.

Prints a Markdown table per round and the medians.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import benchutil  # noqa: F401  (first: it puts the sandbox on sys.path)
from benchutil import backends, cpu_seconds

from ingest import make_events
from msgsandbox import Sandbox, paths

USER = "alice@bench.example"


def sse_catchup(sd, token, epoch, head, keep):
    """Seconds until the record with offset head has arrived; and the records counted. The
    connection is left open, in keep: libwebsockets 4.1 does not read an HTTP/1 connection
    while a response is under way, so statusd's loop would spin on a hung-up SSE client
    until the next ping's write fails (up to feed_ping_interval), slowing the next round."""
    want = f"id: {epoch}-{head}\n".encode()
    req = (f"GET /api/v1/messages/events?offset=0&epoch={epoch}&access_token={token} "
           f"HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").encode()
    records = 0
    tail = b""   # enough of the previous chunk to find want across a boundary
    ctail = b""  # 4 bytes: a record mark split by a boundary is counted once
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", sd.http_port))
    keep.append(s)
    s.sendall(req)
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise RuntimeError("statusd closed the stream: " + tail.decode(errors="replace"))
        data = tail + chunk
        records += (ctail + chunk).count(b"\nid: ")
        ctail = chunk[-4:]
        if want in data:
            return time.monotonic() - start, records
        tail = data[-len(want):]


def copy_out(pg):
    start = time.monotonic()
    pg.psql("\\copy (SELECT log_offset, event_time, type, recipient, tracking_id, message_id, "
            "details, event_id FROM events WHERE log_offset IS NOT NULL ORDER BY log_offset) "
            "TO '/dev/null'")
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    with Sandbox(name="bench-catchup") as sb:
        pg = sb.postgres(fsync=True, settings={"shared_buffers": "512MB",
                                               "max_wal_size": "4GB"})
        sd = sb.statusd(pg)
        ndjson = sb.path("events.ndjson")
        with open(ndjson, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in make_events(args.events))
        os.chmod(sb.root, 0o755)
        t0 = time.monotonic()
        subprocess.run([paths.binary("bench/ingest_load"), sd.socket_path, ndjson],
                       capture_output=True, text=True, check=True)
        pg.psql("VACUUM ANALYZE")
        _, health = sd.http("/healthz")
        head, epoch = health["log"]["head"], health["log"]["epoch"]
        print(f"backlog: {head:,} events in the log (loaded in {time.monotonic() - t0:.0f} s)\n")
        token = sd.token(USER, ttl=3600)
        keep = []
        sse_catchup(sd, token, epoch, head, keep)  # warm up caches
        copy_out(pg)
        sse, cp = [], []
        # CPU per event: statusd (all its threads) and the busiest PostgreSQL backend during
        # the catch-up (its query connection), which say more than rates on a shared machine
        print("| round | statusd SSE events/s | psql COPY rows/s | ratio "
              "| statusd CPU µs/event | PostgreSQL CPU µs/event |")
        print("|---|---|---|---|---|---|")
        for r in range(args.rounds):
            sd0, pg0 = cpu_seconds(sd.child.popen.pid), backends(pg)
            secs, records = sse_catchup(sd, token, epoch, head, keep)
            sd1, pg1 = cpu_seconds(sd.child.popen.pid), backends(pg)
            if records < head:
                raise RuntimeError(f"only {records} of {head} records arrived")
            pg_cpu = max((pg1.get(k, t) - t for k, t in pg0.items()), default=0.0)
            c = copy_out(pg)
            sse.append(head / secs)
            cp.append(head / c)
            print(f"| {r + 1} | {sse[-1]:,.0f} | {cp[-1]:,.0f} | {sse[-1] / cp[-1]:.2f} "
                  f"| {1e6 * (sd1 - sd0) / head:.2f} | {1e6 * pg_cpu / head:.2f} |", flush=True)
        s, c = statistics.median(sse), statistics.median(cp)
        print(f"| median | {s:,.0f} | {c:,.0f} | {s / c:.2f} | | |")
        for sock in keep:
            sock.close()


if __name__ == "__main__":
    main()
