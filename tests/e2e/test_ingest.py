"""statusd's event socket: validation, replies in order, idempotence, framing, batching.

Each bad record must get a clear error while the connection and the other records go on,
and PostgreSQL must hold exactly the good events (docs/protocol.md).
"""
import json
import socket
import threading
import unittest

from e2e import event, main
from msgsandbox import Sandbox


class IngestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg, settings={"ingest_record_max": "4k"})

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def count(self, where="true"):
        return int(self.pg.scalar(f"SELECT count(*) FROM events WHERE {where}"))

    def test_malformed_records_are_answered_and_the_rest_stored(self):
        good = [event(tracking_id="mal", recipient=f"r{i}@example.net") for i in range(4)]
        cases = [  # (raw record, substring of the error)
            (b"this is not json", "bad JSON"),
            (json.dumps(dict(good[0], type="exploded")).encode(), "unknown event type"),
            (json.dumps({k: v for k, v in good[0].items() if k != "recipient"}).encode(),
             "missing field: recipient"),
            (json.dumps({k: v for k, v in good[0].items() if k != "id"}).encode(),
             "missing field: id"),
            (json.dumps(dict(good[0], v=2)).encode(), "unsupported protocol version"),
            (json.dumps(dict(good[0], recipient="x" * 5000)).encode(), "record too long"),
            (b'{"v":1,"id":"u1","type":"read","time":"2026-01-01T00:00:00Z","source":"t",'
             b'"tracking_id":"a","recipient":"\xff\xfe"}', "bad JSON"),
            (json.dumps(dict(good[0], recipient="a\u0000b")).encode(), "NUL"),
            (json.dumps(dict(good[0], time="yesterday")).encode(), "time:"),
            (json.dumps(dict(good[0], time="2001-01-01T00:00:00Z")).encode(), "retention"),
            (json.dumps(dict(good[0], details={"a": {"b": 1}})).encode(), "bad JSON"),
            (b"[1,2,3]", "expected a JSON object"),
        ]
        # Interleave good and bad: good, bad, good, bad, ... then the remaining bad ones.
        plan = []  # (raw record, None for an ack or the error substring)
        for i, (raw, err) in enumerate(cases):
            if i < len(good):
                plan.append((json.dumps(good[i]).encode(), None))
            plan.append((raw, err))
        c = self.sd.client()
        c.send_raw(b"".join(raw + b"\n" for raw, _ in plan))
        replies = c.replies(len(plan))
        c.close()
        for i, ((raw, err), rep) in enumerate(zip(plan, replies)):
            self.assertEqual(rep["seq"], i + 1, "replies come in order")
            if err is None:
                self.assertIn("ack", rep, f"record {i + 1}: got {rep}, want an ack")
            else:
                self.assertIn("error", rep, f"record {i + 1}: got {rep}, want an error")
                self.assertIn(err, rep["error"], f"record {i + 1}: got {rep['error']!r}")
        self.assertEqual(self.count("tracking_id = 'mal'"), 4)

    def test_ingest_end_in_a_session_without_report_tables(self):
        # a session set up before schema 016 has no report tables (009 made them at the
        # first report): the end of its batches must not ask for them by name
        rows = self.pg.psql("BEGIN; SELECT msgstatus_ingest_end(head, 0) = head FROM log_head;"
                            " ROLLBACK")
        self.assertEqual(rows, [["t"]])

    def test_duplicates_are_acknowledged_and_stored_once(self):
        evs = [event(tracking_id="dup", recipient=f"r{i}@example.net") for i in range(10)]
        self.assertTrue(all("ack" in r for r in self.sd.send_events(evs + evs[::-1])))
        self.assertTrue(all("ack" in r for r in self.sd.send_events(evs)))
        self.assertEqual(self.count("tracking_id = 'dup'"), 10)

    def test_offsets_are_gap_free_and_increasing(self):
        evs = [event(tracking_id="off", recipient=f"r{i}@example.net") for i in range(50)]
        self.sd.send_events(evs)
        offs = [int(r[0]) for r in self.pg.psql(
            "SELECT log_offset FROM events ORDER BY log_offset")]
        self.assertEqual(offs, list(range(1, len(offs) + 1)), "offsets 1..N with no gap")

    def test_record_split_across_writes_and_crlf(self):
        ev = json.dumps(event(tracking_id="split")).encode()
        c = self.sd.client()
        for i in range(0, len(ev), 7):
            c.send_raw(ev[i:i + 7])
        c.send_raw(b"\r\n")
        self.assertIn("ack", c.replies(1)[0])
        c.close()

    def test_incomplete_last_record(self):
        c = self.sd.client()
        c.send_raw(json.dumps(event(tracking_id="inc")).encode())  # no newline
        c.sock.shutdown(socket.SHUT_WR)
        rep = c.replies(1)[0]
        c.close()
        self.assertIn("incomplete record", rep.get("error", ""))
        self.assertEqual(self.count("tracking_id = 'inc'"), 0)

    def test_oversized_record_does_not_break_the_stream(self):
        c = self.sd.client()
        c.send_raw(b"{" + b"x" * 100000 + b"}\n")
        c.send_raw(json.dumps(event(tracking_id="big")).encode() + b"\n")
        r1, r2 = c.replies(2)
        c.close()
        self.assertIn("too long", r1["error"])
        self.assertIn("ack", r2)

    def test_many_events_over_concurrent_connections(self):
        n, conns = 5000, 4
        results = {}

        def producer(k):
            evs = [event(tracking_id=f"bulk{k}", recipient=f"r{i}@example.net")
                   for i in range(n)]
            results[k] = self.sd.send_events(evs)
        threads = [threading.Thread(target=producer, args=(k,)) for k in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for k in range(conns):
            self.assertEqual(len(results[k]), n)
            self.assertTrue(all("ack" in r for r in results[k]))
            self.assertEqual([r["seq"] for r in results[k]], list(range(1, n + 1)))
        self.assertEqual(self.count("tracking_id LIKE 'bulk%'"), n * conns)


if __name__ == "__main__":
    main()
