#!/usr/bin/env python3
"""Federation benchmark: two complete msgstatus sites on loopback (site A example.org, site B
example.net, as tests/e2e/test_federation_sites.py starts them: Postfix, Dovecot, OpenDKIM,
milter, logd, statusd over HTTPS, one PostgreSQL, one Knot DNS).

    bench/federation.py [--messages 50] [--rounds 3] [--delays 100ms,10ms,0ms]
                        [--variant LABEL:BUILD_DIR:SETTING=VALUE;...]...
                        [--reports 100] [--events-per-report 50] [--connections 4]
                        [--skip-latency] [--skip-throughput] [--no-analyze]

1. Latency. Each round alice@A sends --messages messages, each to bob@B and to carol@A.
   Once bob's delivered came back from B to alice's live feed (WebSocket over TLS), the
   messages are read one at a time, alternating: bob's IMAP STORE +FLAGS (\\Seen) at B,
   then carol's at A. The time from the tagged OK of each STORE to the read event on alice's
   WebSocket at A (for bob: source federation, details.reporter example.net) is recorded,
   the next STORE waiting for it (and --gap ms more; --settle s before the first). With
   the defaults (0) the reads follow each other as fast as they cross, some 20 a second:
   more than B's default pace per destination (federation_send_rate 10,
   federation_send_burst 20), which batches them; --gap 150 --settle 3 has each read
   come alone, after a quiet spell. carol's is the one-site baseline, measured in the same
   round, under the same load. B's federation_batch_delay is one of --delays; or, with
   --variant (repeated), each variant names a build tree for both sites' statusd (empty:
   this one) and settings of B's statusd (e.g. "before:build-base:federation_batch_delay=
   100ms" beside "after::"). The delays or variants take turns within each round (the
   statusd restarted as needed, then one message through, not measured: the first read
   after a restart costs 20 to 50 ms more), so that the machine's load, shared with other
   work, falls on all of them alike.

2. Throughput. A's database first holds --reports x --events-per-report messages from
   alice, each to bob@example.net and carol@example.org (queued events through A's event
   socket), then ANALYZE of messages and recipients (not with --no-analyze). Reports of --events-per-report read events each (bob's), built and signed with
   B's key by tests/tools/fedreport before the clock starts, are POSTed to A's endpoint
   over HTTPS on --connections keep-alive connections: events per second that A accepted
   (200, every event accepted), from the first request to the last answer. Then the same
   number of read events for carol, as the Dovecot plugin sends them, through A's event
   socket on as many connections, in batches of the same size, until the last is
   acknowledged (stored). The two alternate each round, each on its own messages, the
   first of them taking turns by round. A's
   federation_rate and federation_burst are raised so that the rate limit does not count.
   Where the time goes: the CPU seconds of A's statusd and of PostgreSQL per 1000 events,
   the DNS lookups A made (its resolver cache), and `openssl speed` for Ed25519
   verification on this machine.

Needs root (the sites' Postfix), knotd and opendkim, as the tests do, and the release build
(build/, RelWithDebInfo; MSGSTATUS_BUILD_DIR says otherwise). Prints each round and then
the medians with their range (min..max over rounds).
"""
import argparse
import http.client
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import threading
import time

import websocket

from benchutil import cpu_seconds, percentile, pg_cpu  # first: it puts the sandbox on sys.path
from msgsandbox import Sandbox, paths
from msgsandbox.statusd import now_rfc3339

ALICE, CAROL, BOB = "alice@example.org", "carol@example.org", "bob@example.net"
PATH = "/api/v1/federation/reports"
TIMEOUT = 30


def ms(setting):
    return int(setting[:-2]) if setting.endswith("ms") else int(float(setting[:-1]) * 1000)


class Feed:
    """alice's live feed at A: waits for one recipient's status of one tracking id."""

    def __init__(self, site):
        self.ws = site.statusd.stream(site.statusd.token(ALICE))
        assert json.loads(self.ws.recv())["type"] == "hello"
        self.seen = set()  # (tracking id, recipient, status) that came while waiting for other

    def wait(self, tid, rcpt, status, reporter=None, timeout=TIMEOUT):
        key = (tid, rcpt, status)
        if key in self.seen:
            self.seen.discard(key)
            return time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                doc = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            got = (doc.get("tracking_id"), doc.get("recipient"), doc.get("status"))
            if got == key:
                now = time.monotonic()
                if reporter is not None:
                    details = doc.get("details") or {}
                    assert details.get("reporter") == reporter, doc
                return now
            if got[0] is not None:
                self.seen.add(got)
        raise TimeoutError(f"no {status} of {tid} for {rcpt} on alice's feed at A in {timeout} s "
                           "(B's statusd log says whether A refused the report)")


