#!/usr/bin/env python3
"""Dovecot plugin benchmark: what the msgstatus plugin costs IMAP, side by side with no
plugin and with Dovecot's own mail_log plugin logging flag changes.

    bench/dovecot.py [--messages 2000] [--rounds 3]

Three private Dovecot 2.3 instances in one sandbox, identical but for their mail plugins:

  none       no mail plugin
  msgstatus  notify + msgstatus (events written to statusd's pickup directory; statusd and
             PostgreSQL running and storing them)
  down       the msgstatus instance again, with statusd stopped (the files wait): the
             plugin's own cost, without statusd and PostgreSQL on the same CPUs
  mail_log   notify + mail_log with mail_log_events = flag_change expunge save

Each gets the same --messages tracked messages (a Msgstatus-Id header each) delivered over
LMTP. Per round and instance, one IMAP client (imaplib) runs, one command per message:

  STORE      UID STORE n +FLAGS (\\Seen) for every message (each one a read event)
  FETCH      UID FETCH n (BODY[]) for every message after clearing \\Seen in one command
             (each an implicit \\Seen: a read event)

and the rate is commands/s. Instances are measured in rotated order. Prints a Markdown
table per round and the medians, with ratios against "none".
"""
import argparse
import statistics
import sys
import time

import benchutil  # noqa: F401  (first: it puts the sandbox on sys.path)

from msgsandbox import Sandbox, paths
from msgsandbox.postfix import make_message

USER = "bob@example.org"


def fill(dc, n):
    for i in range(n):
        dc.deliver(USER, make_message("alice@example.net", [USER], subject=f"bench {i}",
                                      body="x" * 2000 + "\n",
                                      headers=[("Msgstatus-Id", f"bench{i:06d}")]))


def run(dc, what, sd=None):
    if sd is not None:
        sd.stop()
    try:
        return run_client(dc, what)
    finally:
        if sd is not None:
            sd.start()


def run_client(dc, what):
    c = dc.imap(USER)
    try:
        c.select("INBOX")
        c.uid("STORE", "1:*", "-FLAGS", "(\\Seen)")
        _, data = c.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        start = time.monotonic()
        for uid in uids:
            if what == "STORE":
                c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            else:
                c.uid("FETCH", uid, "(BODY[])")
        return len(uids) / (time.monotonic() - start)
    finally:
        c.logout()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    with Sandbox(name="bench-dovecot") as sb:
        pg = sb.postgres(fsync=True)
        sd = sb.statusd(pg)
        users = {USER: "bob-secret"}
        instances = {
            "none": sb.dovecot(users=users, name="dc-none"),
            "msgstatus": sb.dovecot(users=users, name="dc-msgstatus",
                                    mail_plugins=["notify", "msgstatus"],
                                    plugin_paths=[paths.binary(
                                        "dovecot-plugin/lib90_msgstatus_plugin.so")],
                                    plugin=sd.dovecot_plugin_settings()),
            "mail_log": sb.dovecot(users=users, name="dc-maillog",
                                   mail_plugins=["notify", "mail_log"],
                                   plugin={"mail_log_events": "flag_change expunge save",
                                           "mail_log_fields": "uid box msgid flags"}),
        }
        t0 = time.monotonic()
        for name in ("none", "msgstatus", "mail_log"):
            fill(instances[name], args.messages)
        print(f"{args.messages} tracked messages in each of 3 Dovecots "
              f"(delivered in {time.monotonic() - t0:.0f} s)\n")
        names = ["none", "msgstatus", "down", "mail_log"]
        instances["down"] = instances["msgstatus"]
        for what in ("STORE", "FETCH"):
            run(instances["none"], what)  # warm up
        results = {(w, n): [] for w in ("STORE", "FETCH") for n in names}
        print("| round | command | " + " | ".join(f"{n} cmd/s" for n in names) + " |")
        print("|---|---|" + "---|" * len(names))
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for what in ("STORE", "FETCH"):
                for name in order:
                    results[(what, name)].append(
                        run(instances[name], what, sd if name == "down" else None))
                print(f"| {r + 1} | {what} | " + " | ".join(
                    f"{results[(what, n)][-1]:,.0f}" for n in names) + " |", flush=True)
        for what in ("STORE", "FETCH"):
            med = {n: statistics.median(results[(what, n)]) for n in names}
            print(f"| median | {what} | " + " | ".join(
                f"{med[n]:,.0f} ({med[n] / med['none']:.3f})" for n in names) + " |")
        # per message: delivered; in the msgstatus mailbox 4 runs a round each read it once,
        # and each run but the first starts by clearing \Seen (an unread event)
        want = args.messages * 8 * args.rounds
        stored = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stored = int(pg.scalar("SELECT count(*) FROM events WHERE source = 'dovecot'"))
            if stored >= want:
                break
            time.sleep(1)
        print(f"\nevents from the plugin stored by statusd: {stored} of {want}")


if __name__ == "__main__":
    main()
