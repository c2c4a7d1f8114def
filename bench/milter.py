#!/usr/bin/env python3
"""Milter benchmark: what msgstatus-milter costs Postfix's throughput.

    bench/milter.py [--messages 5000] [--sessions 20] [--size 4096] [--rounds 3]
                    [--only milter,dsn] [--baseline BUILD_DIR]

One private Postfix relays everything to smtp-sink; Postfix's own smtp-source sends the
messages. Each round runs three configurations back to back (order rotated per round):

  none       no milter
  milter     msgstatus-milter tracking every message (statusd and PostgreSQL up)
  dsn        the same, and asking for DSNs for every message ({msgstatus_dsn_domains}:
             smfi_chgfrom with RET and ENVID, smfi_delrcpt and smfi_addrcpt_par with
             NOTIFY and ORCPT for its remote recipient)
  down       msgstatus-milter tracking every message, statusd stopped (events spooled)
  inbound    msgstatus-milter in front of mail it does not track (no {msgstatus_trust}):
             what mail from other sites without a Msgstatus-Id costs (its headers are
             kept until the end of headers, no DKIM check, no DNS)
  opendkim   a peer for scale: Debian's OpenDKIM verifying (it reads headers and body
             and finds no signature), the most common milter in front of Postfix
  baseline   with --baseline BUILD_DIR: "milter" with another build's msgstatus-milter and
             statusd, on a database of its own migrated from that build's source tree
             (BUILD_DIR/.., its sql/); in every round, alternated like the others

Measured: messages/s from smtp-source's start until every message has reached smtp-sink.
smtp-source does not authenticate, so the Postfix service sets {msgstatus_trust}=any to
have every message tracked (the milter's full work: header, spool, shipping).
Prints a Markdown table per round and the medians, with ratios against "none", and how
many database batches statusd made per message while it was up (msgstatus_db_batches_total),
and PostgreSQL's CPU per batch in those rounds (all of its processes, over the round).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import benchutil  # noqa: F401  (first: it puts the sandbox on sys.path)

from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for

SMTP_SOURCE = "/usr/sbin/smtp-source"
OPENDKIM = "/usr/sbin/opendkim"


def sink_count(sink):
    return len(os.listdir(sink.dump_dir))


def run_once(pf, sink, n, sessions, size, tag):
    before = sink_count(sink)
    start = time.monotonic()
    subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(n), "-l", str(size),
                    "-f", "alice@example.org", "-t", f"{tag}@remote.example",
                    f"127.0.0.1:{pf.port}"], check=True, capture_output=True)
    wait_for("every message at the sink", lambda: sink_count(sink) - before >= n,
             timeout=600, interval=0.05)
    return n / (time.monotonic() - start)


def start_opendkim(sb):
    """OpenDKIM in verify mode on a socket in the sandbox (apt-get install opendkim)."""
    d = sb.mkdir("opendkim")
    conf = os.path.join(d, "opendkim.conf")
    sock = os.path.join(d, "opendkim.sock")
    with open(conf, "w") as f:
        f.write(f"Mode v\nSocket local:{sock}\nUMask 000\nSyslog no\n"
                f"PidFile {d}/opendkim.pid\n")
    child = sb.spawn("opendkim", [OPENDKIM, "-f", "-x", conf])
    wait_for("OpenDKIM's socket", lambda: os.path.exists(sock), proc=child.popen)
    return child, "unix:" + sock


def baseline_system(sb, pg, build):
    """The statusd and msgstatus-milter of another build, on a database of their own
    migrated from that build's source tree (the parent of build)."""
    source = os.path.dirname(os.path.abspath(build))
    pg.psql("CREATE DATABASE baseline", db="postgres")
    ours, paths.build = paths.build, os.path.abspath(build)
    try:
        sd = sb.statusd(pg, name="statusd-base", settings={
            "sql_dir": os.path.join(source, "sql"),
            "database": pg.conninfo.replace(f"dbname={pg.dbname}", "dbname=baseline")})
        return sd, sb.milter(sd, name="milter-base")
    finally:
        paths.build = ours