def uid_of(imap, subject):
    _, data = imap.uid("SEARCH", None, "HEADER", "Subject", subject)
    uids = data[0].split()
    if len(uids) != 1:
        raise RuntimeError(f"{len(uids)} messages with subject {subject}")
    return uids[0]


def latency_round(a, b, feed, tag, n, settle=0.0, gap=0.0):
    """n messages alice -> bob, carol; ([bob's ms], [carol's ms]). settle: seconds to wait
    before the reads; gap: seconds between the end of one pair of reads and the next."""
    tids = []
    for i in range(n):
        _, tid = a.send(ALICE, [BOB, CAROL], subject=f"{tag}-{i:05d}.")
        tids.append(tid)
    lost = []
    for tid in tids:  # B delivered, and A knows it: the next report carries only the read
        try:
            feed.wait(tid, BOB, "delivered", reporter="example.net")
            feed.wait(tid, CAROL, "delivered")
        except TimeoutError as e:
            print(f"  not measured: {e}", flush=True)
            lost.append(tid)
    ib, ia = b.dovecot.imap(BOB), a.dovecot.imap(CAROL)
    fed, local, wall = [], [], {}
    try:
        ib.select("INBOX")
        ia.select("INBOX")
        time.sleep(settle)
        for i, tid in enumerate(tids):
            if tid in lost:
                continue
            if i > 0:
                time.sleep(gap)
            for imap, rcpt, out, reporter in ((ib, BOB, fed, "example.net"),
                                              (ia, CAROL, local, None)):
                uid = uid_of(imap, f"{tag}-{i:05d}.")
                typ, _ = imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")
                assert typ == "OK"
                done, done_wall = time.monotonic(), time.time()
                out.append((feed.wait(tid, rcpt, "read", reporter=reporter) - done) * 1000)
                if rcpt == BOB:
                    wall[tid] = (done_wall, done_wall + out[-1] / 1000)
    finally:
        ib.logout()
        ia.logout()
    return fed, local, stages(a, b, wall)


def stages(a, b, wall):
    """Where bob's reads spent their time, ms each (medians): STORE OK -> B's transaction
    that stores the read (received_at, now() of that transaction); -> A's transaction that
    stores the reported read; -> alice's WebSocket. One clock: both sites are on this
    machine."""
    ids = ",".join(f"'{t}'" for t in wall)
    at_b = dict(b.pg.psql("SELECT i.origin_tracking_id, extract(epoch FROM e.received_at) "
                          "FROM events e JOIN inbound i ON i.tracking_id = e.tracking_id "
                          f"WHERE e.type = 7 AND i.origin_tracking_id IN ({ids})"))
    at_a = dict(a.pg.psql("SELECT m.tracking_id, extract(epoch FROM e.received_at) FROM events e "
                          "JOIN messages m ON m.id = e.message WHERE e.type = 7 AND "
                          f"e.source = 'federation' AND m.tracking_id IN ({ids})"))
    out = ([], [], [])
    for tid, (store, ws) in wall.items():
        if tid in at_b and tid in at_a:
            tb, ta = float(at_b[tid]), float(at_a[tid])
            out[0].append((tb - store) * 1000)
            out[1].append((ta - tb) * 1000)
            out[2].append((ws - ta) * 1000)
    return [statistics.median(x) if x else float("nan") for x in out]


class Variant:
    """A build tree for both sites' statusd ("": this one) and settings of B's statusd."""

    def __init__(self, label, build="", settings=None):
        self.label, self.settings = label, dict(settings or {})
        self.build = os.path.abspath(build) if build else ""

    @classmethod
    def parse(cls, spec):
        label, build, rest = (spec.split(":", 2) + ["", ""])[:3]
        settings = dict(kv.split("=", 1) for kv in rest.split(";") if kv.strip())
        return cls(label, build, settings)


