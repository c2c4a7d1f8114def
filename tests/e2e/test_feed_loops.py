"""The feeds on several event loops (feed_threads, docs/performance.md "Fan-out on both
cores"): WebSocket and SSE subscribers spread over the loops each get every event they may
see, exactly once and in log order, and nothing of another user; resume and catch-up from
the database work on every loop; feed_max_per_user holds across the loops; /metrics counts
the subscribers of every loop; statusd stops cleanly with subscribers on all of them.

The front hands feed connections to the loops in turn (the first loop included), so the
n-th feed connection of a statusd with feed_threads = 3 is served by loop n mod 3."""
import json
import unittest

from e2e import event, main
from msgsandbox import Sandbox
from msgsandbox.core import wait_for

from test_api import Sse, ws_close_code, ws_connect

ALICE, MALLORY, CAROL = "alice@example.org", "mallory@example.org", "carol@example.com"
ADMIN = "postmaster@example.org"  # administers example.org: alice's and mallory's mail
LOOPS = 3


def live_subscribers(sd):
    for line in sd.http("/metrics")[1].splitlines():
        if line.startswith("msgstatus_feed_live_subscribers "):
            return int(float(line.split()[1]))
    raise AssertionError("no msgstatus_feed_live_subscribers in /metrics")


class Subscriber:
    """A WebSocket or SSE subscriber that collects (offset, tracking_id) of its events."""

    def __init__(self, sd, kind, user, token, query=""):
        self.kind, self.user = kind, user
        if kind == "ws":
            self.ws = ws_connect(sd, token, query)
            self.hello = json.loads(self.ws.recv())
        else:
            self.sse = Sse(sd, token, query=query)
            ev, _, self.hello = self.sse.next()
            assert ev == "hello", ev
        assert self.hello["type"] == "hello", self.hello

    def next(self):
        if self.kind == "ws":
            doc = json.loads(self.ws.recv())
        else:
            ev, eid, doc = self.sse.next()
            assert (ev, eid) == ("status", f"{self.hello['epoch']}-{doc['offset']}"), (ev, eid)
        assert doc["type"] == "event", doc
        return doc["offset"], doc["tracking_id"]

    def take(self, n):
        return [self.next() for _ in range(n)]

    def close(self):
        (self.ws if self.kind == "ws" else self.sse).close()


