"""PostgreSQL or statusd going away: nothing is acknowledged that is not stored, and after
recovery every event sent is stored exactly once (producers resend what was not acked)."""
import json
import select
import unittest

from e2e import event, main
from msgsandbox import Sandbox
from msgsandbox.core import wait_for


class OutageTest(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox()
        self.pg = self.sb.postgres()
        self.sd = self.sb.statusd(self.pg)

    def tearDown(self):
        self.sb.close()

    def pending(self):
        """statusd's msgstatus_ingest_pending: events read and not yet stored and acked."""
        for line in self.sd.http("/metrics")[1].splitlines():
            if line.startswith("msgstatus_ingest_pending "):
                return int(float(line.split()[1]))
        self.fail("no msgstatus_ingest_pending in /metrics")

    def wait_pending(self, n):
        """Wait until statusd has read n events that it cannot store yet."""
        wait_for(f"{n} events read and not stored", lambda: self.pending() == n, timeout=30)

    def stored_ids(self, tracking_id):
        return sorted(r[0] for r in self.pg.psql(
            f"SELECT event_id FROM events WHERE tracking_id = '{tracking_id}'"))

    def test_postgres_stopped_while_events_arrive(self):
        before = [event(tracking_id="pgdown") for _ in range(20)]
        self.assertTrue(all("ack" in r for r in self.sd.send_events(before)))

        self.pg.stop()
        during = [event(tracking_id="pgdown") for _ in range(200)]
        c = self.sd.client()
        c.send(during)
        self.wait_pending(len(during))  # statusd has read them all
        readable, _, _ = select.select([c.sock], [], [], 3.0)
        self.assertEqual(readable, [], "no reply may come while PostgreSQL is down")
        status, health = self.sd.http("/healthz")
        self.assertEqual(status, 503)
        self.assertEqual(health["database"], "down")

        self.pg.start()
        replies = c.replies(len(during))
        c.close()
        self.assertTrue(all("ack" in r for r in replies), replies[:3])
        self.assertEqual([r["seq"] for r in replies], list(range(1, len(during) + 1)))
        # A producer that lost its connection resends everything: still stored once.
        self.assertTrue(all("ack" in r for r in self.sd.send_events(before + during)))
        self.assertEqual(self.stored_ids("pgdown"), sorted(e["id"] for e in before + during))
        self.assertEqual(self.sd.http("/healthz")[0], 200)

    def test_statusd_killed_with_events_in_flight(self):
        evs = [event(tracking_id="killed", recipient=f"r{i}@example.net") for i in range(3000)]
        c = self.sd.client()
        c.send(evs)
        acked = 0
        try:
            # read a few replies, then kill statusd mid-stream
            for _ in range(10):
                json.loads(c.rfile.readline())
                acked += 1
        finally:
            self.sd.kill()
            c.close()
        self.sd.start()
        # the producer resends everything it had not seen acknowledged (and more: harmless)
        replies = self.sd.send_events(evs)
        self.assertTrue(all("ack" in r for r in replies))
        self.assertEqual(self.stored_ids("killed"), sorted(e["id"] for e in evs))

    def test_statusd_stopped_while_postgres_is_down(self):
        """SIGTERM with events read but not storable: statusd gives up after its grace
        period, exits 0 and frees everything (the sandbox fails the test on a leak report
        or another exit status); nothing was acknowledged, and the resent events are
        stored once statusd and PostgreSQL are back."""
        self.pg.stop()
        evs = [event(tracking_id="stopped") for _ in range(50)]
        c = self.sd.client()
        c.send(evs[:25])
        self.wait_pending(25)  # the first batch, which the database worker cannot store
        c.send(evs[25:])  # these wait in the next batch
        self.wait_pending(50)
        self.sd.stop(timeout=30)
        self.assertIn("stopping without storing the last events read", self.sd.child.log())
        self.assertEqual(c.rfile.read(), b"", "nothing may be acknowledged")
        c.close()
        self.pg.start()
        self.sd.start()
        self.assertTrue(all("ack" in r for r in self.sd.send_events(evs)))
        self.assertEqual(self.stored_ids("stopped"), sorted(e["id"] for e in evs))

    def test_statusd_starts_before_postgres(self):
        self.sd.stop()
        self.pg.stop()
        self.sd.start(wait_db=False)
        self.assertEqual(self.sd.http("/healthz")[0], 503)
        evs = [event(tracking_id="late") for _ in range(5)]
        c = self.sd.client()
        c.send(evs)
        self.wait_pending(len(evs))  # read before PostgreSQL is there
        self.pg.start()
        replies = c.replies(len(evs))
        c.close()
        self.assertTrue(all("ack" in r for r in replies))
        self.assertEqual(len(self.stored_ids("late")), 5)


if __name__ == "__main__":
    main()
