#!/usr/bin/env python3
"""Performance smoke test (ctest perf_smoke, in scripts/test and so in CI): the ingest,
catch-up and milter benchmarks, small, each side by side with its baseline, and a failure
only on an order-of-magnitude drop.

    bench/smoke.py [--events 40000] [--messages 400] [--rounds 2]

No absolute time bounds: every figure is a ratio to a baseline measured on the same
machine in the same run, round by round, and the check takes each benchmark's best round,
so that a busy machine (CI, other builds) does not fail it; only a change that makes the
work itself many times dearer does. The floors (FLOORS) lie far below today's ratios
(docs/performance.md, "Smoke test"):

  ingest     statusd's events/s against psql's COPY of the same rows (bench/ingest.py)
  catch-up   an SSE client from offset 0 against a COPY of the same rows out of the log
             (bench/catchup.py), over the events the ingest stored
  milter     Postfix's msg/s with msgstatus-milter (statusd and PostgreSQL up) against
             Postfix without a milter (bench/milter.py); needs root, skipped otherwise

A sanitizer build (scripts/test builds with ASan+UBSan) makes statusd's own work several
times dearer, so its floors are lower: they still catch the ingest regression of 2026-12
(0.02 of COPY). Prints the ratios (and writes them to --report's file, which scripts/test
prints at the end, as ctest shows no output of a test that passed); exits 1 if one is out
of bounds.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import benchutil  # noqa: F401  (first: it puts the sandbox on sys.path)
from benchutil import pg_cpu

import catchup
import ingest
import milter
from msgsandbox import Sandbox, paths

# The bounds, per build (optimized, sanitizer): a ratio's best round must reach a floor
# (higher is better), PostgreSQL's CPU ratio's best round stay under a ceiling.
FLOORS = {"ingest": (0.08, 0.06), "catch-up": (0.1, 0.05), "milter": (0.5, 0.4)}
CEILINGS = {"ingest PostgreSQL CPU": (10, 10)}


def sanitized():
    """Whether the programs under test are built with a sanitizer (scripts/test's build)."""
    try:
        with open(os.path.join(paths.build, "CMakeCache.txt")) as f:
            cache = f.read()
    except OSError:
        return False
    return any(f"{opt}:BOOL=ON" in cache for opt in ("MSGSTATUS_SANITIZE", "MSGSTATUS_TSAN"))


def bench_ingest(sb, pg, sd, events, rounds):
    rows = sb.path("events.copy")
    with open(rows, "w") as f:
        f.write(ingest.copy_rows(events))
    ndjson = sb.path("events.ndjson")
    with open(ndjson, "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)
    os.chmod(sb.root, 0o755)
    ingest.run_copy(pg, rows, len(events))  # warm up both paths
    ingest.run_statusd(pg, sd, ndjson, len(events))
    out, cpu = [], []
    for r in range(rounds):
        t0 = pg_cpu(pg)
        c = ingest.run_copy(pg, rows, len(events))
        t1 = pg_cpu(pg)
        s = ingest.run_statusd(pg, sd, ndjson, len(events))  # last: catch-up reads these
        t2 = pg_cpu(pg)
        out.append((f"{s:,.0f} events/s", f"COPY {c:,.0f} rows/s", s / c))
        # PostgreSQL's CPU per event stored against per row COPYed
        cpu.append((f"{1e6 * (t2 - t1) / len(events):.1f} µs/event",
                    f"COPY {1e6 * (t1 - t0) / len(events):.1f} µs/row", (t2 - t1) / (t1 - t0)))
    return out, cpu


def copy_out(pg):
    """Seconds psql's COPY of the log takes, by psql's \\timing: with 40,000 rows, starting
    psql would take longer than the COPY."""
    res = subprocess.run(["psql", "-X", "-q", "-h", pg.dir, "-p", str(pg.port), "-U",
                          pg.superuser, "-d", pg.dbname, "-c", "\\timing on", "-c",
                          "\\copy (SELECT log_offset, event_time, type, recipient, tracking_id, "
                          "message_id, details, event_id FROM events WHERE log_offset IS NOT "
                          "NULL ORDER BY log_offset) TO '/dev/null'"],
                         capture_output=True, text=True, check=True)
    return float(res.stdout.split("Time:")[1].split()[0]) / 1000


def bench_catchup(pg, sd, rounds):
    pg.psql("VACUUM ANALYZE")
    _, health = sd.http("/healthz")
    head, epoch = health["log"]["head"], health["log"]["epoch"]
    token = sd.token(catchup.USER, ttl=600)
    keep = []
    out = []
    try:
        catchup.sse_catchup(sd, token, epoch, head, keep)  # warm up
        copy_out(pg)
        for r in range(rounds):
            secs, records = catchup.sse_catchup(sd, token, epoch, head, keep)
            if records < head:
                raise RuntimeError(f"catch-up: only {records} of {head} records arrived")
            c = copy_out(pg)
            out.append((f"{head / secs:,.0f} events/s", f"COPY {head / c:,.0f} rows/s",
                        c / secs))
    finally:
        for s in keep:
            s.close()
    return out


def bench_milter(sb, sd, messages, rounds):
    pf, sink, configure, _ = milter.mail_system(sb, sd)
    for name in ("none", "milter"):  # warm up both paths
        configure(name)
        milter.run_once(pf, sink, 100, 10, 4096, "warm")
    out = []
    for r in range(rounds):
        rate = {}
        for name in ("none", "milter") if r % 2 == 0 else ("milter", "none"):
            configure(name)
            rate[name] = milter.run_once(pf, sink, messages, 20, 4096, f"r{r}{name}")
        out.append((f"{rate['milter']:,.0f} msg/s", f"none {rate['none']:,.0f} msg/s",
                    rate["milter"] / rate["none"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=40000)
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--milter-rounds", type=int, default=3)
    ap.add_argument("--report", help="also write the ratios and verdicts to this file")
    args = ap.parse_args()

    if os.environ.get("MSGSTATUS_E2E_SKIP"):
        sys.exit(77)
    build = 1 if sanitized() else 0
    results = {}
    start = time.monotonic()
    with Sandbox(name="perf-smoke") as sb:
        pg = sb.postgres(fsync=True, settings={"shared_buffers": "256MB",
                                               "max_wal_size": "2GB"})
        sd = sb.statusd(pg, settings={"ingest_batch_max": "2000"})
        results["ingest"], results["ingest PostgreSQL CPU"] = bench_ingest(
            sb, pg, sd, ingest.make_events(args.events), args.rounds)
        results["catch-up"] = bench_catchup(pg, sd, args.rounds + 1)
        if os.geteuid() == 0 and os.path.exists(milter.SMTP_SOURCE):
            results["milter"] = bench_milter(sb, sd, args.messages, args.milter_rounds)
        else:
            print("milter: skipped (needs root and Postfix's smtp-source)")

    failed, out = [], []
    out.append(f"Performance smoke test: {'sanitizer' if build else 'optimized'} build "
               f"{paths.build}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
               f"{time.monotonic() - start:.0f} s\n")
    out.append("| benchmark | round | figure | baseline | ratio |")
    out.append("|---|---|---|---|---|")
    for name, rounds in results.items():
        for r, (fig, base, ratio) in enumerate(rounds):
            out.append(f"| {name} | {r + 1} | {fig} | {base} | {ratio:.3f} |")
    out.append("")
    for name, rounds in results.items():
        ratios = [r[2] for r in rounds]
        if name in CEILINGS:
            best, bound = min(ratios), CEILINGS[name][build]
            ok, rel = best <= bound, "ceiling"
        else:
            best, bound = max(ratios), FLOORS[name][build]
            ok, rel = best >= bound, "floor"
        out.append(f"perf {name}: best ratio {best:.3f}, {rel} {bound} -> "
                   f"{'ok' if ok else 'FAIL'}")
        if not ok:
            failed.append(name)
    if failed:
        out.append(f"\nperformance smoke test failed: {', '.join(failed)} "
                   "(see docs/performance.md, \"Smoke test\")")
    print("\n".join(out))
    if args.report:
        with open(args.report, "w") as f:
            f.write("\n".join(out) + "\n")
    if failed:
        sys.exit(1)

if __name__ == "__main__":
    main()
