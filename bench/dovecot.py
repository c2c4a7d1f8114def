#!/usr/bin/env python3
"""Dovecot plugin benchmark: what the msgstatus plugin costs IMAP, side by side with no
plugin and with Dovecot's own mail_log plugin logging flag changes.

    bench/dovecot.py [--messages 2000] [--commands 2000] [--block 100] [--rounds 5]
                     [--seed 1] [--pickup-tmpfs | --tmpfs] [--baseline BUILD]

Four private Dovecot instances in one sandbox (five with --baseline), identical but for
their mail plugins:

  none       no mail plugin
  mail_log   notify + mail_log with mail_log_events = flag_change expunge save
  msgstatus  notify + msgstatus, handing events to statusd's socket; statusd and PostgreSQL
             running and storing them (on the same CPUs)
  down       notify + msgstatus whose socket has no statusd behind it: every transaction
             becomes a pickup file in a folder nobody reads, as with statusd stopped: the
             plugin's own cost. The files stay until the end, as in an outage. The folder
             is on the sandbox's file system, or with --pickup-tmpfs on a tmpfs of its
             own: an ext4 without a journal, as on the machine of docs/performance.md,
             passes over every inode freed in the last 5 seconds (by anyone: Dovecot
             rewriting its indexes) each time it allocates one, and a pickup file is one
             inode per transaction. With --tmpfs the whole sandbox is on a tmpfs of
             its own (every Dovecot's Maildir and indexes, the pickup folders,
             PostgreSQL's data): Dovecot itself creates and deletes a file per command
             (dovecot-uidlist.lock), and on such an ext4 each instance's cost then
             depends on how many inodes were freed lately in the block group its
             Maildir landed in, by it and by anyone else: a bias between instances
             that has nothing to do with their plugins.
  base-down  with --baseline BUILD: as down, with the plugin of another build (BUILD is its
             build directory, e.g. main's): the two plugins' own costs side by side. Its
             pickup folder is a second one, on the same kind of file system as down's.

Each gets the same --messages tracked messages (a Msgstatus-Id header each) delivered over
LMTP, and one IMAP session (imaplib) that stays logged in. Every command changes \\Seen, so
every command makes an event:

  STORE      UID STORE n +FLAGS (\\Seen)
  FETCH      UID FETCH n (BODY[])   (an implicit \\Seen)

A round runs --commands commands of each kind on each instance, in blocks of --block: the
instances take turns block by block, in a random order (--seed) drawn for each block, so
that a machine whose load changes from second to second slows all alike and no
instance always follows the same other. Before each block, one untimed
UID STORE -FLAGS.SILENT (\\Seen) clears the block's messages; for msgstatus the benchmark
then waits (untimed) until statusd has stored every event so far, and again after the
block, so that statusd's work on one block does not fall into another instance's time. A
first round warms up (page cache, Dovecot's indexes) and is not counted.

Two figures per round, instance and kind: the rate (commands over the time of its
blocks), and the CPU time of the instance's Dovecot processes (imap, log, ...: schedstat)
per command, which a loaded machine moves much less than the rate. Each is divided by
none's in the same round. Prints each round, then the median of the rounds' ratios with
their spread (min-max, and the interquartile range from 4 rounds), and the plugin's cost:
its CPU per command above none's. Then down against mail_log (and base-down) pair by pair
within each round: the median of the rounds' rate ratios and of their CPU differences, with
their spread. For msgstatus, also statusd's and PostgreSQL's CPU per event, from the start
of a block until its last event is stored.
"""
import argparse
import contextlib
import gc
import glob
import os
import pwd
import random
import statistics
import subprocess
import tempfile
import time

import benchutil  # noqa: F401  (first: it puts the sandbox on sys.path)

from msgsandbox import Sandbox, paths
from msgsandbox.postfix import make_message

USER = "bob@example.org"
PLUGIN = "dovecot-plugin/lib90_msgstatus_plugin.so"
NAMES = ["none", "mail_log", "msgstatus", "down"]  # and base-down with --baseline
KINDS = ["STORE", "FETCH"]


def fill(dc, n):
    for i in range(n):
        dc.deliver(USER, make_message("alice@example.net", [USER], subject=f"bench {i}",
                                      body="x" * 2000 + "\n",
                                      headers=[("Msgstatus-Id", f"bench{i:06d}")]))


