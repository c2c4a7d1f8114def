#!/usr/bin/env python3
"""Fan-out: one event reaching many idle WebSocket subscribers, statusd against nchan.

    bench/fanout.py [--conns 10000] [--messages 20] [--interval 0.25] [--rounds 1]
                    [--idle SECONDS] [--only statusd|nchan] [--feed-threads 1,2]
                    [--baseline BUILD_DIR] [--loops] [--verbose]

For each server, bench/fanout_client (build/bench/fanout_client, one epoll thread) opens
--conns WebSocket connections to it from 127.0.0.1 and waits; then --messages events are
published one every --interval seconds and the client records when each connection
received each one. Per server it reports:

  publish         how long a publish takes to be acknowledged, median: for statusd the
                  event's durable commit, for nchan the HTTP POST;
  p50, p99, max   latency from just before the publish to the arrival at a subscriber,
                  over every (message, subscriber) pair;
  rate            subscribers reached per second within one fan-out (subscribers / time
                  from publish to the last arrival), median over the messages;
  first           from just before the publish to the first arrival, median: what passes
                  before the fan-out starts (for statusd the event's transaction and
                  commit, whose PostgreSQL part "db ms" gives: msgstatus_db_batch_seconds,
                  read between the publishes; for nchan the POST);
  fan-out rate    subscribers / time from the first arrival to the last, median over the
                  messages: the fan-out alone, without what comes before it;
  connect         (JSON, and --verbose) seconds from starting the client until every
                  connection is open and subscribed;
  KiB/conn        the server's resident memory with all connections idle, less what it
                  used before they connected, per connection;
  CPU/delivery    the CPU time the server (all its processes) and the client used from the
                  first publish to the last arrival, per (message, subscriber) delivered:
                  what a fan-out costs, whatever else runs on the machine;
  idle CPU        with --idle S: the server's CPU use (% of one CPU) over S seconds with
                  every connection idle, before the first publish (keep-alive pings:
                  statusd pings every 30 s, nchan's websocket subscriber by default not).

With --rounds N every server is measured N times, in an order that rotates, each time
freshly started; the medians and statusd's ratios to the others close the report, each
round's ratios (the servers of a round ran within a few minutes of each other) and the
ratios of the medians.

Servers:
  statusd         a private PostgreSQL (fsync on) and statusd; every subscriber is alice
                  following /api/v1/messages/stream; an event is published by sending it
                  to statusd's event socket, so the latency includes the durable commit
                  in PostgreSQL before the fan-out; once for each --feed-threads value
                  (statusd.conf's feed_threads; default: statusd's own default);
  baseline        with --baseline: the statusd of another build tree (e.g. an older
                  commit's), with its own defaults, in the same rounds;
  nchan N         Debian's nginx-light with libnginx-mod-nchan (bench-only packages:
                  apt-get install nginx-light libnginx-mod-nchan), N worker processes
                  (1, and 2 = one per CPU here), a websocket subscriber location and an
                  HTTP POST publisher location on one in-memory channel;
  lws alone N     with --loops: bench/fanout_loops on 1 and on 2 event loops, each with
                  its own lws context and SO_REUSEPORT socket, sending each line it is
                  given to every connection: what the event loops of the design in
                  docs/performance.md cost and gain, without statusd's feed or database.

Everything runs on the same machine; the client competes for the same CPUs as the server.
"""
import argparse
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request


from benchutil import percentile  # first: it puts the sandbox on sys.path
from msgsandbox import Sandbox, paths
from msgsandbox.core import free_port, wait_for
from msgsandbox.statusd import now_rfc3339

ALICE = "alice@example.org"
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid):
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.split("/")[2]))
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return out



