"""statusd's API and live feeds with real HTTP, WebSocket and SSE clients on a private
PostgreSQL: resume from every offset gives exactly the missing events; two statusd
instances share live events; a user sees only their own messages on every endpoint and
feed; receipts only from recipients; receipts off means no read event reaches anyone;
presence only for users who opted in; malformed requests and frames get clear errors and
the server goes on (docs/api.md)."""
import http.client
import json
import os
import socket
import struct
import threading
import time
import unittest
import urllib.parse

import websocket  # Debian's python3-websocket

from e2e import event, main
from msgsandbox import Sandbox
from msgsandbox.core import wait_for

ALICE, BOB, CAROL, MALLORY = ("alice@example.org", "bob@example.net", "carol@example.com",
                              "mallory@example.org")


class Sse:
    """A minimal Server-Sent Events client on http.client."""

    def __init__(self, sd, token=None, last_event_id=None, query="", timeout=10):
        self.conn = http.client.HTTPConnection("127.0.0.1", sd.http_port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = "Bearer " + token
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/api/v1/messages/events" + query, headers=headers)
        self.resp = self.conn.getresponse()

    def next(self):
        """The next record as (event, id, data dict); comments are skipped."""
        ev, eid, data = None, None, []
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("stream ended")
            line = line.decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line == "":
                if data or ev:
                    self.text = "\n".join(data)  # the data as sent, for byte comparisons
                    return ev, eid, json.loads(self.text) if data else None
                continue
            key, _, value = line.partition(": ")
            if key == "event":
                ev = value
            elif key == "id":
                eid = value
            elif key == "data":
                data.append(value)

    def close(self):
        self.conn.close()


def ws_connect(sd, token=None, query="", **kw):
    url = f"ws://127.0.0.1:{sd.http_port}/api/v1/messages/stream"
    if token:
        query += ("&" if query else "?") + "access_token=" + urllib.parse.quote(token)
    return websocket.create_connection(url + query, timeout=10, **kw)


def ws_close_code(ws):
    """Read frames until the server's close frame; return (code, reason). Reads the frames
    itself: the library would answer the close, on a socket the server has already shut."""
    while True:
        frame = ws.frame_buffer.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            return code, data[2:].decode(errors="replace")


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.alice = cls.sd.token(ALICE)
        cls.bob = cls.sd.token(BOB)
        cls.mallory = cls.sd.token(MALLORY)
        # alice sends to bob and carol; mallory sends to bob
        cls.send([event("queued", tracking_id="am1", recipient=r, sender=ALICE, sasl_user=ALICE,
                        message_id="<am1@example.org>", offset_ms=-9000) for r in (BOB, CAROL)])
        cls.send([event("queued", tracking_id="mm1", recipient=BOB, sender=MALLORY,
                        sasl_user=MALLORY, offset_ms=-9000)])

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    @classmethod
    def send(cls, evs, sd=None):
        replies = (sd or cls.sd).send_events(evs)
        assert all("ack" in r for r in replies), replies

    def head(self):
        return self.sd.http("/healthz")[1]["log"]["head"]

    # --- authorization ---------------------------------------------------------------

    def test_each_user_sees_only_their_own(self):
        code, doc = self.sd.status("am1", ALICE)
        self.assertEqual(code, 200)
        for who in (MALLORY, BOB):  # a recipient is not the sender either
            code, doc = self.sd.status("am1", who)
            self.assertEqual(code, 404, f"{who}: {doc}")
        code, doc = self.sd.api("/api/v1/messages", self.mallory)
        self.assertEqual(code, 200)
        self.assertEqual([m["tracking_id"] for m in doc["messages"]], ["mm1"])
        code, doc = self.sd.api("/api/v1/messages?recipient=bob@example.net", self.alice)
        self.assertEqual([m["tracking_id"] for m in doc["messages"]], ["am1"])

    def test_domain_admin_sees_the_domain(self):
        self.sd_user_admin(ALICE.split("@")[1], "postmaster@example.org")
        token = self.sd.token("postmaster@example.org")
        code, doc = self.sd.api("/api/v1/messages", token)
        self.assertEqual(sorted(m["tracking_id"] for m in doc["messages"]), ["am1", "mm1"])

    def sd_user_admin(self, domain, user):
        self.pg.psql(f"INSERT INTO users (name, domain_admin) VALUES ('{user}', "
                     f"ARRAY['{domain}']) ON CONFLICT (name) DO UPDATE SET "
                     f"domain_admin = EXCLUDED.domain_admin")

    def test_tokens(self):
        cases = [  # (token, expected status)
            (None, 401),
            ("garbage", 401),
            (self.sd.token(ALICE, ttl=-10), 401),  # expired
            (self.sd.token(ALICE, now=int(time.time()) + 3600), 401),  # issued in the future
            (self.sd.token(ALICE, ttl=40 * 86400), 401),  # longer than allowed
            (self.alice[:-3] + "AAA", 401),  # bad signature
            (self.alice, 200),
        ]
        for token, want in cases:
            code, doc = self.sd.api("/api/v1/messages", token)
            self.assertEqual(code, want, f"{str(token)[:30]}: {doc}")
            if want == 401:
                self.assertEqual(doc["status"], 401)

    # --- receipts, privacy, presence -------------------------------------------------

    def test_receipts(self):
        code, doc = self.sd.api("/api/v1/messages/am1/receipt", self.mallory, method="POST")
        self.assertEqual(code, 404, doc)  # not a recipient
        code, doc = self.sd.api("/api/v1/messages/am1/receipt", self.bob, method="POST",
                                body={"x": 1})
        self.assertEqual(code, 400, doc)
        code, doc = self.sd.api("/api/v1/messages/am1/receipt", self.bob, method="POST")
        self.assertEqual(code, 202, doc)
        code, doc = self.sd.status("am1", ALICE)
        got = {r["recipient"]: r["status"] for r in doc["recipients"]}
        self.assertEqual(got, {BOB: "read", CAROL: "queued"})

    def test_receipts_off(self):
        carol = self.sd.token(CAROL)
        code, doc = self.sd.api("/api/v1/preferences", carol, method="PUT",
                                body={"read_receipts": False})
        self.assertEqual((code, doc["read_receipts"]), (200, False))
        try:
            # neither the plugin's read event nor a manual receipt gets through
            self.send([event("read", tracking_id="am1", recipient=CAROL)])
            code, doc = self.sd.api("/api/v1/messages/am1/receipt", carol, method="POST")
            self.assertEqual(code, 409, doc)
            code, doc = self.sd.status("am1", ALICE)
            self.assertEqual({r["recipient"]: r["status"] for r in doc["recipients"]}[CAROL],
                             "queued")
            self.assertEqual(self.pg.scalar(
                f"SELECT count(*) FROM events WHERE recipient = '{CAROL}' AND type = 7"), "0")
        finally:
            self.sd.api("/api/v1/preferences", carol, method="PUT",
                        body={"read_receipts": True})

    def test_presence_is_opt_in(self):
        code, doc = self.sd.api("/api/v1/presence", self.bob, method="POST",
                                body={"state": "online"})
        self.assertEqual(code, 200, doc)
        code, doc = self.sd.api("/api/v1/presence/" + BOB, self.alice)
        self.assertEqual(code, 404, "hidden until bob opts in")
        self.sd.api("/api/v1/preferences", self.bob, method="PUT", body={"presence": True})
        self.sd.api("/api/v1/presence", self.bob, method="POST",
                    body={"state": "typing", "to": ALICE})
        code, doc = self.sd.api("/api/v1/presence/" + BOB.upper(), self.alice)
        self.assertEqual(code, 200, doc)
        self.assertEqual((doc["online"], doc["typing_to"]), (True, ALICE))
        # an IMAP login reported by the Dovecot plugin
        self.send([{"v": 1, "id": "pres1", "type": "offline", "time": event()["time"],
                    "source": "plugin", "recipient": BOB}])
        code, doc = self.sd.api("/api/v1/presence/" + BOB, self.alice)
        self.assertFalse(doc["online"])
        self.sd.api("/api/v1/preferences", self.bob, method="PUT", body={"presence": False})
        self.assertEqual(self.sd.api("/api/v1/presence/" + BOB, self.alice)[0], 404)

    def test_write_rate_limit(self):
        token = self.sd.token("busy@example.org")
        codes = [self.sd.api("/api/v1/preferences", token, method="PUT",
                             body={"presence": False})[0] for _ in range(30)]
        self.assertIn(429, codes)
        self.assertEqual(codes[:20], [200] * 20)

    # --- the feeds -------------------------------------------------------------------

    def test_sse_resume_from_every_offset(self):
        start = self.head()
        evs = [event("delivered", tracking_id="am1", recipient=r, offset_ms=-5000 + i)
               for i, r in enumerate([BOB, CAROL] * 5)]
        self.send(evs)
        end = self.head()
        epoch = self.sd.http("/healthz")[1]["log"]["epoch"]
        mine = set()
        for off in range(start + 1, end + 1):
            row = self.pg.psql(f"SELECT m.owner FROM events e JOIN messages m ON m.id = "
                               f"e.message WHERE e.log_offset = {off}")
            if row and row[0][0] == ALICE:
                mine.add(off)
        for resume in range(start, end + 1):
            s = Sse(self.sd, self.alice, last_event_id=f"{epoch}-{resume}")
            ev, _, hello = s.next()
            self.assertEqual((ev, hello["from"]), ("hello", resume))
            got = []
            want = sorted(o for o in mine if o > resume)
            while len(got) < len(want):
                ev, eid, data = s.next()
                self.assertEqual(ev, "status")
                self.assertEqual(eid, f"{epoch}-{data['offset']}")
                got.append(data["offset"])
            s.close()
            self.assertEqual(got, want, f"resume from {resume}")

    def test_sse_client_that_hangs_up_costs_no_cpu(self):
        """An SSE client that goes away while its stream is open: statusd does not wake
        for the closed connection again and again until its next ping."""
        def cpu():  # statusd's user and system time, in seconds
            with open(f"/proc/{self.sd.child.popen.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        who = "hangup@example.org"
        rcpts = [f"h{i}@example.net" for i in range(100)]
        self.send([event("queued", tracking_id="hang1", recipient=r, sender=who, sasl_user=who,
                         offset_ms=-9000) for r in rcpts])
        for k in range(10):
            self.send([event("deferred", tracking_id="hang1", recipient=r,
                             offset_ms=-8000 + k) for r in rcpts])
        epoch = self.sd.http("/healthz")[1]["log"]["epoch"]
        live = Sse(self.sd, self.sd.token(who))  # stays, and is not taken for hung up
        self.assertEqual(live.next()[0], "hello")
        # one that hangs up after its hello, one during its catch-up
        for resume in (None, f"{epoch}-0"):
            s = Sse(self.sd, self.sd.token(who), last_event_id=resume)
            self.assertEqual(s.next()[0], "hello")
            if resume:
                self.assertEqual(s.next()[0], "status")
            s.close()
        time.sleep(1.5)  # statusd looks for hung-up clients once a second
        before = cpu()
        time.sleep(2)
        used = cpu() - before
        self.assertLess(used, 0.2, f"statusd used {used:.2f} s of CPU in 2 s with nothing to do")
        self.send([event("delivered", tracking_id="hang1", recipient=rcpts[0])])
        ev, _, data = live.next()
        self.assertEqual((ev, data["status"]), ("status", "delivered"))
        live.close()

    def test_websocket_catch_up_then_live(self):
        before = self.head()
        epoch = self.sd.http("/healthz")[1]["log"]["epoch"]
        ws = ws_connect(self.sd, self.alice, f"?offset={before}&epoch={epoch}")
        hello = json.loads(ws.recv())
        self.assertEqual((hello["type"], hello["from"]), ("hello", before))
        self.send([event("relayed", tracking_id="am1", recipient=CAROL)])
        self.send([event("relayed", tracking_id="mm1", recipient=BOB)])  # mallory's
        self.send([event("read", tracking_id="am1", recipient=BOB)])
        got = [json.loads(ws.recv()) for _ in range(2)]
        self.assertEqual([(g["status"], g["recipient"]) for g in got],
                         [("relayed", CAROL), ("read", BOB)])
        self.assertTrue(all(g["tracking_id"] == "am1" for g in got))
        self.assertEqual(got[1]["offset"], got[0]["offset"] + 2, "mallory's event skipped")
        ws.send(json.dumps({"type": "ping"}))
        self.assertEqual(json.loads(ws.recv()), {"type": "pong"})
        ws.close()

    def test_epoch_mismatch_resets(self):
        ws = ws_connect(self.sd, self.alice, "?offset=3&epoch=12345")
        hello = json.loads(ws.recv())
        self.assertEqual((hello["from"], hello.get("reset")), (0, True))
        ws.close()

    def test_feed_authorization_and_bad_frames(self):
        ws = ws_connect(self.sd)  # no token
        self.assertEqual(ws_close_code(ws)[0], 4401)
        ws = ws_connect(self.sd, "not-a-token")
        self.assertEqual(ws_close_code(ws)[0], 4401)
        ws = ws_connect(self.sd, self.alice, "?offset=12")  # no epoch
        self.assertEqual(ws_close_code(ws)[0], 4400)
        for bad in ("not json", json.dumps({"type": "subscribe", "offset": "x"}), "{}"):
            ws = ws_connect(self.sd, self.alice)
            json.loads(ws.recv())  # hello
            ws.send(bad)
            self.assertEqual(ws_close_code(ws)[0], 1003, bad)
        ws = ws_connect(self.sd, self.alice)
        json.loads(ws.recv())
        ws.send("x" * 5000)  # over the 1 KiB a client message may have
        self.assertIn(ws_close_code(ws)[0], (1009, 1003))
        # raw invalid UTF-8 in a text frame: lws closes with 1007
        ws = ws_connect(self.sd, self.alice)
        json.loads(ws.recv())
        ws.send(b"\xff\xfe\xfd", opcode=websocket.ABNF.OPCODE_TEXT)
        self.assertIn(ws_close_code(ws)[0], (1007, 1002))
        cases = ["?offset=abc&epoch=1", "?offset=5", "?offset=-1&epoch=2"]
        for q in cases:
            s = Sse(self.sd, self.alice, query=q)
            self.assertEqual(s.resp.status, 400, q)
            s.close()
        s = Sse(self.sd, self.alice, last_event_id="garbage")
        self.assertEqual(s.resp.status, 400)
        s.close()
        self.assertEqual(self.sd.http("/healthz")[0], 200, "still serving")

    def test_malformed_http(self):
        cases = [  # (method, path, body, headers, status)
            ("PUT", "/api/v1/preferences", b"{not json", {}, 400),
            ("PUT", "/api/v1/preferences", b'{"read_receipts": "yes"}', {}, 400),
            ("PUT", "/api/v1/preferences", b'{"colour": true}', {}, 400),
            ("PUT", "/api/v1/preferences", b'{"presence": true}' + b"\xff", {}, 400),
            ("PUT", "/api/v1/preferences", b"x" * 100000, {}, 413),
            ("POST", "/api/v1/presence", b'{"state":"typing"}', {}, 400),
            ("GET", "/api/v1/messages?limit=0", None, {}, 400),
            ("GET", "/api/v1/messages?status=lost", None, {}, 400),
            ("GET", "/api/v1/messages?since=yesterday", None, {}, 400),
            ("GET", "/api/v1/messages?cursor=-4", None, {}, 400),
        ]
        for method, path, body, headers, want in cases:
            code, doc = self.sd.api(path, self.sd.token("fuzz@example.org"), method=method,
                                    body=body, headers=headers)
            self.assertEqual(code, want, f"{method} {path} {body!r:.40}: {doc}")
        self.assertEqual(self.sd.http("/healthz")[0], 200)

    def test_list_paging(self):
        self.send([event("queued", tracking_id=f"page{i}", recipient=BOB, sender="pager@example.org",
                         offset_ms=-8000 + i) for i in range(7)])
        token = self.sd.token("pager@example.org")
        seen, cursor = [], ""
        while True:
            code, doc = self.sd.api("/api/v1/messages?limit=3" + cursor, token)
            self.assertEqual(code, 200)
            seen += [m["tracking_id"] for m in doc["messages"]]
            if doc["next_cursor"] is None:
                break
            cursor = "&cursor=" + doc["next_cursor"]
        self.assertEqual(seen, [f"page{i}" for i in reversed(range(7))])

    def test_metrics(self):
        code, text = self.sd.http("/metrics")
        self.assertEqual(code, 200)
        for name in ("msgstatus_events_logged_total", "msgstatus_feed_subscribers",
                     "msgstatus_ingest_lag_seconds", "msgstatus_db_batch_seconds"):
            self.assertIn(name, text)


class TwoInstancesTest(unittest.TestCase):
    def test_catch_up_from_the_database_in_pages(self):
        """A statusd with nothing in memory serves a resume from PostgreSQL, page by page
        (2,000 offsets a page, four read ahead on two connections): a user whose
        events are few and far apart in a long log gets exactly those, and the sender of all
        the others gets every one of hers, in order."""
        with Sandbox() as sb:
            pg = sb.postgres()
            one = sb.statusd(pg, name="writer")
            one.send_events([event("queued", tracking_id="far", recipient=BOB, sender=ALICE,
                                   sasl_user=ALICE)])
            start = one.http("/healthz")[1]["log"]["head"]
            evs = [event("queued", tracking_id="noise", recipient=f"n{i}@example.net",
                         sender=MALLORY, sasl_user=MALLORY) for i in range(19000)]
            for i in (0, 1999, 2000, 2001, 3999, 4000, 7999, 8000, 15999, 18999):  # page edges and the end
                evs[i] = event("relayed", tracking_id="far", recipient=BOB)
            for k in range(0, len(evs), 2000):
                self.assertTrue(all("ack" in r for r in one.send_events(evs[k:k + 2000])))
            end = one.http("/healthz")[1]["log"]["head"]
            self.assertEqual(end - start, 19000)
            fresh = sb.statusd(pg, name="reader", settings={
                "auth_secret_file": one.settings["auth_secret_file"]})
            fresh.secret = one.secret
            epoch = fresh.http("/healthz")[1]["log"]["epoch"]
            s = Sse(fresh, one.token(ALICE), last_event_id=f"{epoch}-{start}", timeout=30)
            self.assertEqual(s.next()[2]["from"], start)
            got = [s.next()[2]["offset"] for _ in range(10)]
            s.close()
            self.assertEqual(got, [start + 1 + i for i in (0, 1999, 2000, 2001, 3999, 4000, 7999, 8000, 15999, 18999)])
            s = Sse(fresh, one.token(MALLORY), last_event_id=f"{epoch}-{start}", timeout=30)
            s.next()
            offsets = [s.next()[2]["offset"] for _ in range(19000 - 10)]
            s.close()
            self.assertEqual(offsets, sorted(set(range(start + 1, end + 1)) -
                                             set(got)), "every one of mallory's, in order")

    def test_catch_up_and_live_write_the_same_bytes(self):
        """Quotes, backslashes, control characters and non-ASCII UTF-8 in recipients,
        Message-IDs and details arrive byte for byte the same live, catching up from memory
        and catching up from PostgreSQL (WebSocket and SSE), as compact JSON with json-c's
        escaping and the values that were sent."""
        rcpts = ['quo"te\\back\\"@example.net', "j\u00f6rg.\u65e5\u672c@example.net",
                 "emoji\U0001F600/slash@example.net"]
        msgid = '<"q\\u0041"/\u00e4\U0001F600@example.org>'
        details = {"smtp_reply": '550 5.1.1 "no" \\ \\u00e9 \t\n\r\b\f \x01\x1f\x7f '
                                 "\u00e9\u20ac\U0001F600 </a>",
                   "mta": "mx.example.net[192.0.2.1]:25", "latency_ms": 12, "neg": -7,
                   "ratio": 0.25, "ok": True, "no": False, "none": None, "empty": ""}
        keys = ["type", "offset", "epoch", "message_id", "tracking_id", "recipient", "status",
                "timestamp", "details", "event_id"]
        with Sandbox() as sb:
            pg = sb.postgres()
            one = sb.statusd(pg, name="writer")
            token = one.token(ALICE)
            live = ws_connect(one, token)
            start = json.loads(live.recv())["head"]
            evs = [event("queued", tracking_id="odd", recipient=r, sender=ALICE,
                         sasl_user=ALICE, message_id=msgid) for r in rcpts]
            evs += [event("relayed", tracking_id="odd", recipient=r, details=details)
                    for r in rcpts]
            self.assertTrue(all("ack" in r for r in one.send_events(evs)))
            n = len(evs)
            want = [live.recv() for _ in range(n)]
            live.close()
            fresh = sb.statusd(pg, name="reader", settings={
                "auth_secret_file": one.settings["auth_secret_file"]})
            epoch = fresh.http("/healthz")[1]["log"]["epoch"]
            streams = {}
            for name, sd in (("memory", one), ("database", fresh)):
                ws = ws_connect(sd, token, f"?offset={start}&epoch={epoch}")
                self.assertEqual(json.loads(ws.recv())["from"], start)
                streams[f"WebSocket from {name}"] = [ws.recv() for _ in range(n)]
                ws.close()
                s = Sse(sd, token, last_event_id=f"{epoch}-{start}")
                s.next()
                sse = []
                for _ in range(n):
                    _, eid, data = s.next()
                    self.assertEqual(eid, f"{epoch}-{data['offset']}")
                    sse.append(s.text)
                s.close()
                streams[f"SSE from {name}"] = sse
            for name, got in streams.items():
                self.assertEqual(got, want, name)
            for text in want:
                doc = json.loads(text)
                self.assertEqual(list(doc), keys)
                # compact, json-c's escaping (which Python's json module shares), key order
                self.assertEqual(text, json.dumps(doc, separators=(",", ":"),
                                                  ensure_ascii=False))
                self.assertEqual(doc["message_id"], msgid)
            docs = [json.loads(t) for t in want]
            self.assertEqual([d["recipient"] for d in docs], rcpts * 2)
            self.assertEqual([d["details"] for d in docs], [{}] * 3 + [details] * 3)

    def test_live_events_cross_instances(self):
        with Sandbox() as sb:
            pg = sb.postgres()
            one = sb.statusd(pg, name="statusd1")
            two = sb.statusd(pg, name="statusd2", settings={"auth_secret_file": one.settings[
                "auth_secret_file"]})
            two.secret = one.secret
            ws = ws_connect(two, one.token(ALICE))
            json.loads(ws.recv())
            replies = one.send_events([event("queued", tracking_id="x2", recipient=BOB,
                                             sender=ALICE) for _ in range(3)])
            self.assertTrue(all("ack" in r for r in replies))
            got = [json.loads(ws.recv()) for _ in range(3)]
            self.assertEqual([g["tracking_id"] for g in got], ["x2"] * 3)
            offs = [g["offset"] for g in got]
            self.assertEqual(offs, sorted(offs))
            # and back: events stored through two reach a client of one
            ws1 = ws_connect(one, one.token(ALICE))
            json.loads(ws1.recv())
            two.send_events([event("read", tracking_id="x2", recipient=BOB)])
            self.assertEqual(json.loads(ws1.recv())["status"], "read")
            self.assertEqual(json.loads(ws.recv())["status"], "read")
            ws.close()
            ws1.close()


class RawWebSocket:
    """A WebSocket client on a plain socket that reads only when told to (a slow consumer)
    and answers nothing (no pongs), with a small receive buffer."""

    def __init__(self, sd, token, query="", rcvbuf=4096):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", sd.http_port))
        path = "/api/v1/messages/stream?access_token=" + urllib.parse.quote(token) + query
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        return data

    def frame(self):
        """The next frame from the server as (opcode, payload)."""
        while True:
            n, hdr = (self.buf[1] & 0x7f, 2) if len(self.buf) >= 2 else (0, 2)
            if n == 126:
                n, hdr = (struct.unpack("!H", self.buf[2:4])[0], 4) if len(self.buf) >= 4 \
                    else (0, 4)
            elif n == 127:
                n, hdr = (struct.unpack("!Q", self.buf[2:10])[0], 10) if len(self.buf) >= 10 \
                    else (0, 10)
            if len(self.buf) >= hdr + n:
                opcode, payload = self.buf[0] & 0x0f, self.buf[hdr:hdr + n]
                self.buf = self.buf[hdr + n:]
                return opcode, payload
            self.buf += self.recv()

    def close(self):
        self.sock.close()


class FeedFlowTest(unittest.TestCase):
    """The live feed under load: a consumer that falls behind is closed with the offset to
    resume from while the others go on, and idle WebSockets are pinged and silent ones
    hung up (statusd does both itself, not lws)."""

    def test_slow_websocket_consumer_is_closed_with_a_reason(self):
        closed = "msgstatus_feed_slow_closed_total 1\n"
        with Sandbox() as sb:
            pg = sb.postgres()
            sd = sb.statusd(pg, settings={"feed_buffer_max": "16k"})
            token = sd.token(ALICE)
            epoch = sd.http("/healthz")[1]["log"]["epoch"]
            fast = ws_connect(sd, token)
            start = json.loads(fast.recv())["head"]
            slow = RawWebSocket(sd, token)
            self.assertEqual(json.loads(slow.frame()[1])["type"], "hello")
            got = []

            def read_fast():
                try:
                    while True:
                        got.append(json.loads(fast.recv())["offset"])
                except (websocket.WebSocketException, OSError, ValueError):
                    pass  # closed below
            reader = threading.Thread(target=read_fast, daemon=True)
            reader.start()
            # until the slow one is closed: the kernel takes megabytes first (its send
            # buffer grows), then statusd queues up to feed_buffer_max
            sent = 0
            while closed not in sd.http("/metrics")[1] and sent < 40000:
                replies = sd.send_events([event("queued", tracking_id=f"slow{sent}",
                                                recipient=f"r{i}@example.net", sender=ALICE,
                                                sasl_user=ALICE) for i in range(1000)])
                self.assertTrue(all("ack" in r for r in replies))
                sent += 1000
            self.assertIn(closed, sd.http("/metrics")[1])
            wait_for("the fast consumer", lambda: len(got) >= sent, timeout=60)
            self.assertEqual(got[:sent], list(range(start + 1, start + sent + 1)),
                             "the fast one goes on: everything, in order")
            fast.close()
            reader.join()
            # the slow one reads now: what was queued for it, then the close with a reason
            offsets = []
            while True:
                opcode, payload = slow.frame()
                if opcode == 8:
                    break
                if opcode == 1:
                    offsets.append(json.loads(payload)["offset"])
            code, reason = struct.unpack("!H", payload[:2])[0], payload[2:].decode()
            slow.close()
            self.assertEqual(code, 4000, reason)
            self.assertIn("slow consumer", reason)
            resume = int(reason.rsplit(" ", 1)[1])
            self.assertLess(resume, start + sent, "closed before the end")
            self.assertEqual(offsets, list(range(start + 1, resume + 1)),
                             "everything up to the offset it names, in order")
            # resuming from there gives the rest, with no gap and nothing twice
            again = ws_connect(sd, token, f"?offset={resume}&epoch={epoch}")
            self.assertEqual(json.loads(again.recv())["from"], resume)
            rest = [json.loads(again.recv())["offset"] for _ in range(start + sent - resume)]
            again.close()
            self.assertEqual(rest, list(range(resume + 1, start + sent + 1)))

    def test_idle_websockets_are_pinged_and_silent_ones_hung_up(self):
        with Sandbox() as sb:
            pg = sb.postgres()
            sd = sb.statusd(pg, settings={"feed_ping_interval": "1s"})
            token = sd.token(ALICE)
            live = ws_connect(sd, token)
            json.loads(live.recv())
            silent = RawWebSocket(sd, token)
            self.assertEqual(json.loads(silent.frame()[1])["type"], "hello")
            t0 = time.monotonic()
            pings = 0
            while time.monotonic() - t0 < 5:  # the live one answers every ping
                opcode, frame = live.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_PING:
                    pings += 1
                    live.pong(frame.data)
            self.assertGreaterEqual(pings, 3)
            # the silent one was pinged too, and hung up on after three intervals
            silent_pings = 0
            with self.assertRaises((EOFError, ConnectionResetError)):
                while True:
                    if silent.frame()[0] == 9:
                        silent_pings += 1
            silent.close()
            self.assertGreaterEqual(silent_pings, 1)
            # the one that answered still follows the feed
            sd.send_events([event("queued", tracking_id="ka", recipient=BOB, sender=ALICE,
                                  sasl_user=ALICE)])
            while True:
                opcode, frame = live.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    break
                live.pong(frame.data)
            self.assertEqual(json.loads(frame.data)["tracking_id"], "ka")
            live.close()

    def test_a_lone_silent_websocket_is_hung_up(self):
        """The only connection of its event loop: nothing else wakes lws to close it."""
        with Sandbox() as sb:
            pg = sb.postgres()
            sd = sb.statusd(pg, settings={"feed_ping_interval": "1s", "feed_threads": "1"})
            silent = RawWebSocket(sd, sd.token(ALICE))  # reads, never answers a ping
            self.assertEqual(json.loads(silent.frame()[1])["type"], "hello")
            t0 = time.monotonic()
            with self.assertRaises((EOFError, ConnectionResetError)):
                while True:
                    silent.frame()
            silent.close()
            self.assertLess(time.monotonic() - t0, 8)  # three intervals, and a tick


if __name__ == "__main__":
    main()