class Instance:
    """One Dovecot and its IMAP session, with what the benchmark knows of its \\Seen flags."""

    def __init__(self, name, dc, messages):
        self.name = name
        self.dc = dc
        self.imap = dc.imap(USER)
        self.imap.select("INBOX")
        _, data = self.imap.uid("SEARCH", None, "ALL")
        self.uids = data[0].split()
        if len(self.uids) != messages:
            raise SystemExit(f"{name}: {len(self.uids)} messages, not {messages}")
        self.seen = set()  # indexes into uids

    def clear(self, idx):
        """Clear \\Seen on the messages idx (a contiguous range), untimed. Returns how many
        lost it (each an unread event for msgstatus)."""
        first, last = self.uids[idx[0]].decode(), self.uids[idx[-1]].decode()
        self.imap.uid("STORE", f"{first}:{last}", "-FLAGS.SILENT", "(\\Seen)")
        lost = sum(1 for i in idx if i in self.seen)
        self.seen.difference_update(idx)
        return lost

    def block(self, kind, idx):
        """Run one command of kind per message of idx; returns the seconds it took."""
        imap, uids = self.imap, self.uids
        start = time.perf_counter()
        if kind == "STORE":
            for i in idx:
                imap.uid("STORE", uids[i], "+FLAGS", "(\\Seen)")
        else:
            for i in idx:
                imap.uid("FETCH", uids[i], "(BODY[])")
        took = time.perf_counter() - start
        self.seen.update(idx)
        return took

    def close(self):
        self.imap.logout()