def mail_system(sb, sd, opendkim=False, base_milter=None):
    """msgstatus-milter for sd, smtp-sink and a Postfix that relays to it, with OpenDKIM
    if asked for and installed. Returns the Postfix, the sink, configure(name) that switches
    Postfix (and statusd) to one of the configurations the docstring lists, and whether
    OpenDKIM runs."""
    milter = sb.milter(sd)
    sink = sb.smtp_sink(dump=True)
    pf = sb.postfix(domains=["example.org"], transports={"remote.example": sink},
                    milter_macro_defaults={"msgstatus_domains": "example.org",
                                           "msgstatus_trust": "any"},
                    settings={"default_process_limit": "100",
                              "smtpd_client_connection_count_limit": "0",
                              "smtpd_client_message_rate_limit": "0"})
    spec = "{ %s, default_action=accept }" % milter.spec
    odk = opendkim and os.path.exists(OPENDKIM)
    odk_spec = "{ %s, default_action=accept }" % start_opendkim(sb)[1] if odk else None
    base_spec = "{ %s, default_action=accept }" % base_milter.spec if base_milter else None

    macros = "{ msgstatus_domains = example.org }, msgstatus_trust=any"

    def configure(name):
        dsn = ", msgstatus_dsn_domains=example.org" if name == "dsn" else ""
        untracked = "{ msgstatus_domains = example.org }"
        pf.postconf("-e", "milter_macro_defaults=" +
                    (untracked if name == "inbound" else f"{macros}{dsn}"))
        if name == "none":
            pf.postconf("-e", "smtpd_milters=", "non_smtpd_milters=")
        elif name == "opendkim":
            pf.postconf("-e", f"smtpd_milters={odk_spec}", f"non_smtpd_milters={odk_spec}")
        elif name == "baseline":
            pf.postconf("-e", f"smtpd_milters={base_spec}", f"non_smtpd_milters={base_spec}")
        else:
            pf.postconf("-e", f"smtpd_milters={spec}", f"non_smtpd_milters={spec}")
        pf.reload()
        if name == "down" and sd.child.alive():
            sd.stop()
        if name != "down" and not sd.child.alive():
            sd.start()
        time.sleep(1)

    return pf, sink, configure, odk


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma-separated configurations to run (none is always "
                    "run, for the ratios), e.g. --only milter,dsn")
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="also run another build's milter and statusd (configuration "
                    "baseline), with the schema of its source tree (BUILD_DIR/..)")
    args = ap.parse_args()

    with Sandbox(name="bench-milter") as sb:
        pg = sb.postgres(fsync=True)
        sd = sb.statusd(pg)
        base_sd, base_milter = baseline_system(sb, pg, args.baseline) if args.baseline \
            else (None, None)
        pf, sink, configure, odk = mail_system(sb, sd, opendkim=True, base_milter=base_milter)

        # warm up every path once
        for name in ("none", "milter") + (("baseline",) if base_sd else ()):
            configure(name)
            run_once(pf, sink, min(500, args.messages), args.sessions, args.size, "warm")
        names = ["none", "milter", "dsn", "down", "inbound"] + (["opendkim"] if odk else [])
        if args.only:
            names = ["none"] + [n for n in names[1:] if n in args.only.split(",")]
        if base_sd:
            names.insert(names.index("milter") + 1 if "milter" in names else 1, "baseline")
        results = {n: [] for n in names}
        # statusd's database batches per message, in the rounds with it up
        batches = {"milter": [], "baseline": []}

        def batches_total(name):
            _, text = (base_sd if name == "baseline" else sd).http("/metrics")
            m = re.search(r"^msgstatus_db_batches_total (\S+)$", text, re.M)
            return float(m.group(1)) if m else 0.0
        print(f"{args.messages} messages of {args.size} bytes, {args.sessions} sessions\n")
        print("| round | " + " | ".join(f"{n} msg/s" for n in names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                configure(name)
                before = batches_total(name) if name in ("milter", "dsn", "baseline") \
                    else None
                cpu = benchutil.pg_cpu(pg)
                results[name].append(run_once(pf, sink, args.messages, args.sessions,
                                              args.size, f"r{r}{name}"))
                if before is not None:
                    time.sleep(1)  # the last events' batch
                    n = batches_total(name) - before
                    batches["baseline" if name == "baseline" else "milter"].append(
                        (n / args.messages, (benchutil.pg_cpu(pg) - cpu) / max(n, 1) * 1000))
            print(f"| {r + 1} | " + " | ".join(f"{results[n][-1]:,.0f}" for n in names) + " |",
                  flush=True)
        med = {n: statistics.median(v) for n, v in results.items()}
        print("| median | " + " | ".join(
            f"{med[n]:,.0f} ({med[n] / med['none']:.3f})" for n in names) + " |")
        for name, b in batches.items():
            if b:
                per, cpu = [x[0] for x in b], [x[1] for x in b]
                print(f"\nstatusd's database batches per message ({name}): median "
                      f"{statistics.median(per):.2f} (rounds {min(per):.2f} to {max(per):.2f});"
                      f" PostgreSQL CPU per batch {statistics.median(cpu):.2f} ms "
                      f"({min(cpu):.2f} to {max(cpu):.2f}), per message "
                      f"{statistics.median(c * p for c, p in zip(cpu, per)):.2f} ms")
        if not sd.child.alive():
            sd.start()
        tracked = pg.scalar("SELECT count(*) FROM messages")
        print(f"\nmessages tracked in PostgreSQL after the run: {tracked}")
        if base_sd:
            print("messages tracked by the baseline: " +
                  pg.psql("SELECT count(*) FROM messages", db="baseline")[0][0])


if __name__ == "__main__":
    main()