def use_variant(a, b, v, state):
    """Restart what must change for variant v: both statusd for another build, B's for
    other settings. state: what runs now (build, B's settings), and B's first settings.
    True if a statusd was restarted."""
    build = v.build or state["ours"]
    settings = dict(state["b_base"], **v.settings)
    restart_a = build != state.get("build")
    restart_b = restart_a or settings != b.statusd.settings
    if not (restart_a or restart_b):
        return False
    ours, paths.build = paths.build, build
    try:
        if restart_a:
            a.statusd.stop()
            a.statusd.start()
        if restart_b:
            b.statusd.stop()
            b.statusd.settings.clear()
            b.statusd.settings.update(settings)
            b.statusd.start()
    finally:
        paths.build = ours
    state["build"] = build
    return True


def queue_messages(a, tids):
    """A sent each tid to bob and carol (the milter's queued events)."""
    c = a.statusd.client()
    try:
        for i in range(0, len(tids), 500):
            evs = [{"v": 1, "id": f"{t}q{r[0]}", "type": "queued", "time": now_rfc3339(-60000),
                    "source": "milter", "tracking_id": t, "recipient": r, "sender": ALICE,
                    "sasl_user": ALICE} for t in tids[i:i + 500] for r in (BOB, CAROL)]
            c.send(evs)
            replies = c.replies(len(evs))
            assert all("ack" in r for r in replies), [r for r in replies if "ack" not in r][:3]
    finally:
        c.close()


def build_reports(a, b, workdir, tids, k):
    """Signed reports of k read events each (bob's): [(body, headers, events)]."""
    keydir = b.statusd.settings["federation_key_dir"]
    keyfile = os.path.join(keydir, "k1._msgstatus-key.example.net.pem")
    now = int(time.time() * 1000)
    out = []
    for j in range(0, len(tids), k):
        body_file = os.path.join(workdir, f"r{j}.cbor")
        args = [paths.binary("tests/fedreport"), "-k", keyfile,
                "-i", "k1._msgstatus-key.example.net", "-u", a.endpoint, "-d", "example.net",
                "-o", body_file]
        evs = [f"t|{t}|2|{t}-fr|{BOB}|{now - 1000}" for t in tids[j:j + k]]
        args += evs
        res = subprocess.run(args, capture_output=True, text=True, check=True)
        headers = dict(line.split(": ", 1) for line in res.stdout.splitlines())
        with open(body_file, "rb") as f:
            out.append((f.read(), headers, len(evs)))
    return out


def run_parallel(conns, work):
    """Run work(i) on conns threads; the seconds from start to the last one's end."""
    errors = []

    def wrap(i):
        try:
            work(i)
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - t0


def post_reports(a, reports, conns):
    ctx = ssl.create_default_context(cafile=a.ca_file)
    port = a.statusd.http_port

    def work(i):
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=TIMEOUT)
        try:
            for body, headers, want in reports[i::conns]:
                c.request("POST", PATH, body=body, headers=headers)
                resp = c.getresponse()
                doc = json.loads(resp.read())
                if resp.status != 200 or doc.get("accepted") != want:
                    raise RuntimeError(f"report answered {resp.status} {doc}")
        finally:
            c.close()
    return run_parallel(conns, work)


def ingest_local(a, tids, k, conns):
    now = now_rfc3339(-1000)
    batches = [[{"v": 1, "id": f"{t}-lr", "type": "read", "time": now, "source": "imap",
                 "tracking_id": t, "recipient": CAROL} for t in tids[j:j + k]]
               for j in range(0, len(tids), k)]

    def work(i):
        c = a.statusd.client()
        try:
            for evs in batches[i::conns]:
                c.send(evs)
                replies = c.replies(len(evs))
                if not all("ack" in r for r in replies):
                    raise RuntimeError(f"local read refused: {replies[:2]}")
        finally:
            c.close()
    return run_parallel(conns, work)