class FeedLoopsTest(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox()
        self.pg = self.sb.postgres()

    def tearDown(self):
        self.sb.close()

    def send(self, sd, evs):
        replies = sd.send_events(evs)
        self.assertTrue(all("ack" in r for r in replies), replies)

    def owners_after(self, start):
        """Log offsets after start by the owner of their message, in offset order."""
        rows = self.pg.psql("SELECT e.log_offset, m.owner FROM events e JOIN messages m ON "
                            f"m.id = e.message WHERE e.log_offset > {start} "
                            "ORDER BY e.log_offset")
        out = {}
        for off, owner in rows:
            out.setdefault(owner, []).append(int(off))
        return out

    def make_admin(self):
        self.pg.psql(f"INSERT INTO users (name, domain_admin) VALUES ('{ADMIN}', "
                     f"ARRAY['example.org']) ON CONFLICT (name) DO UPDATE SET "
                     f"domain_admin = EXCLUDED.domain_admin")

    def traffic(self, sd, batch):
        """alice, mallory and carol each send to a few recipients, in several batches."""
        for b in range(4):
            evs = []
            for who, tag in ((ALICE, "a"), (MALLORY, "m"), (CAROL, "c")):
                tid = f"{tag}{batch}-{b}"
                for r in ("bob@example.net", "dave@example.net"):
                    evs.append(event("queued", tracking_id=tid, recipient=r, sender=who,
                                     sasl_user=who))
                    evs.append(event("delivered", tracking_id=tid, recipient=r))
            self.send(sd, evs)

    def test_every_subscriber_gets_what_it_may_see_once_in_order(self):
        sd = self.sb.statusd(self.pg, settings={"feed_threads": str(LOOPS)})
        self.make_admin()
        start = sd.http("/healthz")[1]["log"]["head"]
        users = (ALICE, MALLORY, ADMIN)
        tokens = {u: sd.token(u) for u in users}
        subs = []
        # connection i is on loop i % LOOPS: each loop gets every user, on both transports
        for i in range(4 * LOOPS):
            user = users[(i // LOOPS) % len(users)]
            subs.append(Subscriber(sd, "ws" if (i + i // LOOPS) % 2 == 0 else "sse", user,
                                   tokens[user]))
        wait_for("every subscriber live", lambda: live_subscribers(sd) >= len(subs))
        self.traffic(sd, 1)
        owners = self.owners_after(start)
        self.assertEqual(sorted(owners), sorted([ALICE, MALLORY, CAROL]))
        want = {ALICE: owners[ALICE], MALLORY: owners[MALLORY],
                ADMIN: sorted(owners[ALICE] + owners[MALLORY])}
        for i, s in enumerate(subs):
            got = s.take(len(want[s.user]))
            self.assertEqual([o for o, _ in got], want[s.user],
                             f"subscriber {i} ({s.kind}, {s.user})")
        # nothing else came in between (carol's events are older than these): each
        # subscriber's next event is the first of these it may see
        self.send(sd, [event("queued", tracking_id=f"fence-{w[0]}", recipient="bob@example.net",
                             sender=w, sasl_user=w) for w in (ALICE, MALLORY)])
        fence = {ALICE: "fence-a", MALLORY: "fence-m", ADMIN: "fence-a"}
        for i, s in enumerate(subs):
            self.assertEqual(s.next()[1], fence[s.user], f"subscriber {i} ({s.kind}, {s.user})")
        for s in subs:
            s.close()
        sd.stop()

    def test_resume_and_catch_up_from_the_database_on_every_loop(self):
        first = self.sb.statusd(self.pg, name="statusd-a", settings={"feed_threads": "1"})
        for batch in range(10):
            self.traffic(first, batch)
        first.stop()
        # a statusd with nothing in memory: every resume is read from PostgreSQL
        sd = self.sb.statusd(self.pg, name="statusd-b", settings={"feed_threads": str(LOOPS)})
        health = sd.http("/healthz")[1]["log"]
        head, epoch = health["head"], health["epoch"]
        mine = self.owners_after(0)[ALICE]
        token = sd.token(ALICE)
        resumes = [0, mine[3], mine[len(mine) // 2], 0, mine[-2], head]
        subs = []
        for i, resume in enumerate(resumes):
            kind = "sse" if i % 2 == 0 else "ws"
            subs.append((resume, Subscriber(sd, kind, ALICE, token,
                                            f"?offset={resume}&epoch={epoch}")))
        for resume, s in subs:
            self.assertEqual(s.hello["from"], resume)
            want = [o for o in mine if o > resume]
            self.assertEqual([o for o, _ in s.take(len(want))], want, f"from {resume}")
        # then live, on every loop
        wait_for("every subscriber live", lambda: live_subscribers(sd) >= len(subs))
        self.send(sd, [event("queued", tracking_id="live", recipient="bob@example.net",
                             sender=ALICE, sasl_user=ALICE)])
        for resume, s in subs:
            off, tid = s.next()
            self.assertEqual(tid, "live", f"from {resume}")
            self.assertGreater(off, head)
            s.close()
        sd.stop()

    def test_feed_max_per_user_holds_across_loops(self):
        sd = self.sb.statusd(self.pg, settings={"feed_threads": str(LOOPS),
                                                "feed_max_per_user": "2"})
        token = sd.token(ALICE)
        a = ws_connect(sd, token)  # loop 0
        json.loads(a.recv())
        b = Sse(sd, token)  # loop 1
        self.assertEqual(b.next()[0], "hello")
        c = ws_connect(sd, token)  # loop 2: the third of alice's
        self.assertEqual(ws_close_code(c)[0], 4429)
        c.close()
        a.close()
        wait_for("a closed feed to be given back", lambda: live_subscribers(sd) == 1)
        d = ws_connect(sd, token)  # loop 0 again: two of alice's open
        self.assertEqual(json.loads(d.recv())["type"], "hello")
        e = ws_connect(sd, token)  # loop 1
        self.assertEqual(ws_close_code(e)[0], 4429)
        for x in (b, d, e):
            x.close()
        sd.stop()


if __name__ == "__main__":
    main()
