#!/usr/bin/env python3
"""Ingest benchmark: events/s that statusd stores in PostgreSQL, side by side with a plain
COPY of the same rows into the same table on the same server.

    bench/ingest.py [--events 200000] [--rounds 3] [--baseline SOURCE_DIR] [--inbound N]

Both runs use one private PostgreSQL 15 with durable settings (fsync on, synchronous_commit
on). Between runs the tables are emptied. statusd's run is measured from the first record
sent to the last acknowledgement (acknowledged = committed), through its socket, with the
load generator bench/ingest_load (the producers' client). The COPY run is psql's \\copy of
the already formatted event rows into the events table: no validation, no deduplication, no
log offsets, no message or recipient rows, no status derivation — the lower bound of what
storing these events can cost. Prints a Markdown table row per round and the medians, with
the CPU time all of PostgreSQL's processes used per row and per event.

With --baseline, each round also stores the events with the statusd of another source tree
(its build/, or MSGSTATUS_BASELINE_BUILD_DIR) and its sql/, in a database of its own on the
same server: a before and after under the same load, each against the same COPY.

With --inbound N, the databases first remember N messages from other sites (rows in the
inbound table, sql/007, of other tracking ids than the benchmark's): a site that takes part
in the federation, where each batch with delivered or read events also asks which of them
go to the federation outbox (sql/011), and none does.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import benchutil  # noqa: F401  (first: it puts the sandbox on sys.path)
from benchutil import pg_cpu

from msgsandbox import Sandbox, paths


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def make_events(n):
    """A realistic mix: per message two recipients, queued x2, relayed, delivered, read."""
    now = time.time() - 3600
    events = []
    m = 0
    while len(events) < n:
        tid = "bench%09d" % m
        common = {"v": 1, "source": "bench", "tracking_id": tid,
                  "message_id": f"<{tid}@bench.example>", "queue_id": "4X%010d" % m}
        t = now + m * 0.001
        for r, rcpt in enumerate(("bob@bench.example", "carol@remote.example")):
            events.append(dict(common, id=f"{tid}q{r}", type="queued", time=rfc3339(t),
                               recipient=rcpt, sender="alice@bench.example",
                               sasl_user="alice@bench.example", size=4096))
        events.append(dict(common, id=f"{tid}s", type="relayed", time=rfc3339(t + 0.2),
                           recipient="carol@remote.example",
                           details={"mta": "mx.remote.example[192.0.2.7]:25", "dsn": "2.0.0",
                                    "smtp_reply": "250 2.0.0 Ok: queued as 3F2A1B"}))
        events.append(dict(common, id=f"{tid}d", type="delivered", time=rfc3339(t + 0.1),
                           recipient="bob@bench.example"))
        events.append(dict(common, id=f"{tid}r", type="read", time=rfc3339(t + 5),
                           recipient="bob@bench.example"))
        m += 1
    return events[:n]


TYPES = {"queued": 1, "deferred": 2, "relayed": 3, "delivered": 4, "bounced": 5,
         "expired": 6, "read": 7, "unread": 8, "deleted": 9}


def copy_rows(events):
    """The same events as COPY text rows for the events table."""
    out = []
    for i, e in enumerate(events):
        details = json.dumps(e["details"]) if "details" in e else "\\N"
        out.append("\t".join([e["time"], e["id"], str(i + 1), str(TYPES[e["type"]]), e["source"],
                              "\\N", e["tracking_id"], e["queue_id"], e["message_id"],
                              e["recipient"], "\\N", details]))
    return "\n".join(out) + "\n"


def empty(pg, db=None):
    pg.psql("TRUNCATE events, recipients, messages; UPDATE log_head SET head = 0; "
            "CHECKPOINT", db=db)


def run_copy(pg, path, n):
    empty(pg)
    start = time.monotonic()
    pg.psql(f"\\copy events (event_time, event_id, log_offset, type, source, message, "
            f"tracking_id, queue_id, message_id, recipient, orig_recipient, details) "
            f"FROM '{path}'")
    secs = time.monotonic() - start
    assert int(pg.scalar("SELECT count(*) FROM events")) == n
    return n / secs


def run_statusd(pg, sd, path, n, db=None):
    empty(pg, db)
    res = subprocess.run([paths.binary("bench/ingest_load"), sd.socket_path, path],
                         capture_output=True, text=True, check=True)
    fields = res.stdout.split()
    rate = float(fields[fields.index("rate") + 1])
    assert int(pg.psql("SELECT count(*) FROM events", db=db)[0][0]) == n
    return rate


def baseline_statusd(sb, pg, source, batch):
    """The statusd of another source tree, on a database of its own migrated by it."""
    pg.psql("CREATE DATABASE baseline", db="postgres")
    ours, paths.build = paths.build, os.environ.get("MSGSTATUS_BASELINE_BUILD_DIR") or \
        os.path.join(source, "build")
    try:
        return sb.statusd(pg, name="statusd-base", settings={
            "ingest_batch_max": batch, "sql_dir": os.path.join(source, "sql"),
            "database": pg.conninfo.replace(f"dbname={pg.dbname}", "dbname=baseline")})
    finally:
        paths.build = ours


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", default="2000", help="statusd ingest_batch_max")
    ap.add_argument("--baseline", metavar="SOURCE_DIR",
                    help="also store the events with this tree's statusd and schema")
    ap.add_argument("--inbound", type=int, default=0, metavar="N",
                    help="remember N messages from other sites first (none of the events')")
    args = ap.parse_args()

    events = make_events(args.events)
    with Sandbox(name="bench-ingest") as sb:
        pg = sb.postgres(fsync=True, settings={"shared_buffers": "512MB",
                                               "max_wal_size": "4GB"})
        sd = sb.statusd(pg, settings={"ingest_batch_max": args.batch})
        base = baseline_statusd(sb, pg, os.path.abspath(args.baseline), args.batch) \
            if args.baseline else None
        for db in [None] + (["baseline"] if base else []):
            pg.psql("INSERT INTO inbound (tracking_id, recipient, origin_tracking_id,"
                    " dkim_domain, aligned, event_id, received_at)"
                    " SELECT 'elsewhere' || i, 'bob@bench.example', 'origin' || i,"
                    " 'remote.example', 'envelope', 'inb' || i, now()"
                    f" FROM generate_series(1, {args.inbound}) i", db=db)
        ndjson = sb.path("events.ndjson")
        with open(ndjson, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in events)
        rows = sb.path("events.copy")
        with open(rows, "w") as f:
            f.write(copy_rows(events))
        os.chmod(sb.root, 0o755)
        # warm up both paths once
        run_copy(pg, rows, len(events))
        if base:
            run_statusd(pg, base, ndjson, len(events), db="baseline")
        copies, ingests, bases = [], [], []
        # and the CPU all of PostgreSQL used per row COPYed and per event statusd stored:
        # what storing costs, whatever else the machine is doing
        cols = ["round", "COPY rows/s", "statusd events/s", "ratio",
                "PostgreSQL CPU µs/row, COPY", "µs/event, statusd", "ratio"]
        if base:
            cols += ["baseline events/s", "ratio", "µs/event, baseline", "ratio"]
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        n = len(events)
        for r in range(args.rounds):
            t0 = pg_cpu(pg)
            c = run_copy(pg, rows, n)
            t1 = pg_cpu(pg)
            s = run_statusd(pg, sd, ndjson, n)
            t2 = pg_cpu(pg)
            copies.append(c)
            ingests.append(s)
            row = [r + 1, f"{c:,.0f}", f"{s:,.0f}", f"{s / c:.2f}", f"{1e6 * (t1 - t0) / n:.1f}",
                   f"{1e6 * (t2 - t1) / n:.1f}", f"{(t2 - t1) / (t1 - t0):.1f}"]
            if base:
                b = run_statusd(pg, base, ndjson, n, db="baseline")
                t3 = pg_cpu(pg)
                bases.append(b)
                row += [f"{b:,.0f}", f"{b / c:.2f}", f"{1e6 * (t3 - t2) / n:.1f}",
                        f"{(t3 - t2) / (t1 - t0):.1f}"]
            print("| " + " | ".join(str(x) for x in row) + " |", flush=True)
        c, s = statistics.median(copies), statistics.median(ingests)
        row = ["median", f"{c:,.0f}", f"{s:,.0f}", f"{s / c:.2f}", "", "", ""]
        if base:
            b = statistics.median(bases)
            row += [f"{b:,.0f}", f"{b / c:.2f}", "", ""]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
