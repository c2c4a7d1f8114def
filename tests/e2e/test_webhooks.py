"""Webhooks: statusd POSTs every event of the log to the configured endpoints, signed
(HMAC-SHA256 over timestamp and body), in offset order, at least once, with retries and
backoff that survive a restart; a slow endpoint never slows ingest (docs/api.md,
"Webhooks").

The receiver is a real HTTP server in this process that checks every request's signature
and headers the way docs/api.md tells receivers to, and records what it got and answered.
"""
import base64
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import threading
import time
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from e2e import event, main
from msgsandbox import Sandbox
from msgsandbox.core import free_port, paths, wait_for

_names = itertools.count(1)


def verify(secret, headers, body, tolerance=300):
    """What a receiver does (docs/api.md): returns the event, or raises ValueError."""
    ts = headers.get("Msgstatus-Timestamp", "")
    sig = headers.get("Msgstatus-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
        raise ValueError(f"bad or stale timestamp {ts!r}")
    want = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(want, s[3:]) for s in sig.split(",")
               if s.startswith("v1=")):
        raise ValueError(f"bad signature {sig!r}")
    return json.loads(body)


class Receiver:
    """An HTTP endpoint on 127.0.0.1. respond(key, n) -> (status, delay seconds) decides
    the answer to its n-th request (from 1), for the event key (Msgstatus-Event)."""

    def __init__(self, secret, respond=None):
        self.secret = secret
        self.respond = respond or (lambda key, n: (200, 0))
        self.lock = threading.Lock()
        self.arrivals = []  # (key, monotonic time) of every request, at arrival
        self.answers = []   # (key, status) of every request answered
        self.acked = []     # events answered 2xx, in order
        self.bad = []       # requests that broke the rules
        rcv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Msgstatus-Event", "")
                with rcv.lock:
                    rcv.arrivals.append((key, time.monotonic()))
                    n = len(rcv.arrivals)
                try:
                    doc = verify(rcv.secret, self.headers, body)
                    if self.headers.get("Content-Type") != "application/json":
                        raise ValueError(f"Content-Type {self.headers.get('Content-Type')}")
                    if key != f"{doc['epoch']}-{doc['offset']}":
                        raise ValueError(f"Msgstatus-Event {key!r} for {doc}")
                    if not self.headers.get("User-Agent", "").startswith("msgstatus"):
                        raise ValueError(f"User-Agent {self.headers.get('User-Agent')!r}")
                    status, delay = rcv.respond(key, n)
                except (ValueError, KeyError) as e:
                    with rcv.lock:
                        rcv.bad.append(str(e))
                    doc, status, delay = None, 400, 0
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.wfile.flush()
                except OSError:
                    return  # statusd gave up waiting
                with rcv.lock:
                    rcv.answers.append((key, status))
                    if 200 <= status < 300:
                        rcv.acked.append(dict(doc, key=key))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/msgstatus"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self, tag):
        """Events acknowledged so far whose tracking id starts with tag."""
        with self.lock:
            return [d for d in self.acked if d["tracking_id"].startswith(tag)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def events(tag, n, start=0):
    return [event("queued", tracking_id=f"{tag}-{i}", recipient=f"r{i}@example.net",
                  sender="alice@example.org") for i in range(start, start + n)]


class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.secret = base64.b64encode(os.urandom(48))
        cls.secret_file = cls.sb.path("webhook.secret")
        with open(cls.secret_file, "wb") as f:
            f.write(cls.secret + b"\n")
        os.chmod(cls.secret_file, 0o600)
        # a statusd without webhooks: writes to the same log, and the baseline for speed
        cls.feeder = cls.sb.statusd(cls.pg, name="feeder")

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def receiver(self, respond=None):
        rcv = Receiver(self.secret, respond)
        self.addCleanup(rcv.close)
        return rcv

    def hooked(self, rcv, **settings):
        """A statusd delivering to rcv; returns once its cursor exists."""
        s = {"webhook_urls": rcv.url, "webhook_secret_file": self.secret_file,
             "webhook_timeout": "2s", "webhook_retry_max": "1s"}
        s.update(settings)
        sd = self.sb.statusd(self.pg, name=f"hooked{next(_names)}", settings=s)
        self.addCleanup(sd.stop)
        wait_for("the webhook cursor", lambda: self.cursor(rcv.url) is not None,
                 proc=sd.child.popen)
        return sd

    def cursor(self, url):
        v = self.pg.scalar(f"SELECT log_offset FROM webhook_cursors WHERE url = '{url}'")
        return None if v is None else int(v)

    def assert_in_order_once(self, got):
        offsets = [d["offset"] for d in got]
        self.assertEqual(offsets, sorted(offsets), "offset order")
        keys = [d["key"] for d in got]
        self.assertEqual(len(keys), len(set(keys)), "each event acknowledged once")

    def test_events_arrive_signed_in_offset_order(self):
        rcv = self.receiver()
        self.feeder.send_events(events("early", 3))  # before the endpoint was configured
        sd = self.hooked(rcv)
        sent = events("order", 30)
        self.assertTrue(all("ack" in r for r in sd.send_events(sent[:20])))
        self.assertTrue(all("ack" in r for r in self.feeder.send_events(sent[20:])))
        wait_for("30 deliveries", lambda: len(rcv.delivered("order")) == 30)
        got = rcv.delivered("order")
        self.assertEqual(sorted(d["event_id"] for d in got), sorted(e["id"] for e in sent))
        self.assertEqual(rcv.bad, [])
        self.assert_in_order_once(rcv.acked)
        self.assertEqual(rcv.delivered("early"), [], "a new endpoint starts at the head")
        doc = got[0]
        for field in ("offset", "epoch", "message_id", "tracking_id", "recipient", "status",
                      "timestamp", "details", "event_id"):
            self.assertIn(field, doc)
        self.assertEqual(doc["status"], "queued")
        wait_for("the cursor to follow", lambda: self.cursor(rcv.url) == got[-1]["offset"])
        with urllib.request.urlopen(sd.url + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        origin = rcv.url.split("/hooks")[0]
        self.assertIn(f'msgstatus_webhook_delivered_total{{endpoint="0",origin="{origin}"}} 30',
                      metrics)
        self.assertIn(f'msgstatus_webhook_lag_events{{endpoint="0",origin="{origin}"}} 0',
                      metrics)
        self.assertNotIn("/hooks", metrics, "only the origin is shown")
        sd.stop()

    def test_failures_are_retried_with_backoff_and_nothing_is_lost(self):
        script = {1: 500, 2: 302, 3: 404}  # then 200 for ever
        rcv = self.receiver(lambda key, n: (script.get(n, 200), 0))
        sd = self.hooked(rcv, webhook_retry_max="1s")
        sent = events("retry", 10)
        sd.send_events(sent)
        wait_for("10 deliveries", lambda: len(rcv.delivered("retry")) == 10, timeout=20)
        self.assertEqual(rcv.bad, [])
        failed = [(k, s) for k, s in rcv.answers if s != 200]
        self.assertEqual([s for _, s in failed], [500, 302, 404])
        self.assertEqual({k for k, _ in failed}, {rcv.acked[0]["key"]},
                         "the same event is retried until it is acknowledged")
        times = [t for k, t in rcv.arrivals if k == rcv.acked[0]["key"]]
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(0.8 < g < 3 for g in gaps), f"retry gaps {gaps}")
        got = rcv.delivered("retry")
        self.assertEqual(sorted(d["event_id"] for d in got), sorted(e["id"] for e in sent))
        self.assert_in_order_once(rcv.acked)
        log = sd.child.log()
        self.assertEqual(log.count("not delivered: HTTP status 500"), 1, "once per streak")
        self.assertNotIn("HTTP status 302", log)
        self.assertIn("delivering again", log)
        sd.stop()

    def test_cursor_survives_a_restart(self):
        rcv = self.receiver(lambda key, n: (200, 0.03))
        sd = self.hooked(rcv)
        sent = events("restart", 60)
        sd.send_events(sent)
        wait_for("some deliveries", lambda: len(rcv.delivered("restart")) >= 10)
        t0 = time.monotonic()
        sd.stop()
        self.assertLess(time.monotonic() - t0, 5)
        before = len(rcv.delivered("restart"))
        self.assertLess(before, 60, "statusd stopped with undelivered events")
        more = events("restart", 20, start=60)
        self.feeder.send_events(more)  # while the webhook's statusd is down
        time.sleep(0.3)
        self.assertEqual(len(rcv.delivered("restart")), before)
        sd.start()
        wait_for("the rest", lambda: len(rcv.delivered("restart")) == 80, timeout=20)
        got = rcv.delivered("restart")
        self.assertEqual(sorted(d["event_id"] for d in got),
                         sorted(e["id"] for e in sent + more))
        self.assert_in_order_once(rcv.acked)
        self.assertEqual(len(rcv.answers), len(rcv.acked), "no request went unanswered")
        self.assertEqual(rcv.bad, [])
        sd.stop()

    def test_a_slow_endpoint_does_not_slow_ingest(self):
        rcv = self.receiver(lambda key, n: (200, 3))  # longer than webhook_timeout
        sd = self.hooked(rcv, webhook_timeout="300ms", webhook_retry_max="1s")
        t0 = time.monotonic()
        self.assertTrue(all("ack" in r for r in self.feeder.send_events(events("base", 2000))))
        baseline = time.monotonic() - t0
        t0 = time.monotonic()
        self.assertTrue(all("ack" in r for r in sd.send_events(events("slow", 2000))))
        elapsed = time.monotonic() - t0
        print(f"\n  2000 events: {elapsed:.2f} s with a stuck webhook, "
              f"{baseline:.2f} s without", flush=True)
        # relative to the same load without the webhook: an absolute bound fails on a
        # busy machine (2.2 s against 2.1 s seen), not because ingest waited for the hook
        self.assertLess(elapsed, 2 * baseline + 0.5)
        wait_for("retries", lambda: len(rcv.arrivals) >= 3, timeout=10)
        keys = {k for k, _ in rcv.arrivals}
        self.assertEqual(len(keys), 1, "the first event is retried, not skipped")
        self.assertIn("Operation timed out", sd.child.log())
        t0 = time.monotonic()
        sd.stop()  # a request is in flight: it is abandoned promptly
        self.assertLess(time.monotonic() - t0, 4)

    def test_two_instances_deliver_each_event_once(self):
        rcv = self.receiver()
        one = self.hooked(rcv)
        two = self.hooked(rcv)
        wait_for("the standby", lambda: "standing by" in two.child.log())
        sent = events("pair", 20)
        two.send_events(sent[:10])
        one.send_events(sent[10:])
        wait_for("20 deliveries", lambda: len(rcv.delivered("pair")) == 20)
        one.stop()
        more = events("pair", 5, start=20)
        self.feeder.send_events(more)
        wait_for("the standby to take over", lambda: len(rcv.delivered("pair")) == 25,
                 timeout=15)
        self.assert_in_order_once(rcv.acked)
        self.assertEqual(sorted(d["event_id"] for d in rcv.delivered("pair")),
                         sorted(e["id"] for e in sent + more))
        two.stop()

    def test_bad_settings_are_refused_at_start(self):
        loose = self.sb.path("loose.secret")
        with open(loose, "wb") as f:
            f.write(self.secret)
        os.chmod(loose, 0o644)
        short = self.sb.path("short.secret")
        with open(short, "wb") as f:
            f.write(b"tooshort\n")
        os.chmod(short, 0o600)
        ok = "http://127.0.0.1:9/x"
        cases = [  # (webhook_urls, secret file, wanted in the error)
            ("ftp://example.org/hook", self.secret_file,
             ["webhook_urls", "ftp://example.org/hook", "http:// and https://"]),
            ("example.org/hook", self.secret_file, ["webhook_urls", "not a URL"]),
            (f"{ok}, https://example.org/h, {ok}", self.secret_file,
             ["webhook_urls", "listed twice"]),
            (ok, loose, ["webhook_secret_file", loose, "accessible to others"]),
            (ok, short, ["webhook_secret_file", "shorter than 32"]),
            (ok, self.sb.path("missing.secret"), ["webhook_secret_file", "No such file"]),
            (ok, "", ["webhook_urls needs webhook_secret_file"]),
        ]
        run_dir = self.sb.mkdir("bad")
        for urls, secret_file, wants in cases:
            conf = os.path.join(run_dir, "statusd.conf")
            with open(conf, "w") as f:
                f.write(f"events_socket = {run_dir}/events.sock\n"
                        f"http_listen = 127.0.0.1:{free_port()}\n"
                        f"database = {self.pg.conninfo}\n"
                        f"sql_dir = {os.path.join(paths.source, 'sql')}\n"
                        f"pickup_dir =\n"
                        f"webhook_urls = {urls}\n"
                        f"webhook_secret_file = {secret_file}\n")
            res = subprocess.run([paths.binary("statusd/statusd"), "-c", conf],
                                 capture_output=True, text=True, timeout=20)
            self.assertEqual(res.returncode, 1, f"{urls!r}: {res.stderr}")
            self.assertIn("fatal", res.stderr)
            for want in wants:
                self.assertIn(want, res.stderr, f"{urls!r}")
            self.assertNotIn("Sanitizer", res.stderr)


if __name__ == "__main__":
    main()