def throughput_round(a, b, workdir, tag, args, local_first=False):
    n = args.reports * args.events_per_report
    fed_tids = [f"{tag}f{i}" for i in range(n)]
    loc_tids = [f"{tag}l{i}" for i in range(n)]
    queue_messages(a, fed_tids + loc_tids)
    # as autovacuum would by now (--no-analyze: as before it does)
    if not args.no_analyze:
        a.pg.psql("ANALYZE messages; ANALYZE recipients")
    reports = build_reports(a, b, workdir, fed_tids, args.events_per_report)
    sd_pid = a.statusd.child.popen.pid
    out = {}
    # which goes first alternates by round: the part right after the new messages was seen
    # to pay for PostgreSQL planning the ingest's statements again, whichever it was
    for kind in (("local", "fed") if local_first else ("fed", "local")):
        cpu0, pg0 = cpu_seconds(sd_pid), pg_cpu(a.pg.server if hasattr(a.pg, "server")
                                                else a.pg)
        if kind == "fed":
            secs = post_reports(a, reports, args.connections)
        else:
            secs = ingest_local(a, loc_tids, args.events_per_report, args.connections)
        cpu1, pg1 = cpu_seconds(sd_pid), pg_cpu(a.pg.server if hasattr(a.pg, "server")
                                                else a.pg)
        out[kind] = (n / secs, (cpu1 - cpu0) * 1000 / n, (pg1 - pg0) * 1000 / n)
    return out