def cpu_s(pids):
    """CPU seconds (user and system) the processes have used."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def measure(args, port, path, header, pids, publish, subscribed=None, db_ms=None):
    """Connect the subscribers, publish, collect; returns a result dict. subscribed(n),
    if given, waits until the server has subscribed n connections (statusd checks each
    one's token after the upgrade, so a connection can be open before it follows).
    db_ms(), if given, returns the database's time for the last publish in ms; it is
    called half-way to the next publish, when the fan-out is over."""
    before = rss_kib(pids())
    argv = [paths.binary("bench/fanout_client"), "-p", str(port), "-u", path,
            "-n", str(args.conns), "-m", str(args.messages), "-k", "fanout-",
            "-t", str(60 + int(args.idle))]
    if header:
        argv += ["-H", header]
    connecting = time.monotonic()
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        ready = client.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"fanout_client: {ready}")
        opened = int(ready[1].split("=")[1])
        started = time.monotonic()
        if subscribed:
            subscribed(opened)
        connect_s = time.monotonic() - connecting
        if args.verbose:
            print(f"  {opened} connected and subscribed in {connect_s:.1f} s, "
                  f"{time.monotonic() - started:.1f} s of it after the last upgrade",
                  file=sys.stderr)
        time.sleep(2)  # let the server settle with every connection idle
        after = rss_kib(pids())
        idle_cpu = cpu_s(pids())
        time.sleep(args.idle)
        idle_cpu = (cpu_s(pids()) - idle_cpu) * 100 / args.idle if args.idle else 0.0
        cpu0 = cpu_s(pids())
        t0, acked, db = [], [], []
        for j in range(args.messages):
            t0.append(time.time_ns())
            publish(j)
            acked.append((time.time_ns() - t0[-1]) / 1e6)
            if db_ms:
                time.sleep(args.interval / 2)
                db.append(db_ms())
                time.sleep(args.interval / 2)
            else:
                time.sleep(args.interval)
        out, _ = client.communicate(timeout=180)
        server_cpu = cpu_s(pids()) - cpu0
    finally:
        if client.poll() is None:
            client.kill()
    lat, rates, firsts, spreads, missing, client_cpu = [], [], [], [], 0, 0.0
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "DONE":
            client_cpu = float(parts[2].split("=")[1])
        if not parts or parts[0] != "MSG":
            continue
        j, count = int(parts[1]), int(parts[2])
        times = [int(t) for t in parts[3:]]
        missing += opened - count
        if not times:
            continue
        lat += [(t - t0[j]) / 1e6 for t in times]
        rates.append(count / ((max(times) - t0[j]) / 1e9))
        firsts.append((min(times) - t0[j]) / 1e6)
        if max(times) > min(times):
            spreads.append(count / ((max(times) - min(times)) / 1e9))
        if args.verbose:
            ms = sorted((t - t0[j]) / 1e6 for t in times)
            print(f"  event {j}: {count} received, first {ms[0]:.1f} ms, "
                  f"median {ms[len(ms) // 2]:.1f} ms, last {ms[-1]:.1f} ms", file=sys.stderr)
    return {"opened": opened, "missing": missing, "connect_s": connect_s,
            "publish": statistics.median(acked),
            "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat),
            "rate": statistics.median(rates),
            "first": statistics.median(firsts),
            "fanout_rate": statistics.median(spreads) if spreads else 0.0,
            "db": statistics.median(db) if db else 0.0,
            "kib_per_conn": (after - before) / max(opened, 1),
            "idle_cpu": idle_cpu,
            "server_us": server_cpu * 1e6 / max(len(lat), 1),
            "client_us": client_cpu * 1e6 / max(len(lat), 1)}


def run_statusd(sb, pg, args, rnd, threads=None, build=None):
    # every subscriber is alice: let her have them all (feed_max_per_user)
    settings = {"feed_max_per_user": str(max(64, args.conns))}
    if threads is not None:
        settings["feed_threads"] = str(threads)
    ours = paths.build
    if build:
        paths.build = build  # only for starting it: the client is ours
    try:
        sd = sb.statusd(pg, name=f"statusd-fanout{rnd}-{threads}-{'base' if build else 'ours'}",
                        settings=settings)
    finally:
        paths.build = ours
    # a message of its own for each statusd of each round: with one message for all of a
    # round's servers (they share the database), each later one stored its events beside
    # the earlier ones' and did different work in the database
    tid = f"fanout{os.getpid()}r{rnd}t{threads or 0}{'b' if build else 'o'}"
    # one recipient per published event: only the addresses the sender used count
    sd.send_events([{"v": 1, "id": f"{tid}q{j}", "type": "queued", "time": now_rfc3339(0),
                     "source": "bench", "tracking_id": tid,
                     "recipient": f"fanout-{j}@example.net",
                     "sender": ALICE, "sasl_user": ALICE} for j in range(args.messages)])
    token = urllib.parse.quote(sd.token(ALICE, ttl=3600))
    ec = sd.client()

    def publish(j):
        ec.send([{"v": 1, "id": f"{tid}d{j}", "type": "delivered", "time": now_rfc3339(0),
                  "source": "bench", "tracking_id": tid,
                  "recipient": f"fanout-{j}@example.net"}])
        ec.replies(1)

    def subscribed(n):
        def live():
            for line in sd.http("/metrics")[1].splitlines():
                if line.startswith("msgstatus_feed_live_subscribers "):
                    return float(line.split()[1]) >= n
            return False
        wait_for("statusd's subscriptions", live, timeout=120, interval=0.2)

    def db_ms():
        for line in sd.http("/metrics")[1].splitlines():
            if line.startswith("msgstatus_db_batch_seconds "):
                return float(line.split()[1]) * 1000
        return 0.0

    try:
        return measure(args, sd.http_port, f"/api/v1/messages/stream?access_token={token}",
                       None, lambda: [sd.child.pid], publish, subscribed, db_ms)
    finally:
        ec.close()
        sd.close()


NGINX_CONF = """\
# bench/fanout.py: nchan doing the same fan-out as statusd
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
load_module {module};
events {{ worker_connections {nofile}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /pub {{ nchan_publisher; nchan_channel_id fanout; }}
        location = /sub {{ nchan_subscriber websocket; nchan_channel_id fanout; }}
    }}
}}
"""


def run_nchan(sb, args, workers, rnd):
    d = sb.mkdir(f"nchan{workers}-{rnd}")
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(workers=workers, nofile=args.conns * 2 + 1024, dir=d,
                                  module=NCHAN_MODULE, port=port))
    child = sb.spawn(f"nginx{workers}-{rnd}", [shutil.which("nginx") or "/usr/sbin/nginx",
                                          "-c", conf, "-p", d])

    def up():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/pub", timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True
    wait_for("nginx", up, timeout=10)

    def publish(j):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/pub", method="POST",
                                     data=f"fanout-{j}".encode())
        urllib.request.urlopen(req, timeout=10).read()

    try:
        return measure(args, port, "/sub", None,
                       lambda: [child.pid] + children(child.pid), publish)
    finally:
        child.popen.terminate()
        child.popen.wait(timeout=10)


def run_loops(args, loops, rnd):
    """bench/fanout_loops: lws alone on `loops` event loops (no feed, no database)."""
    port = free_port()
    child = subprocess.Popen([paths.binary("bench/fanout_loops"), "-p", str(port),
                              "-n", str(loops)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "READY":
            raise RuntimeError("fanout_loops did not start")
        pad = "x" * 300  # about the size of statusd's event document

        def publish(j):
            child.stdin.write(f'{{"type":"event","offset":{j},"recipient":"fanout-{j}",'
                              f'"pad":"{pad}"}}\n')
            child.stdin.flush()

        return measure(args, port, "/", None, lambda: [child.pid], publish)
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--idle", type=float, default=0,
                    help="measure the server's CPU use with all connections idle this long")
    ap.add_argument("--only", choices=["statusd", "nchan"])
    ap.add_argument("--feed-threads", default="",
                    help="statusd once per value, comma-separated (feed_threads)")
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="also the statusd of this build tree, in the same rounds")
    ap.add_argument("--loops", action="store_true",
                    help="also bench/fanout_loops, lws alone on 1 and on 2 event loops")
    ap.add_argument("--verbose", action="store_true", help="each event's arrivals, on stderr")
    args = ap.parse_args()

    # statusd (spawned by the sandbox) and the client inherit this limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns * 2 + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    servers = []
    statusds = {}  # name: (feed_threads or None, build dir or None)
    if args.only in (None, "statusd"):
        for t in [int(x) for x in args.feed_threads.split(",") if x] or [None]:
            statusds["statusd" if t is None else f"statusd, feed_threads {t}"] = (t, None)
        if args.baseline:
            statusds["statusd, baseline"] = (None, os.path.abspath(args.baseline))
        servers += list(statusds)
    if args.only in (None, "nchan"):
        if not os.path.exists(NCHAN_MODULE):
            sys.exit("nchan is not installed: apt-get install nginx-light libnginx-mod-nchan")
        servers += ["nchan, 1 worker", "nchan, 2 workers"]
    if args.loops:
        servers += ["lws alone, 1 loop", "lws alone, 2 loops"]
    results = []  # (round, server, result)
    with Sandbox(name="bench-fanout") as sb:
        pg = sb.postgres(fsync=True) if statusds else None
        for rnd in range(1, args.rounds + 1):
            k = (rnd - 1) % len(servers)
            for name in servers[k:] + servers[:k]:
                if args.verbose:
                    print(f"round {rnd}: {name}", file=sys.stderr)
                if name in statusds:
                    r = run_statusd(sb, pg, args, rnd, *statusds[name])
                elif name.startswith("lws alone"):
                    r = run_loops(args, 1 if name.endswith(" 1 loop") else 2, rnd)
                else:
                    r = run_nchan(sb, args, 1 if name.endswith(" 1 worker") else 2, rnd)
                results.append((rnd, name, r))

    print(f"{args.conns} WebSocket subscribers, {args.messages} events "
          f"{args.interval:g} s apart, {args.rounds} round{'s' if args.rounds > 1 else ''}\n")
    print("| round | server | connected | missed | publish ms | db ms | first ms | p50 ms | "
          "p99 ms | max ms | subscribers/s per fan-out | after the first arrival | "
          "KiB per idle connection | server CPU µs per delivery "
          "| client CPU µs per delivery |" + (" idle CPU % |" if args.idle else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" +
          ("---|" if args.idle else ""))

    def row(rnd, name, r):
        print(f"| {rnd} | {name} | {r['opened']:,} | {r['missing']} | {r['publish']:.1f} | "
              f"{r['db']:.1f} | {r['first']:.1f} | {r['p50']:.1f} | "
              f"{r['p99']:.1f} | {r['max']:.1f} | {r['rate']:,.0f} | {r['fanout_rate']:,.0f} | "
              f"{r['kib_per_conn']:.1f} | {r['server_us']:.1f} | {r['client_us']:.1f} |" +
              (f" {r['idle_cpu']:.1f} |" if args.idle else ""))
    for rnd, name, r in results:
        row(rnd, name, r)
    medians = {}
    for name in servers:
        rs = [r for _, n, r in results if n == name]
        medians[name] = {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        medians[name].update(opened=min(r["opened"] for r in rs),  # in every round
                             missing=sum(r["missing"] for r in rs))  # over all rounds
        if args.rounds > 1:
            row("median", name, medians[name])
    if args.rounds > 1:
        print()
        for name in servers:
            rs = [r for _, n, r in results if n == name]
            print(f"{name}: rate per round {min(r['rate'] for r in rs):,.0f} to "
                  f"{max(r['rate'] for r in rs):,.0f}, after the first arrival "
                  f"{min(r['fanout_rate'] for r in rs):,.0f} to "
                  f"{max(r['fanout_rate'] for r in rs):,.0f}, "
                  f"p99 {min(r['p99'] for r in rs):.0f} to {max(r['p99'] for r in rs):.0f} ms")
        # each round's servers ran within a minute or two of each other: their ratios
        # cancel most of the machine's swings, so give those per round too
        print()
        for ours in statusds:
            for name in [n for n in servers if n != ours]:
                pairs = [(a, b) for (ra, na, a) in results for (rb, nb, b) in results
                         if ra == rb and na == ours and nb == name]
                for key, label in (("rate", "rate"), ("fanout_rate", "after the first arrival")):
                    per = [a[key] / b[key] for a, b in pairs if b[key]]
                    if per:
                        print(f"{ours} / {name}, {label}, per round: " +
                              ", ".join(f"{x:.2f}" for x in per) +
                              f" (median {statistics.median(per):.2f})")
    others = [n for n in servers if n not in statusds]
    if statusds and len(servers) > 1:
        print()
        for ours in statusds:
            sd = medians[ours]
            for name in others + [n for n in statusds if n != ours]:
                nc = medians[name]
                print(f"{ours} / {name}: rate {sd['rate'] / nc['rate']:.2f}, "
                      "after the first arrival "
                      f"{sd['fanout_rate'] / max(nc['fanout_rate'], 1):.2f}, "
                      f"p50 {sd['p50'] / nc['p50']:.2f}, p99 {sd['p99'] / nc['p99']:.2f}, "
                      "server CPU per delivery " +
                      (f"{sd['server_us'] / nc['server_us']:.2f}" if nc["server_us"]
                       else "n/a"))
    print()
    print(json.dumps([{"round": rnd, "server": name, **r} for rnd, name, r in results]))


if __name__ == "__main__":
    main()
