#!/usr/bin/python3
"""The chaos suite: mail flows through the whole real chain while faults are injected, then
every message's stored timeline is checked against what the mail system really did.

    tests/chaos/chaos.py                  the CI size: each fault once, a few seconds each
    tests/chaos/chaos.py --long           a 30-minute soak: faults in random order, again
                                          and again, for random lengths
    tests/chaos/chaos.py --minutes 5 --seed 7 --report chaos.md

The chain is private (tests/sandbox): PostgreSQL, statusd, msgstatus-milter, Postfix
(SMTP on 127.0.0.1, the milter, LMTP to Dovecot, a remote domain relayed to smtp-sink),
Dovecot with the msgstatus plugin, msgstatus-logd following Postfix's log. The spools
(milter, logd, statusd's pickup directory) live on a small file system of their own, so
that it can be filled. Faults are in faults.py, the traffic in traffic.py, the
reconciliation in reconcile.py.

The report has one row per fault: mail sent, accepted, rejected, delivered, lost;
events expected, stored, missing, duplicated; and the SMTP transaction and IMAP FETCH
latencies while the fault lasted, with what they added to the baseline's. The run fails
(exit 1) if any mail was rejected or lost, any event is missing or duplicated, the log
has a gap, any derived status is wrong, mail went untracked where no fault explains it,
or an SMTP or IMAP command took longer than --max-command seconds during a fault of
msgstatus. Needs root (Postfix, Dovecot, mount); exits 77 (skipped) otherwise.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "sandbox"))

from msgsandbox import Sandbox, SandboxError, paths  # noqa: E402
from msgsandbox.core import wait_for  # noqa: E402

import faults  # noqa: E402
import reconcile  # noqa: E402
from traffic import (LOCAL, REMOTE, SENDER, Clock, Follower, Reader, Sender,  # noqa: E402
                     percentile)

USERS = {SENDER: "alice-pw", LOCAL: "bob-pw"}
# Faults after which mail may legitimately go untracked: the milter was not there, or
# could not record the message (and said so).
UNTRACKED_OK = {"milter-kill9", "spool-disk-full", "spool-disk-full+statusd-kill9"}
# Faults of the mail system itself: IMAP may fail and be slow there.
MAIL_FAULTS = {"dovecot-restart"}


class Chain:
    """The whole private mail system with msgstatus in it."""

    def __init__(self, sb, spool_size):
        self.sb = sb
        self.spoolfs_fs = sb.tmpfs("spoolfs", spool_size)
        self.spoolfs = self.spoolfs_fs.path
        for d, owner in (("milter", None), ("logd", None), ("pickup", "mail")):
            os.makedirs(os.path.join(self.spoolfs, d))
            if owner:
                subprocess.run(["chown", f"{owner}:{owner}", os.path.join(self.spoolfs, d)],
                               check=True)
        self.pg = sb.postgres()
        self.sd = sb.statusd(self.pg, settings={
            "pickup_dir": os.path.join(self.spoolfs, "pickup")})
        self.milter = sb.milter(self.sd, settings={
            "spool_dir": os.path.join(self.spoolfs, "milter")})
        self.dovecot = sb.dovecot(
            users=USERS, mail_plugins=["notify", "msgstatus"],
            plugin_paths=[paths.binary("dovecot-plugin/lib90_msgstatus_plugin.so")],
            plugin=self.sd.dovecot_plugin_settings())
        self.sink = sb.smtp_sink(name="sink-remote")
        self.postfix = sb.postfix(
            domains=["example.org"], lmtp=self.dovecot, sasl=self.dovecot, milter=self.milter,
            milter_macro_defaults={"msgstatus_domains": "example.org"},
            transports={"remote.example": self.sink}, retry=1,
            # smtpd exits while Dovecot's auth socket is away; Postfix's default 60 s
            # throttle would then stall every submission for a minute after Dovecot is back
            settings={"service_throttle_time": "1s"})
        self.logd = sb.logd(self.sd, postfix=self.postfix, settings={
            "state_dir": os.path.join(self.spoolfs, "logd")})

    def heal(self):
        """Everything running again (a fault cut short may have left something down)."""
        if not self.pg.child.alive():
            self.pg.start()
        if not self.sd.child.alive():
            self.sd.start(wait_db=False)
        if not self.milter.child.alive():
            self.milter.start()
        if not self.dovecot.child.alive():
            self.dovecot.start()
        wait_for("statusd to reach the database",
                 lambda: self.sd.http_status("/healthz")[0] == 200, timeout=60)


def schedule(args, rng):
    """[(fault name, seconds)]: every fault once (CI), or a random soak for --minutes."""
    if not args.minutes:
        names = [n for n, _ in faults.FAULTS]
        if args.only:
            names = ["none"] + [n for n in names if n in args.only and n != "none"]
        return [(n, args.phase_seconds) for n in names]
    plan, total = [("none", 20.0)], 20.0
    names = [n for n, _ in faults.FAULTS if n != "none"]
    while total < args.minutes * 60:
        rng.shuffle(names)
        for n in names + ["none"]:
            secs = rng.uniform(10, 40)
            plan.append((n, secs))
            total += secs
            if total >= args.minutes * 60:
                break
    return plan


def run_faults(chain, plan, clock, rng, log):
    funcs = dict(faults.FAULTS)
    notes = {}
    stop = threading.Event()
    for name, secs in plan:
        clock.set(name)
        t0 = time.monotonic()
        note = funcs[name](chain, secs, rng, stop)
        chain.heal()
        notes.setdefault(name, []).append(note)
        log(f"{name}: {note} ({time.monotonic() - t0:.1f} s)")
    clock.set("recovery")
    return notes


def settle(chain, sender, reader, follower, log, timeout):
    """After the faults: let the queue empty, everything be read and every event arrive."""
    deadline = time.monotonic() + timeout
    accepted = [r for r in sender.records() if r.qid]

    def queue_empty():
        if chain.postfix.queue_empty():
            return True
        chain.postfix.flush()
        return False
    wait_for("Postfix's queue to empty", queue_empty, timeout=max(10, deadline - time.monotonic()),
             interval=2.0)
    wait_for("the reader to read everything", lambda: reader.idle.is_set() and
             len(reconcile.mailbox_copies(chain.dovecot, LOCAL)) >= len(accepted),
             timeout=max(10, deadline - time.monotonic()), interval=1.0)
    reader.stop()
    log("queue empty, all mail read; waiting for the events")

    last = None
    while True:
        result = collect(chain, sender.records())
        total = reconcile.Tally()
        for t in result["phases"].values():
            total.add(t)
        state = (total.missing, total.stored)
        if total.missing == 0 or time.monotonic() > deadline:
            break
        if state != last:
            log(f"  {total.missing} events still missing")
            last = state
        time.sleep(2.0)
    want = result["store"].log_offsets_of(SENDER)
    try:
        wait_for("the sender's feed to reach the head", lambda: follower.received()[-1:] ==
                 want[-1:], timeout=max(10, deadline - time.monotonic()), interval=0.5)
    except SandboxError as e:
        log(str(e))
    follower.stop()
    result["feed"] = feed_check(want, follower)
    return result


def feed_check(want, follower):
    """The live feed against the log: every offset the sender may see, once, in order."""
    got = follower.received()
    seen = set(got)
    return {"want": len(want), "got": len(got), "missing": len(set(want) - seen),
            "duplicated": len(got) - len(seen), "foreign": len(seen - set(want)),
            "out_of_order": sum(1 for a, b in zip(got, got[1:]) if b <= a),
            "reconnects": len(follower.breaks), "resets": follower.resets,
            "missing_offsets": sorted(set(want) - seen)[:20]}


def collect(chain, sent):
    store = reconcile.Store(chain.pg)
    phases = reconcile.reconcile(sent, reconcile.mailbox_copies(chain.dovecot, LOCAL),
                                 reconcile.sink_copies(chain.sink),
                                 reconcile.maillog_results(chain.postfix), store)
    return {"phases": phases, "store": store}


def latency_rows(plan, sent, samples):
    """{phase: (smtp p50, p99, max, imap p50, p99, max, imap failures)} in seconds."""
    out = {}
    for name in dict.fromkeys(n for n, _ in plan):
        smtp = [r.seconds for r in sent if r.phase == name and r.qid]
        imap = [s.seconds for s in samples if s.phase == name and s.error is None]
        fails = [s.error for s in samples if s.phase == name and s.error is not None]
        out[name] = (percentile(smtp, 50), percentile(smtp, 99), max(smtp, default=None),
                     percentile(imap, 50), percentile(imap, 99), max(imap, default=None),
                     fails)
    return out


def ms(v):
    return "–" if v is None else f"{v * 1000:.0f}"


def added(v, base):
    return "–" if v is None or base is None else f"{(v - base) * 1000:+.0f}"


def report(args, plan, notes, result, lat, extra):
    phases = result["phases"]
    store = result["store"]
    lines = [f"# msgstatus chaos report ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "",
             f"Command: `tests/chaos/chaos.py {' '.join(sys.argv[1:])}`; seed {args.seed}; "
             f"{len(plan)} phases, {sum(s for _, s in plan):.0f} s of faults; "
             f"{args.rate} messages/s, each to {LOCAL} (LMTP, read over IMAP) and {REMOTE} "
             "(relayed).", "",
             "| fault | times | mail sent | accepted | rejected | delivered | lost | tracked "
             "| untracked | events expected | stored | missing | duplicated |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    total = reconcile.Tally()
    # "start" (mail sent before the first phase began), then the plan's phases
    for name in dict.fromkeys(["start"] * ("start" in phases) + [n for n, _ in plan] +
                              list(phases)):
        t = phases.get(name, reconcile.Tally())
        total.add(t)
        lines.append(f"| {name} | {len(notes.get(name, []))} | {t.sent} | {t.accepted} | "
                     f"{t.rejected} | {t.delivered} | {t.lost} | "
                     f"{t.tracked + t.recorded_untagged} | {t.untracked} | {t.expected} | "
                     f"{t.stored} | {t.missing} | {t.duplicated} |")
    lines.append(f"| **all** | | **{total.sent}** | **{total.accepted}** | "
                 f"**{total.rejected}** | **{total.delivered}** | **{total.lost}** | "
                 f"**{total.tracked + total.recorded_untagged}** | **{total.untracked}** | "
                 f"**{total.expected}** | **{total.stored}** | **{total.missing}** | "
                 f"**{total.duplicated}** |")
    base = lat.get("none")
    lines += ["", "Latency while each fault lasted (ms; added = against the baseline, "
              "`none`): the SMTP transaction (connect to QUIT, the milter in it) and IMAP "
              "`FETCH BODY[]` (which sets \\Seen, the plugin in it).", "",
              "| fault | SMTP p50 | p99 | max | added p99 | IMAP p50 | p99 | max | added p99 "
              "| IMAP failures |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, (sp50, sp99, smax, ip50, ip99, imax, fails) in lat.items():
        lines.append(f"| {name} | {ms(sp50)} | {ms(sp99)} | {ms(smax)} | "
                     f"{added(sp99, base[1] if base else None)} | {ms(ip50)} | {ms(ip99)} | "
                     f"{ms(imax)} | {added(ip99, base[4] if base else None)} | {len(fails)} |")
    log = store.log
    feed = result["feed"]
    lines += ["", "What was done, and the rest of the checks:", ""]
    for name, ns in notes.items():
        lines.append(f"- {name}: " + "; ".join(dict.fromkeys(ns)))
    lines += [
        f"- event log: {log['events']} events at offsets {log['first']}–{log['last']}, "
        f"{log['distinct']} distinct ({'no gap, no duplicate' if extra['log_ok'] else 'GAP OR DUPLICATE'})",
        "- the sender's live feed (one WebSocket, resuming from its last offset after each "
        f"break): {feed['got']} events received of {feed['want']} in the log, "
        f"{feed['missing']} missing, {feed['duplicated']} twice, {feed['out_of_order']} out "
        f"of order, {feed['foreign']} not the sender's; {feed['reconnects']} reconnects, "
        f"{feed['resets']} resets",
        f"- timelines out of causal order: {total.out_of_order}; derived statuses wrong: "
        f"{total.wrong_status}",
        f"- recorded but not tagged (the milter died between its record and the header): "
        f"{total.recorded_untagged}; tagged but not recorded: {total.tagged_unrecorded}",
        f"- events the Dovecot plugin said it lost (neither statusd nor the pickup "
        f"directory took them): {extra['plugin_lost']}",
        f"- the milter said \"NOT recorded\" for {extra['unrecorded']} messages; "
        f"events never joined to a message (untracked mail's): {store.unjoined}",
        f"- submissions tried again because SMTP AUTH (Dovecot) was away: "
        f"{len(extra['retries'])} ({', '.join(sorted(set(p for p, _ in extra['retries']))) or 'none'})",
    ]
    return lines, total


def verdict(args, total, lat, phases, extra):
    """The reasons the run failed (empty: it passed)."""
    bad = []
    for f in ("rejected", "lost", "duplicated", "out_of_order", "tagged_unrecorded"):
        if getattr(total, f):
            bad.append(f"{f}: {getattr(total, f)}")
    # events the Dovecot plugin said it lost (it could neither send nor file them) are
    # missing loudly; any other missing event was lost silently
    if total.missing > extra["plugin_lost"]:
        bad.append(f"missing: {total.missing}, of which the plugin reported "
                   f"{extra['plugin_lost']} lost")
    if total.wrong_status > extra["plugin_lost"]:
        bad.append(f"wrong_status: {total.wrong_status}")
    if not extra["log_ok"]:
        bad.append("the event log has a gap or a duplicate offset")
    feed = extra["feed"]
    for f in ("missing", "duplicated", "out_of_order", "foreign", "resets"):
        if feed[f]:
            bad.append(f"the sender's feed: {f}: {feed[f]}")
    for name, t in phases.items():
        if t.untracked and name not in UNTRACKED_OK:
            bad.append(f"{name}: {t.untracked} messages untracked with no fault to explain it")
    spool_untracked = sum(phases.get(n, reconcile.Tally()).untracked
                          for n in ("spool-disk-full", "spool-disk-full+statusd-kill9"))
    if spool_untracked > extra["unrecorded"]:
        bad.append(f"spool-disk-full: {spool_untracked} untracked, but the milter reported "
                   f"only {extra['unrecorded']}")
    for phase, error in extra["retries"]:
        if phase not in MAIL_FAULTS:
            bad.append(f"{phase}: a submission had to be tried again: {error}")
    for name, (_, _, smax, _, _, imax, fails) in lat.items():
        if name in MAIL_FAULTS:
            continue
        if smax is not None and smax > args.max_command:
            bad.append(f"{name}: an SMTP transaction took {smax:.2f} s")
        if imax is not None and imax > args.max_command:
            bad.append(f"{name}: an IMAP FETCH took {imax:.2f} s")
        if fails:
            bad.append(f"{name}: {len(fails)} IMAP failures, e.g. {fails[0]}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long", action="store_true", help="the 30-minute soak (--minutes 30)")
    ap.add_argument("--minutes", type=float, default=0,
                    help="soak: random faults for this long (default: each fault once)")
    ap.add_argument("--phase-seconds", type=float, default=8.0,
                    help="how long each fault lasts in the CI run (default 8)")
    ap.add_argument("--only", nargs="*", help="only these faults (CI run)")
    ap.add_argument("--rate", type=float, default=8.0, help="messages per second (default 8)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    ap.add_argument("--max-command", type=float, default=10.0,
                    help="the longest an SMTP or IMAP command may take during a fault of "
                    "msgstatus, in seconds (default 10)")
    ap.add_argument("--settle", type=float, default=240.0,
                    help="seconds to wait for the queue, reads and events after the faults")
    ap.add_argument("--report", help="also write the report (Markdown) to this file")
    ap.add_argument("--json", help="write the figures as JSON to this file")
    args = ap.parse_args()
    if args.long and not args.minutes:
        args.minutes = 30
    if os.environ.get("MSGSTATUS_E2E_SKIP"):
        sys.exit(77)
    if os.geteuid() != 0:
        print("skipped: needs root (private Postfix/Dovecot instances, a tmpfs)")
        sys.exit(77)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    rng = random.Random(args.seed)
    started = time.monotonic()

    def log(text):
        print(f"[{time.monotonic() - started:6.1f}] {text}", flush=True)

    plan = schedule(args, rng)
    with Sandbox(name="chaos") as sb:
        chain = Chain(sb, spool_size="16m")
        log(f"chain up in {sb.root}; seed {args.seed}; {len(plan)} phases")
        clock = Clock()
        sender = Sender(chain.postfix, clock, args.rate, (SENDER, USERS[SENDER]))
        reader = Reader(chain.dovecot, clock)
        follower = Follower(chain.sd, chain.sd.token(SENDER, ttl=24 * 3600), clock)
        sender.start()
        reader.start()
        follower.start()
        try:
            notes = run_faults(chain, plan, clock, rng, log)
        finally:
            sender.stop()
        log(f"faults done: {len(sender.records())} messages submitted")
        result = settle(chain, sender, reader, follower, log, args.settle)
        sent = sender.records()
        lat = latency_rows(plan, sent, reader.records())
        log_ = result["store"].log
        extra = {
            "log_ok": log_["events"] == log_["distinct"] == log_["last"] - log_["first"] + 1,
            "feed": result["feed"],
            "plugin_lost": reconcile.plugin_lost(chain.dovecot.log()),
            # every run of the milter logs to the same file
            "unrecorded": reconcile.milter_unrecorded(chain.milter.child.log()),
            "retries": [r for rec in sent for r in rec.retries],
        }
        lines, total = report(args, plan, notes, result, lat, extra)
        bad = verdict(args, total, lat, result["phases"], extra)
        if bad:
            sb.keep = True  # the logs, the maillog and the database, to look into
        problems = [p for t in result["phases"].values() for p in t.problems]
        if result["feed"]["missing_offsets"]:
            problems.append("offsets the sender's feed did not deliver: " +
                            " ".join(map(str, result["feed"]["missing_offsets"])))
        print("\n".join(lines))
        if problems:
            print("\nFirst problems found:\n  " + "\n  ".join(problems[:30]))
        if args.report:
            with open(args.report, "w") as f:
                f.write("\n".join(lines) + "\n")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"seed": args.seed, "plan": plan, "latency": {
                    k: list(v[:6]) + [len(v[6])] for k, v in lat.items()},
                    "phases": {k: {f: getattr(t, f) for f in reconcile.Tally.FIELDS}
                               for k, t in result["phases"].items()}}, f, indent=1)
    # the sandbox has closed: a sanitizer report or a bad exit would have raised
    if bad:
        print("\nFAILED:\n  " + "\n  ".join(bad))
        print("0 passed, 1 failed")
        sys.exit(1)
    print(f"\nchaos: {total.sent} messages, {total.expected} events, nothing lost or "
          f"duplicated ({time.monotonic() - started:.0f} s)")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except SandboxError as e:
        print(f"chaos: {e}", file=sys.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)