def tree(root):
    """Process root and its descendants alive now. A Dovecot's are its master's children:
    imap (the benchmark's session), log, auth, config, anvil, stats..."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    pids, todo = [], [root]
    while todo:
        pids.append(todo.pop())
        todo += children.get(pids[-1], [])
    return pids


def cpu_ns(pids):
    """{pid: nanoseconds it has run on a CPU} for the processes pids alive now (schedstat:
    exact, where /proc/PID/stat counts clock ticks)."""
    ns = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                ns[pid] = int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return ns


def cpu_since(before, pids):
    """Nanoseconds the processes of snapshot before have run since, those alive still."""
    now = cpu_ns(pids)
    return sum(now[p] - before[p] for p in before if p in now)


def quartiles(values):
    values = sorted(values)
    if len(values) < 4:
        return None
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000, help="tracked messages per instance")
    ap.add_argument("--commands", type=int, default=2000,
                    help="commands of each kind per instance and round")
    ap.add_argument("--block", type=int, default=100, help="commands per turn")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1, help="of the instances' order per block")
    ap.add_argument("--pickup-tmpfs", action="store_true",
                    help="down's pickup folder on a tmpfs of its own, not the sandbox's disk")
    ap.add_argument("--tmpfs", action="store_true",
                    help="the whole sandbox (Maildirs, pickup folders, PostgreSQL) on a tmpfs")
    ap.add_argument("--baseline", metavar="BUILD",
                    help="another build directory: its plugin as a fifth instance, base-down")
    args = ap.parse_args()
    if args.block > args.messages:
        ap.error("--block cannot exceed --messages")
    names = NAMES + (["base-down"] if args.baseline else [])
    if args.baseline:
        args.base_plugin = os.path.join(os.path.abspath(args.baseline), PLUGIN)
        if not os.access(args.base_plugin, os.R_OK):
            ap.error(f"{args.base_plugin} is not built")

    with contextlib.ExitStack() as stack:
        root = stack.enter_context(tmpfs_root()) if args.tmpfs else None
        sb = stack.enter_context(Sandbox(root=root, name="bench-dovecot"))
        run(args, sb, names)


@contextlib.contextmanager
def tmpfs_root():
    """A folder with a tmpfs of its own mounted on it, for the sandbox."""
    root = tempfile.mkdtemp(prefix="bench-dovecot-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "bench-dovecot", root],
                   check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", root])
        os.rmdir(root)


def run(args, sb, names):
    pg = sb.postgres(fsync=True)
    sd = sb.statusd(pg)
    users = {USER: "bob-secret"}
    def pickup_dir(name):
        if not args.pickup_tmpfs:
            return sb.mkdir(name, mode=0o770, owner="mail")
        path = sb.tmpfs(name, "1g").path
        os.chown(path, pwd.getpwnam("mail").pw_uid, pwd.getpwnam("mail").pw_gid)
        os.chmod(path, 0o770)
        return path

    pickups = [pickup_dir("down-pickup")]
    down_socket = os.path.join(sb.mkdir("down-run"), "events.sock")  # never created
    dovecots = {
        "none": sb.dovecot(users=users, name="dc-none"),
        "mail_log": sb.dovecot(users=users, name="dc-maillog",
                               mail_plugins=["notify", "mail_log"],
                               plugin={"mail_log_events": "flag_change expunge save",
                                       "mail_log_fields": "uid box msgid flags"}),
        "msgstatus": sb.dovecot(users=users, name="dc-msgstatus",
                                mail_plugins=["notify", "msgstatus"],
                                plugin_paths=[paths.binary(PLUGIN)],
                                plugin=sd.dovecot_plugin_settings()),
        "down": sb.dovecot(users=users, name="dc-down",
                           mail_plugins=["notify", "msgstatus"],
                           plugin_paths=[paths.binary(PLUGIN)],
                           plugin={"msgstatus_socket": down_socket,
                                   "msgstatus_pickup_dir": pickups[0]}),
    }
    if args.baseline:
        pickups.append(pickup_dir("base-down-pickup"))
        dovecots["base-down"] = sb.dovecot(users=users, name="dc-base-down",
                                           mail_plugins=["notify", "msgstatus"],
                                           plugin_paths=[args.base_plugin],
                                           plugin={"msgstatus_socket": down_socket,
                                                   "msgstatus_pickup_dir": pickups[1]})
        print(f"base-down: {args.base_plugin}")
    t0 = time.monotonic()
    for name in names:
        fill(dovecots[name], args.messages)
    print(f"{args.messages} tracked messages in each of {len(names)} Dovecots "
          f"(delivered in {time.monotonic() - t0:.0f} s); {args.commands} commands of "
          f"each kind per instance and round, in blocks of {args.block}\n")

    def empty_down_pickup():
        for d in pickups:
            for f in glob.glob(os.path.join(d, "*")):
                os.unlink(f)

    def stored():
        return int(pg.scalar("SELECT count(*) FROM events WHERE source = 'dovecot'"))

    want = args.messages  # msgstatus's events: delivered, then read and unread

    def wait_stored():
        deadline = time.monotonic() + 120
        while stored() < want:
            if time.monotonic() > deadline:
                raise SystemExit(f"statusd stored {stored()} of {want} events")
            time.sleep(0.01)

    wait_stored()
    inst = {name: Instance(name, dovecots[name], args.messages) for name in names}
    empty_down_pickup()
    time.sleep(6)  # ext4 passes over inodes freed in the last 5 s when it allocates one

    blocks = (args.commands + args.block - 1) // args.block
    rng = random.Random(args.seed)
    # per (kind, name): each round's commands/s and Dovecot's CPU µs per command, and
    # their ratios to none's in the same round
    rate = {(k, n): [] for k in KINDS for n in names}
    cpu = {(k, n): [] for k in KINDS for n in names}
    server_cpu = {k: [] for k in KINDS}  # statusd's and PostgreSQL's, µs per event
    rate_ratio = {(k, n): [] for k in KINDS for n in names}
    cpu_ratio = {(k, n): [] for k in KINDS for n in names}
    print("| round | command | " + " | ".join(f"{n} cmd/s, µs CPU/cmd" for n in names)
          + " |")
    print("|---|---|" + "---|" * len(names))
    for r in range(args.rounds + 1):  # round 0 warms up (caches, indexes) and is not kept
        procs = {name: tree(dovecots[name].child.pid) for name in names}
        servers = tree(sd.child.pid) + tree(pg.child.popen.pid)
        for kind in KINDS:
            took = dict.fromkeys(names, 0.0)
            ran = dict.fromkeys(names, 0)
            count = dict.fromkeys(names, 0)
            served = 0
            for b in range(blocks):
                n = min(args.block, args.commands - b * args.block)
                first = (b * args.block) % (args.messages - n + 1)
                idx = list(range(first, first + n))
                order = rng.sample(names, len(names))
                for name in order:
                    i = inst[name]
                    if name == "msgstatus":
                        want += i.clear(idx)
                        wait_stored()
                    else:
                        i.clear(idx)
                    gc.disable()
                    before = cpu_ns(procs[name])
                    before_servers = cpu_ns(servers) if name == "msgstatus" else None
                    took[name] += i.block(kind, idx)
                    ran[name] += cpu_since(before, procs[name])
                    gc.enable()
                    count[name] += n
                    if name == "msgstatus":
                        want += n
                        wait_stored()
                        served += cpu_since(before_servers, servers)
            if r == 0:
                continue
            for name in names:
                rate[(kind, name)].append(count[name] / took[name])
                cpu[(kind, name)].append(ran[name] / 1000 / count[name])
            server_cpu[kind].append(served / 1000 / count["msgstatus"])
            for name in names:
                rate_ratio[(kind, name)].append(rate[(kind, name)][-1] /
                                                rate[(kind, "none")][-1])
                cpu_ratio[(kind, name)].append(cpu[(kind, name)][-1] /
                                               cpu[(kind, "none")][-1])
            print(f"| {r} | {kind} | " + " | ".join(
                f"{rate[(kind, n)][-1]:,.0f} ({rate_ratio[(kind, n)][-1]:.2f}), "
                f"{cpu[(kind, n)][-1]:.0f}" for n in names) + " |", flush=True)

    def spread(values):
        q = quartiles(values)
        return (f"{min(values):.2f}-{max(values):.2f} | "
                + (f"{q[0]:.2f}-{q[1]:.2f}" if q else "-"))

    print(f"\nMedians of the {args.rounds} rounds, with the spread of the rounds' ratios "
          "to none (min-max, interquartile range). CPU: Dovecot's processes (imap, log, "
          "...), µs per command; the cost is the CPU above none's in the same round.\n")
    print("| command | instance | cmd/s | ratio | min-max | IQR "
          "| µs CPU/cmd | ratio | min-max | IQR | cost µs/cmd |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in KINDS:
        for name in names:
            cost = [c - z for c, z in zip(cpu[(kind, name)], cpu[(kind, "none")])]
            print(f"| {kind} | {name} | {statistics.median(rate[(kind, name)]):,.0f} | "
                  f"{statistics.median(rate_ratio[(kind, name)]):.3f} | "
                  f"{spread(rate_ratio[(kind, name)])} | "
                  f"{statistics.median(cpu[(kind, name)]):.0f} | "
                  f"{statistics.median(cpu_ratio[(kind, name)]):.3f} | "
                  f"{spread(cpu_ratio[(kind, name)])} | {statistics.median(cost):.1f} |")
    pairs = [("down", "mail_log")] + ([("down", "base-down")] if args.baseline else [])
    print("\nThe plugin's own cost against its peers, pair by pair in each round: the "
          "median of the rounds' rate ratios (min-max, IQR), and of the differences of "
          "their CPU costs (µs per command; below 0: cheaper).\n")
    print("| command | instance | against | rate ratio | min-max | IQR "
          "| CPU µs/cmd more | min-max | IQR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in KINDS:
        for a, b in pairs:
            ratio = [x / y for x, y in zip(rate[(kind, a)], rate[(kind, b)])]
            more = [x - y for x, y in zip(cpu[(kind, a)], cpu[(kind, b)])]
            q = quartiles(more)
            print(f"| {kind} | {a} | {b} | {statistics.median(ratio):.3f} | "
                  f"{spread(ratio)} | {statistics.median(more):+.1f} | "
                  f"{min(more):+.0f} to {max(more):+.0f} | "
                  + (f"{q[0]:+.0f} to {q[1]:+.0f}" if q else "-") + " |")
    print("\nstatusd and PostgreSQL, for msgstatus's events (from the start of a block to "
          "the last event stored): " + ", ".join(
              f"{k} {statistics.median(server_cpu[k]):.0f} µs CPU per event" for k in KINDS))
    for i in inst.values():
        i.close()
    print(f"\nevents from the plugin stored by statusd: {stored()} (expected {want})")


if __name__ == "__main__":
    main()