def spread(values):
    return f"{statistics.median(values):.1f} ({min(values):.1f}..{max(values):.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=50, help="per round and delay")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--delays", default="100ms,10ms,0ms",
                    help="B's federation_batch_delay values, comma-separated")
    ap.add_argument("--variant", action="append", default=[],
                    metavar="LABEL:BUILD_DIR:SETTING=VALUE;...",
                    help="instead of --delays: a build tree for both sites' statusd (empty: "
                    "this one) and settings of B's statusd; repeat for each")
    ap.add_argument("--gap", type=float, default=0, metavar="MS",
                    help="pause before each pair of reads but the first (default 0: one "
                    "after the other, as fast as they go)")
    ap.add_argument("--settle", type=float, default=0, metavar="S",
                    help="pause between the delivered events and the first read")
    ap.add_argument("--reports", type=int, default=100)
    ap.add_argument("--events-per-report", type=int, default=50)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--no-analyze", action="store_true",
                    help="no ANALYZE after the throughput part's new messages")
    args = ap.parse_args()
    if args.variant:
        variants = [Variant.parse(v) for v in args.variant]
    else:
        variants = [Variant(d, "", {"federation_batch_delay": d})
                    for d in args.delays.split(",")]
    delays = [v.label for v in variants]
    by_label = {v.label: v for v in variants}

    speed = subprocess.run(["openssl", "speed", "-seconds", "1", "ed25519"],
                           capture_output=True, text=True).stdout
    m = re.search(r"Ed25519\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", speed)
    if m:
        print(f"openssl speed ed25519: {float(m.group(1)):.0f} sign/s, "
              f"{float(m.group(2)):.0f} verify/s (one core)")
    print(f"load average at start: {os.getloadavg()}", flush=True)

    with Sandbox(name="bench-federation") as sb:
        t0 = time.monotonic()
        raise_limits = {"federation_rate": "100000", "federation_burst": "100000",
                        "federation_client_rate": "100000", "federation_client_burst": "100000"}
        a = sb.msgstatus_site("example.org", {ALICE: "alice-secret", CAROL: "carol-secret"},
                              statusd=raise_limits)
        b = sb.msgstatus_site("example.net", {BOB: "bob-secret"}, routes={"example.org": a},
                              statusd={"federation_ca_file": sb.ca().cert})
        a.route("example.net", b)
        state = {"ours": paths.build, "build": paths.build, "b_base": dict(b.statusd.settings)}
        print(f"two sites started in {time.monotonic() - t0:.1f} s", flush=True)
        workdir = sb.mkdir("bench-reports")
        lat = {d: ([], []) for d in delays}  # delay: (fed ms, local ms), all rounds
        lat_rounds = {d: [] for d in delays}  # delay: [(fed p50, p99, local p50, p99)]
        lat_stages = {d: [] for d in delays}  # delay: [(to B, B to A, A to WebSocket)]
        thr = []
        for r in range(args.rounds):
            if not args.skip_latency:
                for d in (delays if r % 2 == 0 else delays[::-1]):
                    restarted = use_variant(a, b, by_label[d], state)
                    # a new feed each time: one that did not read during the throughput
                    # part is a slow subscriber statusd has let go
                    feed = Feed(a)
                    if restarted:
                        # one message, not measured: the first read after a restart
                        # costs 20 to 50 ms more (new database sessions plan it)
                        latency_round(a, b, feed, f"fb-r{r}-v{delays.index(d)}-warm", 1)
                    tag = f"fb-r{r}-v{delays.index(d)}"
                    fed, local, st = latency_round(a, b, feed, tag, args.messages,
                                                   args.settle, args.gap / 1000)
                    lat_stages[d].append(st)
                    feed.ws.close()
                    lat[d][0].extend(fed)
                    lat[d][1].extend(local)
                    row = (statistics.median(fed), percentile(fed, 99),
                           statistics.median(local), percentile(local, 99))
                    lat_rounds[d].append(row)
                    print(f"round {r} {d}: B STORE -> A WebSocket p50 {row[0]:.1f} "
                          f"p99 {row[1]:.1f} max {max(fed):.1f} ms; local at A p50 "
                          f"{row[2]:.1f} p99 {row[3]:.1f} max {max(local):.1f} ms; "
                          f"stages (p50) STORE->B stored {st[0]:.1f}, B->A stored {st[1]:.1f}, "
                          f"A->WebSocket {st[2]:.1f} ms; "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
            if not args.skip_throughput:
                t = throughput_round(a, b, workdir, f"tp{r}x", args, local_first=r % 2 == 1)
                thr.append(t)
                print(f"round {r} throughput: federation {t['fed'][0]:.0f} events/s "
                      f"({t['fed'][0] / args.events_per_report:.1f} reports/s), statusd "
                      f"{t['fed'][1]:.2f} pg {t['fed'][2]:.2f} CPU s/1000 events; local "
                      f"{t['local'][0]:.0f} events/s, statusd {t['local'][1]:.2f} pg "
                      f"{t['local'][2]:.2f}; ratio {t['fed'][0] / t['local'][0]:.2f}; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        print()
        if not args.skip_latency:
            print(f"latency, {args.rounds} rounds x {args.messages} messages per delay, ms: "
                  "median of the rounds (min..max)")
            print("| variant (B's federation_batch_delay) | federation p50 | p99 | max (all) | "
                  "local p50 | p99 | p99 ratio |")
            print("|---|---|---|---|---|---|---|")
            for d in delays:
                rows = lat_rounds[d]
                ratio = [x[1] / x[3] for x in rows]
                print(f"| {d} | {spread([x[0] for x in rows])} | {spread([x[1] for x in rows])}"
                      f" | {max(lat[d][0]):.1f} | {spread([x[2] for x in rows])} | "
                      f"{spread([x[3] for x in rows])} | {spread(ratio)} |")
            print("\nwhere bob's reads spent their time, ms, p50 per round: median (min..max)")
            print("| variant | STORE OK -> stored at B | B -> stored at A | "
                  "A -> alice's WebSocket |")
            print("|---|---|---|---|")
            for d in delays:
                rows = lat_stages[d]
                print(f"| {d} | " + " | ".join(spread([x[i] for x in rows]) for i in range(3))
                      + " |")
        if thr:
            print(f"\nthroughput, {args.rounds} rounds x {args.reports} reports x "
                  f"{args.events_per_report} events, {args.connections} connections: "
                  "median (min..max)")
            print("| | events/s | statusd CPU s / 1000 events | PostgreSQL CPU s / 1000 |")
            print("|---|---|---|---|")
            for kind, label in (("fed", "signed reports over HTTPS"),
                                ("local", "event socket (local)")):
                print(f"| {label} | {spread([t[kind][0] for t in thr])} | "
                      f"{spread([t[kind][1] for t in thr])} | "
                      f"{spread([t[kind][2] for t in thr])} |")
            print(f"ratio federation/local: {spread([t['fed'][0] / t['local'][0] for t in thr])}")
            _, text = a.statusd.http("/metrics")
            print("A's federation and DNS metrics:")
            for line in text.splitlines():
                if re.match(r"msgstatus_(federation|dns|resolver)", line):
                    print("  " + line)
        print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    sys.exit(main())
