"""The federation's DNS resolver (federation/resolver.c, libunbound) against a real
authoritative server: a private Knot DNS on loopback, the resolver pointed at it as the
dns_server setting does (tests/tools/dnslookup drives it):

- the TXT records fedrec.c and DKIM read: one string, several strings concatenated, several
  records, none (NODATA, NXDOMAIN), names in any case and with a final dot;
- answers come from the cache until their TTL runs out, and fresh from the server after,
  also when the zone changed meanwhile; the cache keeps no answer longer than its maximum;
- a server that does not answer is a temporary failure within the timeout;
- lookups of one name by several threads at once cost one query (a server of the test's
  own that answers slowly, with a TTL of 0 so that nothing is cached, counts them).
"""
import socket
import struct
import subprocess
import threading
import time
import unittest

from e2e import main
from msgsandbox import Sandbox, paths
from msgsandbox.core import free_port
from msgsandbox.knot import available

MSR = '"v=MSR1; u=https://status.example.org/api/v1/federation/reports"'


class SlowDns:
    """A DNS server on loopback (UDP) that answers every TXT query after delay seconds
    with one record "slow" of TTL 0, and counts the queries by name."""

    def __init__(self, delay):
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.server = "127.0.0.1@%d" % self.sock.getsockname()[1]
        self.counts = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def close(self):
        self.sock.close()

    def serve(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            threading.Timer(self.delay, self.answer, (query, peer)).start()

    def answer(self, query, peer):
        end = 12
        labels = []
        if 0 not in query[end:]:
            return  # too short to hold a name (a datagram of 0 bytes was seen): no answer
        while query[end] != 0:
            labels.append(query[end + 1:end + 1 + query[end]].decode().lower())
            end += 1 + query[end]
        question = query[12:end + 5]
        with self.lock:
            name = ".".join(labels)
            self.counts[name] = self.counts.get(name, 0) + 1
        text = b"slow"
        header = query[:2] + struct.pack(">HHHHH", 0x8400 | (query[2] & 1) << 8, 1, 1, 0, 0)
        record = struct.pack(">HHHIH", 0xC00C, 16, 1, 0, len(text) + 1) + bytes([len(text)])
        try:
            self.sock.sendto(header + question + record + text, peer)
        except OSError:
            pass


class ResolverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not available():
            print("skipped: knotd is not installed (scripts/deps)")
            raise SystemExit(77)
        cls.sb = Sandbox()
        cls.serial = 1
        cls.dns = cls.sb.knot({"example.org": cls.records("one", "one")})

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    @staticmethod
    def records(short, long):
        return [f"_msgstatus 3600 IN TXT {MSR}",
                'split 3600 IN TXT "v=MSK1; k=ed25519; " "p=JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="',
                'two 3600 IN TXT "first"', 'two 3600 IN TXT "second"',
                f'short 2 IN TXT "{short}"', f'long 3600 IN TXT "{long}"',
                'empty 3600 IN A 127.0.0.1']

    def change(self, short, long):
        type(self).serial += 1
        self.dns.set_zone("example.org", self.records(short, long), self.serial)

    def lookup(self, *steps, server=None, timeout_ms=3000, max_ttl_ms=3600000):
        res = subprocess.run([paths.binary("tests/dnslookup"), "-s", server or self.dns.server,
                              "-t", str(timeout_ms), "-m", str(max_ttl_ms), *steps],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout.splitlines()

    def test_records(self):
        out = self.lookup("_msgstatus.example.org", "split.example.org", "two.example.org",
                          "empty.example.org", "nothing.example.org", "_MSGSTATUS.Example.ORG.")
        self.assertEqual(out[0], f"_msgstatus.example.org ok 1 [{MSR[1:-1]}]")
        self.assertEqual(out[1], "split.example.org ok 1 "
                         "[v=MSK1; k=ed25519; p=JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=]")
        self.assertIn(out[2], ("two.example.org ok 2 [first] [second]",
                               "two.example.org ok 2 [second] [first]"))
        self.assertEqual(out[3], "empty.example.org nodata 0")   # a name without TXT
        self.assertEqual(out[4], "nothing.example.org nodata 0")  # no such name
        self.assertEqual(out[5], f"_MSGSTATUS.Example.ORG. ok 1 [{MSR[1:-1]}]")
        # the last was the first again, in other case: from the cache
        self.assertEqual(out[6], "queries=5 hits=1 joined=0")

    def test_ttl_expiry(self):
        self.change("before", "before")
        # within one resolver: look up, change the zone, look up again at once (cached:
        # the old text), then after the 2 s TTL (the server's new text)
        proc = subprocess.Popen([paths.binary("tests/dnslookup"), "-s", self.dns.server,
                                 "short.example.org", "sleep:1000", "short.example.org",
                                 "sleep:2500", "short.example.org", "short.example.org"],
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline().strip()
        self.change("after", "after")
        rest = proc.communicate(timeout=60)[0].splitlines()
        self.assertEqual(first, "short.example.org ok 1 [before]")
        self.assertEqual(rest[0], "short.example.org ok 1 [before]", "cached within the TTL")
        self.assertEqual(rest[1], "short.example.org ok 1 [after]", "fresh once it expired")
        self.assertEqual(rest[2], "short.example.org ok 1 [after]")
        self.assertEqual(rest[3], "queries=2 hits=2 joined=0")

    def test_cache_max_ttl(self):
        # a record with a TTL of an hour, kept at most 1 s (by libunbound's cache too)
        self.change("x", "old")
        proc = subprocess.Popen([paths.binary("tests/dnslookup"), "-s", self.dns.server,
                                 "-m", "1000", "long.example.org", "sleep:2200",
                                 "long.example.org"], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline().strip()
        self.change("x", "new")
        rest = proc.communicate(timeout=60)[0].splitlines()
        self.assertEqual(first, "long.example.org ok 1 [old]")
        self.assertEqual(rest[0], "long.example.org ok 1 [new]")
        self.assertEqual(rest[1], "queries=2 hits=0 joined=0")

    def test_concurrent_lookups_of_one_name_are_one_query(self):
        dns = SlowDns(0.3)
        try:
            out = self.lookup("par:8:key.slow.example", "par:4:other.slow.example",
                              server=dns.server)
        finally:
            dns.close()
        self.assertEqual(sorted(out[:8]), ["key.slow.example ok 1 [slow]"] * 8)
        self.assertEqual(out[8:12], ["other.slow.example ok 1 [slow]"] * 4)
        # one query each, at the resolver and at the server; the others waited for it
        self.assertEqual(out[12], "queries=2 hits=0 joined=10")
        self.assertEqual(dns.counts, {"key.slow.example": 1, "other.slow.example": 1})

    def test_silent_server_is_a_temporary_failure(self):
        # a UDP port nobody listens on (nor TCP): no answer, a timeout, not "no record"
        start = time.monotonic()
        out = self.lookup("_msgstatus.example.org", server=f"127.0.0.1@{free_port()}",
                          timeout_ms=700)
        took = time.monotonic() - start
        self.assertTrue(out[0].startswith("_msgstatus.example.org tempfail 0"), out[0])
        self.assertLess(took, 10)


if __name__ == "__main__":
    main()
