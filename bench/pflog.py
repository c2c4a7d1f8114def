#!/usr/bin/python3
"""Postfix log parser benchmark: logd/pflog (bench/pflog_bench) side by side with Debian's
pflogsumm on the same generated maillog.

    bench/pflog.py [--lines 2000000] [--rounds 5] [--build-dir build-pflog-rel]
                   [--log /tmp/pflog-bench/maillog] [--keep] [--seed 1]
                   [--baseline-build-dir DIR] [--uncached 2000] [--events-only]

The log is generated from templates of the lines a private Postfix 3.7.11 wrote (see
tests/data/maillog-sample.txt) plus the few shapes that need a real MX on the Internet
(postscreen's DNSBL and PASS lines, dnsblog, SASL logins, TLS to remote servers, reverse
DNS warnings). The mix per SMTP session is that of a small company's MX and submission
server: most sessions are inbound mail delivered by LMTP to Dovecot, many are spam or
scanners rejected before DATA, some are authenticated submissions relayed to remote MXes
(a few deferred, bounced or expired), with anvil statistics and warnings in between.
Timestamps advance over a few days from a week ago, in maillog_file's format ("Nov 02
13:37:01 mail ...").

Measured:
  pflog (parse)  pflog_bench's in-memory rate: split + pflog_parse, median and best of
                 --rounds;
  pflog (wall)   pflog_bench -s FILE as a process: start, read the file in 1 MiB chunks
                 as a log follower does, parse every line once (best of 3 runs);
  pflogsumm      pflogsumm FILE > /dev/null as a process (it parses every line with Perl
                 regular expressions and also builds its report: more work, not the same).
  events         pflog_bench -e FILE: what msgstatus-logd does per line (pfevent_line():
                 parse, Message-ID cache, validate, format the event), CPU time per delivery
                 line: with the file's lines in order (the queue id was cached by its
                 cleanup line) and uncached (the first --uncached delivery lines alone,
                 after 100,000 other Message-IDs filled the cache). With
                 --baseline-build-dir, the same with that build's pflog_bench (e.g. of an
                 earlier commit), rounds alternating, on the same file.
Needs: Debian's pflogsumm (apt-get install pflogsumm) and a Release build of pflog_bench:
  cmake -S . -B build-pflog-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-pflog-rel
      --target pflog_bench
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
LONG_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"

DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com"]
REMOTE = ["gmail.example", "outlook.example", "web.example.de", "mx.example.fr",
          "yahoo.example", "corp.example.co.uk"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "oscar", "peggy", "trent", "victor", "walter", "info", "sales", "support",
         "billing", "noreply", "newsletter", "john.doe", "jane_smith", "ops-team"]
SPAM_HELOS = ["User", "localhost", "[192.0.2.55]", "win-k3l2.local", "mail.example.cn"]
REJECTS = [
    "450 4.7.1 Client host rejected: cannot find your reverse hostname, [{ip}]",
    "554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
    "https://www.spamhaus.org/query/ip/{ip}",
    "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
    "554 5.7.1 <{rcpt}>: Relay access denied",
    "450 4.7.1 <{helo}>: Helo command rejected: Host not found",
    "504 5.5.2 <{helo}>: Helo command rejected: need fully-qualified hostname",
]
REMOTE_REPLIES_OK = ["250 2.0.0 OK  1700000000 a1si2345678ejb.123 - gsmtp",
                     "250 2.6.0 <{mid}> [InternalId=123456789, Hostname=AM0PR01MB1234.example] "
                     "Queued mail for delivery",
                     "250 2.0.0 Ok: queued as {rq}", "250 OK id=1qAbCd-0001Xy-2Z"]
REMOTE_DEFER = ["host {mx}[{ip}] said: 451 4.7.1 Greylisted, please try again in 5 minutes "
                "(see https://example.net/grey) (in reply to RCPT TO command)",
                "connect to {mx}[{ip}]:25: Connection timed out",
                "host {mx}[{ip}] said: 421 4.7.0 Try again later, closing connection. (EHLO) "
                "(in reply to EHLO command)",
                "lost connection with {mx}[{ip}] while receiving the initial server greeting"]
REMOTE_BOUNCE = ["host {mx}[{ip}] said: 550 5.1.1 The email account that you tried to reach "
                 "does not exist. Please try double-checking the recipient's email address "
                 "for typos or unnecessary spaces. (in reply to RCPT TO command)",
                 "host {mx}[{ip}] said: 554 5.7.1 Message rejected due to content "
                 "restrictions (score 12.5, required 5.0) (in reply to end of DATA command)",
                 "Host or domain name not found. Name service error for name={dom} "
                 "type=MX: Host not found, try again"]
TLS = ("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
       "server-signature RSA-PSS (2048 bits) server-digest SHA256")


class Gen:
    def __init__(self, seed, start):
        self.r = random.Random(seed)
        self.t = start
        self.pids = {}
        self.out = []
        self.inode = 0x74000

    def tick(self, lo=0.0, hi=0.4):
        self.t += self.r.uniform(lo, hi)

    def ts(self):
        tm = time.localtime(self.t)
        return "%s %02d %02d:%02d:%02d" % (MONTHS[tm.tm_mon - 1], tm.tm_mday, tm.tm_hour,
                                            tm.tm_min, tm.tm_sec)

    def pid(self, svc):
        if svc not in self.pids or self.r.random() < 0.01:
            self.pids[svc] = self.r.randint(1000, 60000)
        return self.pids[svc]

    def log(self, svc, text):
        self.out.append(f"{self.ts()} mail postfix/{svc}[{self.pid(svc)}]: {text}\n")

    def qid(self):
        self.inode += self.r.randint(1, 40)
        if self.r.random() < 0.5:  # short: 5 hex digits of usec + inode in hex
            return "%05X%X" % (self.r.randint(0, 0xFFFFF), self.inode)
        sec = int(self.t)
        s = ""
        for _ in range(6):
            s = LONG_ALPHABET[sec % 52] + s
            sec //= 52
        us = self.r.randint(0, 52 ** 4 - 1)
        u = ""
        for _ in range(4):
            u = LONG_ALPHABET[us % 52] + u
            us //= 52
        ino = self.inode
        i = ""
        while ino:
            i = LONG_ALPHABET[ino % 51] + i
            ino //= 51
        return s + u + "z" + i

    def ip(self):
        return "%d.%d.%d.%d" % (self.r.choice([192, 198, 203, 185, 45, 91]),
                                self.r.randint(0, 255), self.r.randint(0, 255),
                                self.r.randint(1, 254))

    def addr(self, domains):
        u = self.r.choice(USERS)
        if self.r.random() < 0.002:
            u = '"' + u.replace(".", " ") + ' x"'
        return f"{u}@{self.r.choice(domains)}"

    def delays(self):
        a, b, c, d = (round(self.r.uniform(0, x), 2) for x in (0.3, 0.05, 0.2, 0.6))
        fmt = lambda v: ("%g" % v)
        return "%s" % fmt(round(a + b + c + d, 2)), "/".join(fmt(v) for v in (a, b, c, d))

    # ---- sessions -------------------------------------------------------------------------

    def client(self):
        if self.r.random() < 0.3:
            ip = self.ip()
            return "unknown", ip
        ip = self.ip()
        return f"mail-{self.r.randint(1, 999)}.{self.r.choice(REMOTE)}", ip

    def postscreen(self, ip, port, verdict):
        self.log("postscreen", f"CONNECT from [{ip}]:{port} to [203.0.113.25]:25")
        if verdict == "old":
            self.log("postscreen", f"PASS OLD [{ip}]:{port}")
        elif verdict == "new":
            self.tick(0, 0.1)
            self.log("postscreen", f"PASS NEW [{ip}]:{port}")
        else:
            self.log("dnsblog", f"addr {ip} listed by domain zen.spamhaus.org as 127.0.0.{self.r.choice([2, 3, 4, 11])}")
            self.log("postscreen", f"DNSBL rank {self.r.randint(2, 6)} for [{ip}]:{port}")
            self.log("postscreen", f"NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.7.1 Service "
                     f"unavailable; client [{ip}] blocked using zen.spamhaus.org; "
                     f"from=<{self.addr(REMOTE)}>, to=<{self.addr(DOMAINS[:3])}>, proto=ESMTP, "
                     f"helo=<{self.r.choice(SPAM_HELOS)}>")
            self.log("postscreen", f"DISCONNECT [{ip}]:{port}")

    def inbound(self):
        host, ip = self.client()
        port = self.r.randint(1024, 65535)
        self.postscreen(ip, port, "old" if self.r.random() < 0.7 else "new")
        self.log("smtpd", f"connect from {host}[{ip}]")
        if self.r.random() < 0.75:
            self.log("smtpd", f"Anonymous TLS connection established from {host}[{ip}]: {TLS}")
        q = self.qid()
        self.tick()
        self.log("smtpd", f"{q}: client={host}[{ip}]")
        mid = f"<{self.r.getrandbits(64):x}@{host}>"
        self.log("cleanup", f"{q}: message-id={mid}")
        rcpts = [self.addr(DOMAINS[:3]) for _ in range(1 if self.r.random() < 0.85 else 3)]
        self.log("qmgr", f"{q}: from=<{self.addr(REMOTE)}>, size={self.r.randint(2000, 200000)}, "
                 f"nrcpt={len(rcpts)} (queue active)")
        self.log("smtpd", f"disconnect from {host}[{ip}] ehlo=2 starttls=1 mail=1 "
                 f"rcpt={len(rcpts)} data=1 quit=1 commands={5 + len(rcpts)}")
        self.tick(0, 0.2)
        for rc in rcpts:
            d, ds = self.delays()
            orig = f", orig_to=<{self.r.choice(['info', 'sales', 'team'])}@example.com>" \
                if self.r.random() < 0.1 else ""
            if self.r.random() < 0.97:
                self.log("lmtp", f"{q}: to=<{rc}>{orig}, relay=mail.example.com[private/dovecot-lmtp], "
                         f"delay={d}, delays={ds}, dsn=2.0.0, status=sent (250 2.0.0 <{rc}> "
                         f"{self.r.getrandbits(48):x}Yj9kZwAA Saved)")
            else:
                self.log("lmtp", f"{q}: to=<{rc}>{orig}, relay=mail.example.com[private/dovecot-lmtp], "
                         f"delay={d}, delays={ds}, dsn=5.2.2, status=bounced (host "
                         f"mail.example.com[private/dovecot-lmtp] said: 552 5.2.2 <{rc}> Quota "
                         f"exceeded (mailbox for user is full) (in reply to end of DATA command))")
                self.bounce(q)
        self.log("qmgr", f"{q}: removed")

    def bounce(self, q):
        nq = self.qid()
        self.log("cleanup", f"{nq}: message-id=<{time.strftime('%Y%m%d%H%M%S', time.gmtime(self.t))}.{nq}@mail.example.com>")
        self.log("qmgr", f"{nq}: from=<>, size={self.r.randint(2500, 9000)}, nrcpt=1 (queue active)")
        self.log("bounce", f"{q}: sender non-delivery notification: {nq}")
        d, ds = self.delays()
        mx = self.r.choice(REMOTE)
        self.log("smtp", f"{nq}: to=<{self.addr(REMOTE)}>, relay=mx1.{mx}[{self.ip()}]:25, "
                 f"delay={d}, delays={ds}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as "
                 f"{self.r.getrandbits(40):X})")
        self.log("qmgr", f"{nq}: removed")

    def outbound(self):
        ip = f"10.1.{self.r.randint(0, 9)}.{self.r.randint(2, 250)}"
        user = self.addr(DOMAINS[:3])
        self.log("submission/smtpd", f"connect from unknown[{ip}]")
        self.log("submission/smtpd", f"Anonymous TLS connection established from unknown[{ip}]: {TLS}")
        q = self.qid()
        self.log("submission/smtpd", f"{q}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={user}")
        self.log("cleanup", f"{q}: message-id=<{self.r.getrandbits(80):x}@example.com>")
        rcpts = [self.addr(REMOTE) for _ in range(self.r.choice([1, 1, 1, 2, 4]))]
        self.log("qmgr", f"{q}: from=<{user}>, size={self.r.randint(1000, 3000000)}, "
                 f"nrcpt={len(rcpts)} (queue active)")
        self.log("submission/smtpd", f"disconnect from unknown[{ip}] ehlo=2 starttls=1 auth=1 "
                 f"mail=1 rcpt={len(rcpts)} data=1 quit=1 commands={6 + len(rcpts)}")
        done = True
        for i, rc in enumerate(rcpts):
            dom = rc.split("@")[1]
            mx = f"mx{self.r.randint(1, 3)}.{dom}"
            rip = self.ip() if self.r.random() < 0.8 else f"2001:db8:{self.r.randint(1, 0xffff):x}::{self.r.randint(1, 0xff):x}"
            self.tick(0, 0.6)
            if self.r.random() < 0.7:
                self.log("smtp", f"Trusted TLS connection established to {mx}[{rip}]:25: {TLS}")
            d, ds = self.delays()
            cu = f", conn_use={i + 1}" if i > 0 and self.r.random() < 0.5 else ""
            x = self.r.random()
            fill = dict(mx=mx, ip=rip, dom=dom, mid=f"{q}@example.com", rq=f"{self.r.getrandbits(36):X}")
            if x < 0.93:
                self.log("smtp", f"{q}: to=<{rc}>, relay={mx}[{rip}]:25{cu}, delay={d}, delays={ds}, "
                         f"dsn=2.0.0, status=sent ({self.r.choice(REMOTE_REPLIES_OK).format(**fill)})")
            elif x < 0.975:
                self.log("smtp", f"{q}: to=<{rc}>, relay={mx}[{rip}]:25{cu}, delay={d}, delays={ds}, "
                         f"dsn=4.7.1, status=deferred ({self.r.choice(REMOTE_DEFER).format(**fill)})")
                done = False
            else:
                self.log("smtp", f"{q}: to=<{rc}>, relay={mx}[{rip}]:25{cu}, delay={d}, delays={ds}, "
                         f"dsn=5.1.1, status=bounced ({self.r.choice(REMOTE_BOUNCE).format(**fill)})")
                self.bounce(q)
        if done:
            self.log("qmgr", f"{q}: removed")
        elif self.r.random() < 0.1:
            self.log("qmgr", f"{q}: from=<{user}>, status=expired, returned to sender")
            self.bounce(q)
            self.log("qmgr", f"{q}: removed")

    def rejected(self):
        host, ip = self.client()
        port = self.r.randint(1024, 65535)
        x = self.r.random()
        if x < 0.35:
            self.postscreen(ip, port, "dnsbl")
            return
        self.postscreen(ip, port, "new")
        self.log("smtpd", f"connect from {host}[{ip}]")
        if host == "unknown" and self.r.random() < 0.5:
            self.log("smtpd", f"warning: hostname {self.r.getrandbits(32):x}.dyn.example.net does not "
                     f"resolve to address {ip}: Name or service not known")
        helo = self.r.choice(SPAM_HELOS)
        if x < 0.8:
            rcpt = self.addr(DOMAINS[:3])
            text = self.r.choice(REJECTS).format(ip=ip, rcpt=rcpt, helo=helo)
            self.log("smtpd", f"NOQUEUE: reject: RCPT from {host}[{ip}]: {text}; "
                     f"from=<{self.addr(REMOTE)}> to=<{rcpt}> proto=ESMTP helo=<{helo}>")
            self.log("smtpd", f"disconnect from {host}[{ip}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4")
        else:
            stage = self.r.choice(["CONNECT", "EHLO", "AUTH", "STARTTLS"])
            if stage == "AUTH":
                self.log("smtpd", f"warning: {host}[{ip}]: SASL LOGIN authentication failed: "
                         f"UGFzc3dvcmQ6")
            self.log("smtpd", f"lost connection after {stage} from {host}[{ip}]")
            cmds = {"CONNECT": "commands=0", "EHLO": "ehlo=1 commands=1",
                    "AUTH": "ehlo=1 auth=0/1 commands=1/2",
                    "STARTTLS": "ehlo=1 starttls=0/1 commands=1/2"}[stage]
            self.log("smtpd", f"disconnect from {host}[{ip}] {cmds}")

    def generate(self, n):
        next_anvil = self.t + 600
        while len(self.out) < n:
            self.tick(0, 0.6)
            x = self.r.random()
            if x < 0.45:
                self.inbound()
            elif x < 0.60:
                self.outbound()
            else:
                self.rejected()
            if self.t > next_anvil:
                ip = self.ip()
                self.log("anvil", f"statistics: max connection rate {self.r.randint(1, 9)}/60s for "
                         f"(smtp:{ip}) at {self.ts()}")
                self.log("anvil", f"statistics: max connection count {self.r.randint(1, 5)} for "
                         f"(smtp:{ip}) at {self.ts()}")
                self.log("anvil", f"statistics: max cache size {self.r.randint(5, 80)} at {self.ts()}")
                next_anvil = self.t + 600
        return self.out[:n]


def run(argv, **kw):
    t = time.perf_counter()
    res = subprocess.run(argv, **kw)
    return res, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build-dir", default=os.path.join(SOURCE, "build-pflog-rel"))
    ap.add_argument("--log", default="/tmp/pflog-bench/maillog")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the generated log")
    ap.add_argument("--baseline-build-dir", help="another build to compare the events with")
    ap.add_argument("--uncached", type=int, default=2000,
                    help="uncached delivery lines timed per round")
    ap.add_argument("--events-only", action="store_true",
                    help="measure only the events (no pflogsumm)")
    args = ap.parse_args()

    bench = os.path.join(args.build_dir, "bench", "pflog_bench")
    pflogsumm = shutil.which("pflogsumm") or "/usr/sbin/pflogsumm"
    if not os.access(bench, os.X_OK):
        sys.exit(f"{bench}: not built (see the usage at the top of {__file__})")
    if not args.events_only and not os.access(pflogsumm, os.X_OK):
        sys.exit("pflogsumm not found: apt-get install pflogsumm")
    base = None
    if args.baseline_build_dir:
        base = os.path.join(args.baseline_build_dir, "bench", "pflog_bench")
        if not os.access(base, os.X_OK):
            sys.exit(f"{base}: not built")

    os.makedirs(os.path.dirname(args.log), exist_ok=True)
    t = time.perf_counter()
    # Start about a week ago, so that every timestamp is in the past (year inference).
    lines = Gen(args.seed, time.time() - 7 * 86400).generate(args.lines)
    with open(args.log, "w") as f:
        f.writelines(lines)
    size = os.path.getsize(args.log)
    print(f"generated {len(lines)} lines, {size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s: {args.log}")
    del lines

    if not args.events_only:
        parse_vs_pflogsumm(args, bench, pflogsumm, size)
    events(args, bench, base)
    if not args.keep:
        os.unlink(args.log)


EVENTS_RE = re.compile(r"RESULT_EVENTS delivery_lines=(\d+) cached_ns=(\d+) cached_hits=(\d+) "
                       r"uncached_lines=(\d+) uncached_ns=(\d+)")


def events(args, bench, base):
    """pfevent_line() per delivery line, cached and uncached; base's build alternating."""
    runs = [("this build", bench)] + ([("baseline", base)] if base else [])
    got = {name: [] for name, _ in runs}
    for r in range(args.rounds):
        for name, exe in (runs if r % 2 == 0 else runs[::-1]):
            res, _ = run([exe, "-e", args.log, "1", str(args.uncached)], capture_output=True,
                         text=True, check=True)
            m = EVENTS_RE.search(res.stdout)
            got[name].append(tuple(int(g) for g in m.groups()))
            print(f"round {r + 1} {name}: cached {got[name][-1][1] / 1000:.2f} us, "
                  f"uncached {got[name][-1][4] / 1000:.2f} us per delivery line")
    print()
    print(f"events: pfevent_line(), CPU time per delivery line, median of {args.rounds} rounds")
    print("| build | cached µs | uncached µs | delivery lines (with a Message-ID) | uncached lines |")
    print("|---|---:|---:|---:|---:|")
    for name, exe in runs:
        rows = got[name]
        med = lambda i: sorted(x[i] for x in rows)[len(rows) // 2]
        print(f"| {name} ({exe}) | {med(1) / 1000:.2f} | {med(4) / 1000:.2f} | "
              f"{rows[0][0]:,} ({rows[0][2]:,}) | {rows[0][3]:,} |")


def parse_vs_pflogsumm(args, bench, pflogsumm, size):
    res, _ = run([bench, "-t", args.log, str(args.rounds)], capture_output=True, text=True,
                 check=True)
    print(res.stdout, end="")
    m = re.search(r"RESULT lines=(\d+) bytes=(\d+) best_lines_per_sec=(\d+) median_lines_per_sec=(\d+)",
                  res.stdout)
    n, best, median = int(m.group(1)), int(m.group(3)), int(m.group(4))
    # Wall time of one process reading and parsing the file once (warm page cache, like pflogsumm's).
    walls = []
    for _ in range(3):
        _, w = run([bench, "-s", args.log], stdout=subprocess.DEVNULL, check=True)
        walls.append(w)
    wall = min(walls)
    res, psum = run([pflogsumm, args.log], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    text=True)
    if res.returncode != 0:
        sys.exit(f"pflogsumm failed: {res.stderr[-2000:]}")

    rows = [("pflog (parse only, median of %d rounds)" % args.rounds, n / median, median),
            ("pflog (parse only, best of %d rounds)" % args.rounds, n / best, best),
            ("pflog_bench -s process (read + parse once, best of 3)", wall, n / wall),
            ("pflogsumm process", psum, n / psum)]
    print()
    print(f"file: {args.log}, {n} lines, {size / 1e6:.1f} MB")
    print("| what | seconds | lines/s |")
    print("|---|---:|---:|")
    for what, s, r in rows:
        print(f"| {what} | {s:.3f} | {r:,.0f} |")
    print()
    print(f"ratio, wall time (pflogsumm / pflog_bench process): {psum / wall:.1f}x")
    print(f"ratio, lines/s (pflog parse median / pflogsumm): {median / (n / psum):.1f}x")


if __name__ == "__main__":
    main()
