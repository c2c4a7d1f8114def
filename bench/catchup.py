#!/usr/bin/env python3
"""Feed catch-up benchmark: how fast a client that resumes from offset 0 receives a long
backlog over Server-Sent Events, side by side with reading the same rows straight out of
PostgreSQL.

    bench/catchup.py [--events 1000000] [--rounds 3] [--baseline BUILD_DIR]
                     [--feed-threads N]

One private PostgreSQL and statusd. The backlog is loaded once through statusd's socket
(bench/ingest_load, the same realistic mix as bench/ingest.py: per message two recipients,
queued x2, relayed, delivered, read), all of it sent by one user. Then, per round:

  statusd SSE   GET /api/v1/messages/events?offset=0&epoch=E as that user with a signed
                token; timed from the request until the record with the head's offset has
                arrived. The client reads raw bytes into one buffer and counts records in
                place, so it is not the bottleneck (its CPU per event is printed too). This
                is the whole path: authorization filter, JSON per event, the
                per-connection buffer limit (CATCHUP_WATER) and lws. Also the CPU time
                statusd and its PostgreSQL backends used per event.
  baseline      with --baseline: the same for the statusd of another build tree (e.g. an
                older commit's), a second instance on the same PostgreSQL, timed in the
                same rounds; the order of the three runs rotates from round to round.
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
    until the next ping's write fails (up to feed_ping_interval), slowing the next round.

    The client shares the two CPUs with statusd and PostgreSQL, so it reads into one
    buffer and searches it in place: recv(1 MiB), which allocated a new buffer per read
    and copied it twice more, cost about 0.21 µs of CPU per event against 0.18 now (most
    of what is left is the kernel's copy)."""
    want = f"id: {epoch}-{head}\n".encode()
    mark = b"\nid: "
    req = (f"GET /api/v1/messages/events?offset=0&epoch={epoch}&access_token={token} "
           f"HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n").encode()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    records = 0
    # the stream's last len(want) - 1 bytes before this read: a mark or want split by the
    # boundary ends in this read and starts in them (each is counted where it ends)
    prev = b""
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", sd.http_port))
    keep.append(s)
    s.sendall(req)
    while True:
        n = s.recv_into(buf)
        if n == 0:
            raise RuntimeError("statusd closed the stream: " + prev.decode(errors="replace"))
        records += buf.count(mark, 0, n)
        records += (prev[-(len(mark) - 1):] + view[:min(n, len(mark) - 1)]).count(mark)
        if buf.find(want, 0, n) >= 0 or \
                want in prev[-(len(want) - 1):] + view[:min(n, len(want) - 1)]:
            return time.monotonic() - start, records
        if n >= len(want) - 1:
            prev = bytes(view[n - (len(want) - 1):n])
        else:
            prev = (prev + view[:n])[-(len(want) - 1):]


def pg_cpu_between(before, after):
    """CPU seconds PostgreSQL's backends used between two backends() readings, those that
    started in between (a feed loop's second database connection) included."""
    return (sum(after.get(k, t) - t for k, t in before.items())
            + sum(t for k, t in after.items() if k not in before))


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
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="also time the statusd of this build tree, in the same rounds")
    ap.add_argument("--feed-threads", type=int,
                    help="statusd's feed_threads (the baseline keeps its default)")
    args = ap.parse_args()

    with Sandbox(name="bench-catchup") as sb:
        pg = sb.postgres(fsync=True, settings={"shared_buffers": "512MB",
                                               "max_wal_size": "4GB"})
        sd = sb.statusd(pg, settings={"feed_threads": str(args.feed_threads)}
                        if args.feed_threads else None)
        servers = [("statusd", sd)]
        if args.baseline:
            ours, paths.build = paths.build, os.path.abspath(args.baseline)
            servers.append(("baseline", sb.statusd(pg, name="statusd-base")))
            paths.build = ours
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
        keep = []
        tokens = {}
        for name, srv in servers:
            tokens[name] = srv.token(USER, ttl=3600)
            srv.http("/healthz")
            for _ in range(2):  # warm up caches, and (likely) both feed loops' connections
                sse_catchup(srv, tokens[name], epoch, head, keep)
        copy_out(pg)
        rates = {name: [] for name, _ in servers}
        client = {name: [] for name, _ in servers}  # this client's CPU µs per event
        cp = []
        # CPU per event: statusd (all its threads) and PostgreSQL's backends during the
        # catch-up (its query connections), which say more than rates on a shared machine
        cols = " | ".join(f"{n} SSE events/s | ratio | {n} CPU µs/event | its PostgreSQL "
                          f"CPU µs/event" for n, _ in servers)
        print(f"| round | psql COPY rows/s | {cols} |")
        print("|---|---|" + "---|---|---|---|" * len(servers))
        runs = [("copy", None)] + servers
        for r in range(args.rounds):
            row = {}
            for name, srv in runs[r % len(runs):] + runs[:r % len(runs)]:
                if srv is None:
                    cp.append(head / copy_out(pg))
                    continue
                sd0, pg0 = cpu_seconds(srv.child.popen.pid), backends(pg)
                me0 = time.process_time()
                secs, records = sse_catchup(srv, tokens[name], epoch, head, keep)
                me1 = time.process_time()
                sd1, pg1 = cpu_seconds(srv.child.popen.pid), backends(pg)
                client[name].append(1e6 * (me1 - me0) / head)
                if records < head:
                    raise RuntimeError(f"{name}: only {records} of {head} records arrived")
                rates[name].append(head / secs)
                row[name] = (1e6 * (sd1 - sd0) / head, 1e6 * pg_cpu_between(pg0, pg1) / head)
            cells = " | ".join(f"{rates[n][-1]:,.0f} | {rates[n][-1] / cp[-1]:.2f} | "
                               f"{row[n][0]:.2f} | {row[n][1]:.2f}" for n, _ in servers)
            print(f"| {r + 1} | {cp[-1]:,.0f} | {cells} |", flush=True)
        c = statistics.median(cp)
        cells = " | ".join(f"{statistics.median(rates[n]):,.0f} | "
                           f"{statistics.median(rates[n]) / c:.2f} | | " for n, _ in servers)
        print(f"| median | {c:,.0f} | {cells} |")
        for n, _ in servers:
            ratios = sorted(a / b for a, b in zip(rates[n], cp))
            print(f"{n}: ratio to COPY per round {', '.join(f'{x:.2f}' for x in ratios)}; "
                  f"the SSE client's CPU µs/event {', '.join(f'{x:.2f}' for x in client[n])}")
        for sock in keep:
            sock.close()


if __name__ == "__main__":
    main()
