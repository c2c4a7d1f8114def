"""statusd's pickup directory: event files left by producers (the Dovecot plugin, when
statusd cannot be reached) are stored and deleted; nothing is lost when PostgreSQL or
statusd is down meanwhile, bad files or records do not block the rest, and a file still
appended to under a lock is read only when its writer is done or gone."""
import fcntl
import json
import os
import time
import unittest

from e2e import event, main
from msgsandbox import Sandbox
from msgsandbox.core import wait_for


class PickupTest(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox()
        self.pg = self.sb.postgres()
        self.sd = self.sb.statusd(self.pg)

    def tearDown(self):
        self.sb.close()

    def count(self, tracking_id):
        return int(self.pg.scalar(
            f"SELECT count(*) FROM events WHERE tracking_id = '{tracking_id}'"))

    def test_file_is_stored_and_removed(self):
        good = [event(tracking_id="pick1", recipient=f"r{i}@example.net") for i in range(50)]
        raw = b"".join(__import__("json").dumps(e).encode() + b"\n" for e in good[:25])
        raw += b"{broken\n" + b"".join(__import__("json").dumps(e).encode() + b"\n"
                                       for e in good[25:])
        path = self.sd.drop(None, raw=raw)
        wait_for("the file to be picked up", lambda: not os.path.exists(path))
        self.assertEqual(self.count("pick1"), 50)
        self.assertIn("50 events stored, 1 rejected", self.sd.child.log())

    def test_files_wait_while_postgres_is_down(self):
        self.pg.stop()
        paths = [self.sd.drop([event(tracking_id="pick2", recipient=f"r{i}@example.net")])
                 for i in range(5)]
        time.sleep(2)
        self.assertTrue(all(os.path.exists(p) for p in paths), "kept while nothing is stored")
        self.pg.start()
        wait_for("all files to be picked up",
                 lambda: not any(os.path.exists(p) for p in paths), timeout=30)
        self.assertEqual(self.count("pick2"), 5)

    def test_files_left_while_statusd_is_down(self):
        self.sd.stop()
        evs = [event(tracking_id="pick3") for _ in range(3)]
        p1 = self.sd.drop(evs)
        p2 = self.sd.drop(evs)  # the same events twice: stored once
        self.sd.start()
        wait_for("pickup at start", lambda: not os.path.exists(p1) and not os.path.exists(p2))
        self.assertEqual(self.count("pick3"), 3)

    def test_temporary_and_hostile_entries(self):
        tmp = os.path.join(self.sd.pickup_dir, ".tmp-123-1-x.events")
        with open(tmp, "w") as f:
            f.write("{}\n")
        link = os.path.join(self.sd.pickup_dir, "100-1-link.events")
        os.symlink("/etc/passwd", link)
        good = self.sd.drop([event(tracking_id="pick4")])
        wait_for("the good file", lambda: not os.path.exists(good))
        wait_for("the symlink to be set aside", lambda: os.path.lexists(
            os.path.join(self.sd.pickup_dir, ".bad-100-1-link.events")))
        self.assertTrue(os.path.exists(tmp), "unfinished files are left alone")
        self.assertEqual(self.count("pick4"), 1)

    def test_open_file_is_read_when_its_writer_is_gone(self):
        """A ".open-" file is one a producer appends to under a lock: left alone while the
        lock is held, renamed and read once nobody holds it (its writer ended)."""
        name = "100-1-open.events"
        path = os.path.join(self.sd.pickup_dir, ".open-" + name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps(event(tracking_id="pick5")).encode() + b"\n")
            time.sleep(2.5)  # two scans (pickup_interval 1s)
            self.assertTrue(os.path.exists(path), "left alone while its writer holds it")
            self.assertEqual(self.count("pick5"), 0)
        finally:
            os.close(fd)  # the writer ends without renaming it
        wait_for("the file to be picked up", lambda: not os.path.exists(path)
                 and not os.path.exists(os.path.join(self.sd.pickup_dir, name)), timeout=15)
        self.assertEqual(self.count("pick5"), 1)
        self.assertIn(".open-100-1-open.events was left open by a process that ended",
                      self.sd.child.log())

    def test_empty_open_file_is_removed(self):
        """An empty ".open-" file nobody holds (a writer refused its lock, or one that could
        not write) is removed, not read, and not reported as left by a process that
        ended."""
        path = os.path.join(self.sd.pickup_dir, ".open-100-2-empty.events")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        good = self.sd.drop([event(tracking_id="pick6")])
        wait_for("the empty file to be removed", lambda: not os.path.exists(path), timeout=15)
        wait_for("the good file", lambda: not os.path.exists(good))
        self.assertFalse(os.path.exists(os.path.join(self.sd.pickup_dir,
                                                     "100-2-empty.events")))
        self.assertEqual(self.count("pick6"), 1)
        self.assertNotIn("100-2-empty.events was left open", self.sd.child.log())


if __name__ == "__main__":
    main()
