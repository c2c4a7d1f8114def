"""The claims of docs/security.md that no other test makes, against a private PostgreSQL,
statusd, msgstatus-milter, msgstatus-logd and (as root) Dovecot with the plugin:

- SQL injection through every input that reaches SQL (message ids in URLs, list filters,
  users, event fields on the event socket, statusctl arguments) is stored and compared as
  data, byte for byte, and the schema is unchanged afterwards;
- hostile input at every socket (event socket, pickup directory, HTTP, WebSocket, the
  milter's socket) gets an error or a closed connection, and the server goes on serving;
- signed tokens signed otherwise or altered are refused over HTTP; a refused token is not
  written to the log; a feed ends when the token it was opened with expires;
- a replayed event changes nothing, a second queued event cannot take a message over;
- domain administrators see their domain and no other; a feed resumed from statusd's
  memory shows another user (or a recipient) none of the sender's events; a copied
  Message-ID does not hide a sender's message from her; whom a user is typing to is told
  only to that person;
- the modes of the sockets, spools, state and pickup files the programs create.
"""
import base64
import hashlib
import hmac
import json
import os
import resource
import socket
import stat
import struct
import subprocess
import time
import unittest
import urllib.parse

import websocket  # Debian's python3-websocket

from e2e import event, main
from msgsandbox import Sandbox, paths
from msgsandbox.core import wait_for
from test_api import Sse, ws_close_code, ws_connect

ALICE, MALLORY, BOB = "alice@example.org", "mallory@example.org", "bob@example.net"
CAROL, DAVE = "carol@example.com", "dave@sub.example.com"
STATUSCTL = paths.binary("statusd/statusctl")

# strings that would change a query if they were pasted into it
INJECTIONS = [
    "'", "''", "x' OR '1'='1", "x';DROP/**/TABLE/**/events;--", "x\\'--", '"', "x\";--",
    "1;SELECT/**/pg_sleep(5)", "$1", "%", "_", "x'||(SELECT/**/owner/**/FROM/**/messages)||'",
    "{a,b}", "\\N", "\\.",
]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(head, claims, key):
    h, p = b64(json.dumps(head).encode()), b64(json.dumps(claims).encode())
    sig = hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(sig)}"


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def raw_http(port, data, timeout=10):
    """Send bytes to the HTTP port; the status code of the answer, or None if the server
    closed the connection without one."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close while we are still sending
        buf = b""
        while b"\r\n" not in buf:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        if not buf.startswith(b"HTTP/1."):
            return None
        return int(buf.split(b" ", 2)[1])
    finally:
        s.close()


def raw_exchange(port, data, timeout=5):
    """Send bytes and read one answer: (status, lower-cased headers, body, closed, seconds).
    status is None if the server closed without answering or sent nothing within timeout;
    closed says whether the server then ended the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    start = time.monotonic()
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return None, {}, buf, True, time.monotonic() - start
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict((k.strip().lower(), v.strip()) for k, _, v in
                       (line.partition(":") for line in lines[1:]))
        while len(body) < int(headers.get("content-length", 0)):
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        elapsed = time.monotonic() - start
        s.settimeout(1)
        try:
            rest = s.recv(65536)
            closed = rest == b""
        except socket.timeout:
            rest, closed = b"", False
        except OSError:
            rest, closed = b"", True
        return int(lines[0].split(" ")[1]), headers, body + rest, closed, elapsed
    finally:
        s.close()


class StatusdSecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.send([event("queued", tracking_id="sec-a1", recipient=BOB, sender=ALICE,
                        sasl_user=ALICE, message_id="<sec-a1@example.org>", offset_ms=-9000)])
        cls.schema = cls.tables()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    @classmethod
    def send(cls, evs):
        replies = cls.sd.send_events(evs)
        assert all("ack" in r for r in replies), replies

    @classmethod
    def tables(cls):
        return cls.pg.psql("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n"
                           " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                           " ORDER BY c.relname")

    def assert_intact(self):
        self.assertEqual(self.tables(), self.schema, "the schema is unchanged")
        code, doc = self.sd.status("sec-a1", ALICE)
        self.assertEqual((code, doc.get("tracking_id")), (200, "sec-a1"), doc)
        self.assertEqual(self.sd.http("/healthz")[0], 200, "still serving")

    def ctl(self, *args):
        return subprocess.run([STATUSCTL, "-c", self.sd.config, *args], capture_output=True,
                              text=True, timeout=60)

    # --- SQL injection ---------------------------------------------------------------

    def test_sql_injection_through_the_api(self):
        alice = self.sd.token(ALICE)
        n_events = self.pg.scalar("SELECT count(*) FROM events")
        for s in INJECTIONS:
            q = urllib.parse.quote(s, safe="")
            cases = [  # (method, path, acceptable answers)
                ("GET", f"/api/v1/messages/{q}/status", (400, 404)),
                ("GET", f"/api/v1/messages/{q}/timeline", (400, 404)),
                ("POST", f"/api/v1/messages/{q}/receipt", (400, 404)),
                ("GET", f"/api/v1/presence/{q}", (400, 404)),
                ("GET", f"/api/v1/messages?recipient={q}", (200, 400)),
                ("GET", f"/api/v1/messages?status={q}", (400,)),
                ("GET", f"/api/v1/messages?since={q}", (400,)),
                ("GET", f"/api/v1/messages?cursor={q}", (400,)),
                ("GET", f"/api/v1/messages?limit={q}", (400,)),
            ]
            for method, path, want in cases:
                code, doc = self.sd.api(path, alice, method=method)
                self.assertIn(code, want, f"{method} {path}: got {code} {doc}, want {want}")
                if code == 200:
                    self.assertEqual(doc["messages"], [], f"{path}: matched something")
            # as the user name of a signed token: a user of that name, nothing more
            code, doc = self.sd.api("/api/v1/messages", self.sd.token(s + "@example.org"))
            self.assertEqual((code, doc.get("messages")), (200, []), f"user {s!r}: {doc}")
        self.assertEqual(self.pg.scalar("SELECT count(*) FROM events"), n_events)
        self.assert_intact()

    def test_sql_injection_through_events(self):
        """Event fields go to PostgreSQL through COPY: quotes, backslashes, tabs, newlines
        and COPY's own markers (\\N, \\.) in them come back exactly as sent."""
        owner = "o'brien\\\";--@example.org"
        rcpts = [f"{s}@example.net".replace("/**/", " ") for s in INJECTIONS]
        details = {"smtp_reply": "250 ok\t\\N\n\\.\n'); DROP TABLE events; --",
                   "mta": "\\N", "dsn": "\\", "quote": "'\""}
        evs = [event("queued", tracking_id="sec-inj", recipient=r, sender=owner,
                     sasl_user=owner, message_id="<x'); DELETE FROM messages; --@example.org>",
                     offset_ms=-5000) for r in rcpts]
        evs.append(event("relayed", tracking_id="sec-inj", recipient=rcpts[3], details=details))
        self.send(evs)
        token = self.sd.token(owner)
        code, doc = self.sd.status("sec-inj", owner)
        self.assertEqual(code, 200, doc)
        self.assertEqual(doc["sender"], owner)
        self.assertEqual(doc["message_id"], "<x'); DELETE FROM messages; --@example.org>")
        got = {r["recipient"]: r for r in doc["recipients"]}
        self.assertEqual(sorted(got), sorted(r.lower() for r in rcpts))
        relayed = got[rcpts[3].lower()]
        self.assertEqual(relayed["smtp_reply"], details["smtp_reply"])
        for k in ("mta", "dsn", "quote"):
            self.assertEqual(relayed["details"][k], details[k], k)
        # the odd strings also work as filters and lookups, matching exactly themselves
        for r in rcpts[:4]:
            code, doc = self.sd.api("/api/v1/messages?recipient=" +
                                    urllib.parse.quote(r, safe=""), token)
            if " " in r:
                self.assertEqual(code, 400, r)  # not a mail address
                continue
            self.assertEqual([m["tracking_id"] for m in doc["messages"]], ["sec-inj"], r)
        code, doc = self.sd.status("x'); DELETE FROM messages; --@example.org", owner)
        self.assertEqual(code, 400, "a Message-ID with spaces is not a reference")
        self.assert_intact()

    def test_statusctl_arguments_are_data(self):
        res = self.ctl("status", "x';DROP TABLE messages;--")
        self.assertEqual(res.returncode, 3, res.stderr)  # no such message
        res = self.ctl("--json", "token", "create", "o'neil\";--@example.org")
        self.assertEqual(res.returncode, 0, res.stderr)
        tok = json.loads(res.stdout)["token"]
        self.assertEqual(self.sd.api("/api/v1/messages", tok)[0], 200)
        self.assertEqual(self.pg.scalar("SELECT count(*) FROM users"
                                        " WHERE name = 'o''neil\";--@example.org'"), "1")
        before = self.pg.psql("SELECT name FROM users WHERE presence")
        res = self.ctl("prefs", "x' OR '1'='1@example.org", "--presence", "yes")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.pg.psql("SELECT name FROM users WHERE presence"),
                         sorted(before + [["x' or '1'='1@example.org"]]),
                         "that one user changed, not every one")
        res = self.ctl("user", "admin", "postmaster@example.org", "example.org'}")
        self.assertEqual(res.returncode, 2, "not a domain name")
        self.assert_intact()

    # --- hostile input at the sockets ------------------------------------------------

    def test_event_socket_hostile_input(self):
        cases = [  # (raw record, a substring of the error)
            (b"\x00\x00\x00", "bad JSON"),
            (b'{"v":1,\x00"id":"x"}', "bad JSON"),
            (b"\xc0\xaf", "UTF-8"),                  # overlong
            (b'"\xed\xa0\x80"', "UTF-8"),            # a surrogate
            (b'"\xf4\x90\x80\x80"', "UTF-8"),        # beyond U+10FFFF
            (b"{" * 5000, "bad JSON"),
            (b"[" * 100 + b"]" * 100, "nesting"),
            (b'{"v":1}{"v":1}', "bad JSON"),
            (b"", "bad JSON"),
            (json.dumps(event(tracking_id="sec-h", details={"n": 1e999})).encode()
             .replace(b"Infinity", b"1e999"), "finite"),
            (json.dumps(event(tracking_id="sec-h", details={f"k{i}": i for i in range(40)}))
             .encode(), "more than 32 keys"),
            (json.dumps(event(tracking_id="sec-h", size=-5)).encode(), "size"),
            (json.dumps(event(tracking_id="sec-h", v=1.0)).encode(), "version"),
            (json.dumps(event(tracking_id="sec-h", time="2999-01-01T00:00:00Z")).encode(),
             "in the future"),
        ]
        c = self.sd.client()
        c.send_raw(b"".join(raw + b"\n" for raw, _ in cases))
        c.send_raw(b"A" * (1 << 20) + b"\n")       # a megabyte without a record in it
        c.send_raw(json.dumps(event(tracking_id="sec-h")).encode() + b"\n")
        replies = c.replies(len(cases) + 2)
        c.close()
        for (raw, want), rep in zip(cases, replies):
            self.assertIn(want, rep.get("error", ""), f"{raw[:40]!r}: got {rep}")
        self.assertIn("too long", replies[-2].get("error", ""), replies[-2])
        self.assertIn("ack", replies[-1], "the same connection goes on")
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE tracking_id = 'sec-h'"), "1")
        # many connections at once, some closed in the middle of a record
        conns = [self.sd.client() for _ in range(100)]
        for i, k in enumerate(conns):
            k.send_raw(b'{"v":1,"id":"half' if i % 2 else b"")
            k.close()
        self.assertTrue(all("ack" in r for r in self.sd.send_events(
            [event(tracking_id="sec-h2")])))
        self.assert_intact()

    def test_pickup_hostile_files(self):
        d = self.sd.pickup_dir

        def place(name, make):
            """Make it under a name statusd ignores, then give it its name (as producers do)."""
            tmp = os.path.join(d, ".tmp-" + name)
            make(tmp)
            os.rename(tmp, os.path.join(d, name))

        def sparse(path):  # larger than statusd reads, without the disk space
            with open(path, "wb") as f:
                f.truncate(65 * 1024 * 1024)
        place("100-1-fifo.events", os.mkfifo)  # a reader that opened it blocking would hang
        place("101-1-huge.events", sparse)
        place("102-1-dir.events", os.mkdir)
        junk = self.sd.drop(None, raw=b"\x00\xff garbage\n" + b"B" * 100000 + b"\n{}\n")
        good = self.sd.drop([event(tracking_id="sec-pick")])
        wait_for("the good file", lambda: not os.path.exists(good))
        for name in ("100-1-fifo.events", "101-1-huge.events", "102-1-dir.events"):
            wait_for(f"{name} set aside", lambda n=name: os.path.lexists(
                os.path.join(d, ".bad-" + n)))
        wait_for("the junk file read and removed", lambda: not os.path.exists(junk))
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE tracking_id = 'sec-pick'"), "1")
        self.assertIn("rejected", self.sd.child.log())
        self.assert_intact()

    def test_http_hostile_input(self):
        port = self.sd.http_port
        get = b"GET /api/v1/messages HTTP/1.1\r\nHost: x\r\n"
        cases = [  # (name, raw request, acceptable answers; None = connection closed)
            ("a 20 kB header", get + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", (None, 400, 431)),
            ("many headers", get + b"".join(b"X-%d: y\r\n" % i for i in range(2000)) + b"\r\n",
             (None, 400, 431)),
            ("a 5 kB path", b"GET /api/v1/messages/" + b"a" * 5000 + b"/status HTTP/1.1\r\n"
             b"Host: x\r\n\r\n", (None, 400, 414, 431)),
            ("a 5 kB token", get + b"Authorization: Bearer " + b"a.b" * 1700 + b"\r\n\r\n",
             (None, 401, 431)),
            ("NUL in the request line", b"GET /healthz\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
             (None, 400, 404)),
            ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xff" * 64,
             (None, 400, 403)),
            ("a bad Content-Length", b"PUT /api/v1/preferences HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: -5\r\n\r\n", (None, 400, 401)),
            ("a body over http_body_max", b"PUT /api/v1/preferences HTTP/1.1\r\nHost: x\r\n"
             b"Authorization: Bearer " + self.sd.token(ALICE).encode() +
             b"\r\nContent-Length: 300000\r\n\r\n" + b"{" * 300000, (None, 413)),
            ("an unknown method", b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
             (None, 400, 403, 404, 405, 501)),
            ("no HTTP version", b"GET /api/v1/messages\r\n\r\n", (None, 400, 401, 505)),
        ]
        for name, raw, want in cases:
            code = raw_http(port, raw)
            self.assertIn(code, want, f"{name}: got {code}, want one of {want}")
            self.assertEqual(self.sd.http("/healthz")[0], 200, f"still serving after {name}")
        # a client that sends half a request and stalls does not stop the others
        stall = socket.create_connection(("127.0.0.1", port), timeout=10)
        stall.sendall(b"GET /api/v1/messages HTTP/1.1\r\nHost: x\r\nX-Slow:")
        self.assertEqual(self.sd.http("/healthz")[0], 200)
        stall.close()
        # ?access_token= is for the two feeds only, where browsers cannot set headers
        code, doc = self.sd.http("/api/v1/messages?access_token=" + self.sd.token(ALICE))
        self.assertEqual(code, 401, doc)
        self.assert_intact()

    def test_invalid_utf8_and_times_out_of_range_get_400(self):
        """Ill-formed UTF-8 (overlong, surrogate, beyond U+10FFFF, cut short), percent-encoded
        in a path or query or raw in a JSON body, and times no timestamp can hold, get a 400
        with a detail, not a 500 and a database error in the log."""
        token = self.sd.token(ALICE)
        bad = ["%C0%AF", "%E0%80%AF", "%ED%A0%80", "%ED%BF%BF", "%F4%90%80%80", "%F5%80%80%80",
               "%FF", "a%C3"]
        cases = []  # (method, path, body)
        for b in bad:
            cases += [("GET", f"/api/v1/messages/{b}/status", None),
                      ("GET", f"/api/v1/messages/%3C{b}%40example.org%3E/timeline", None),
                      ("POST", f"/api/v1/messages/{b}/receipt", None),
                      ("GET", f"/api/v1/messages?recipient={b}%40example.org", None),
                      ("GET", f"/api/v1/presence/{b}%40example.org", None),
                      ("POST", "/api/v1/presence",
                       b'{"state":"typing","to":"' + urllib.parse.unquote_to_bytes(b) +
                       b'@example.org"}'),
                      ("PUT", "/api/v1/preferences",
                       b'{"presence":true,"' + urllib.parse.unquote_to_bytes(b) + b'":1}')]
        for t in ("9223372036854775807", "253402300800000", "99999999999999999999"):
            cases += [("GET", f"/api/v1/messages?since={t}", None),
                      ("GET", f"/api/v1/messages?until={t}", None)]
        for method, path, body in cases:
            code, doc = self.sd.api(path, token, method=method, body=body)
            self.assertEqual(code, 400, f"{method} {path} {body!r}: {doc}")
            self.assertTrue(doc.get("detail"), f"{method} {path}: a detail says why: {doc}")
        # the last time RFC 3339 can write is still a time, and UTF-8 is taken
        code, doc = self.sd.api("/api/v1/messages?until=253402300799999", token)
        self.assertEqual(code, 200, doc)
        code, doc = self.sd.api("/api/v1/messages?recipient=j%C3%B6rg%40example.org", token)
        self.assertEqual(code, 200, doc)
        self.assertNotIn("database query failed", self.sd.child.log())
        self.assert_intact()

    def test_oversized_headers_get_431(self):
        """A header or query argument longer than statusd takes (6 KiB) gets 431 or 414 with
        a problem document at once (a WebSocket upgrade too), and statusd goes on
        serving."""
        port = self.sd.http_port
        get = b"GET /api/v1/messages HTTP/1.1\r\nHost: x\r\n"
        token = self.sd.token(ALICE).encode()
        cases = [  # (name, raw request, status)
            ("a 20 kB Authorization", get + b"Authorization: Bearer " + b"a" * 20000 +
             b"\r\n\r\n", 431),
            ("a 7 kB Cookie", get + b"Authorization: Bearer " + token + b"\r\nCookie: " +
             b"c=" + b"a" * 7000 + b"\r\n\r\n", 431),
            ("a 7 kB Origin", get + b"Origin: http://" + b"a" * 7000 + b"\r\n\r\n", 431),
            ("a WebSocket upgrade with a 7 kB header", b"GET /api/v1/messages/stream?"
             b"access_token=" + token + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\nUser-Agent: " + b"a" * 7000 + b"\r\n\r\n", 431),
            ("a 7 kB query argument", b"GET /api/v1/messages?recipient=" + b"a" * 7000 +
             b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ]
        for name, raw, want in cases:
            with self.subTest(name):
                code, headers, body, closed, took = raw_exchange(port, raw)
                self.assertEqual(code, want, f"{name}: {body[:200]!r}")
                self.assertEqual(json.loads(body.split(b"\n", 1)[0])["status"], want)
                self.assertLess(took, 2, name)
        # a 5 kB token is still read whole (and refused as a token)
        code, _, body, _, _ = raw_exchange(port, get + b"Authorization: Bearer " +
                                           b"a.b" * 1700 + b"\r\n\r\n")
        self.assertEqual(code, 401, body)
        self.assert_intact()

    def test_request_framing(self):
        """Every request gets an answer at once, and one whose body a proxy in front could
        read otherwise than statusd (request smuggling, RFC 9112 §6.3, §5.1) gets a 400,
        411 for a chunked body. The connection closes after every answer, so nothing after
        it is taken for a request."""
        port = self.sd.http_port
        auth = b"Host: x\r\nAuthorization: Bearer " + self.sd.token(ALICE).encode() + b"\r\n"
        prefs = b"PUT /api/v1/preferences HTTP/1.1\r\n" + auth
        presence = b"POST /api/v1/presence HTTP/1.1\r\n" + auth
        smuggled = b"GET /api/v1/presence/alice%40example.org HTTP/1.1\r\nHost: x\r\n\r\n"
        chunked = b'19\r\n{"state":"online"}\r\n0\r\n\r\n'
        cases = [  # (name, raw request, status, the connection closes after the answer)
            ("PUT with Content-Length: 0", prefs + b"Content-Length: 0\r\n\r\n", 400, True),
            ("POST with Content-Length: 0", presence + b"Content-Length: 0\r\n\r\n", 400,
             True),
            ("a chunked PUT", prefs + b"Transfer-Encoding: chunked\r\n\r\n" + chunked, 411,
             True),
            ("a chunked POST", presence + b"Transfer-Encoding: chunked\r\n\r\n" + chunked,
             411, True),
            ("a chunked GET", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 411, True),
            ("gzip, chunked", prefs + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked,
             411, True),
            ("a coding without chunked", prefs + b"Transfer-Encoding: gzip\r\n\r\n", 400, True),
            ("Content-Length and Transfer-Encoding", presence + b"Content-Length: 4\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, True),
            ("Transfer-Encoding and Content-Length", presence + b"Transfer-Encoding: chunked"
             b"\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled, 400, True),
            ("two different Content-Lengths", presence + b"Content-Length: 2\r\n"
             b"Content-Length: " + str(2 + len(smuggled)).encode() + b"\r\n\r\n{}" + smuggled,
             400, True),
            ("the same Content-Length twice", presence + b"Content-Length: 2\r\n"
             b"Content-Length: 2\r\n\r\n{}", 400, True),
            ("a list as Content-Length", presence + b"Content-Length: 2, 2\r\n\r\n{}", 400,
             True),
            ("Content-Length +2", presence + b"Content-Length: +2\r\n\r\n{}", 400, True),
            ("Transfer-Encoding :", presence + b"Content-Length: 5\r\n"
             b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, True),
            ("Transfer-Encoding\\t:", prefs + b"Transfer-Encoding\t: chunked\r\n\r\n" + chunked,
             400, True),
            ("Content-Length :", presence + b"Content-Length : 2\r\n\r\n{}" + smuggled, 400,
             True),
        ]
        for name, raw, want, closes in cases:
            with self.subTest(name):
                code, headers, body, closed, took = raw_exchange(port, raw)
                self.assertEqual(code, want, f"{name}: {body[:200]!r}")
                self.assertLess(took, 2, f"{name}: answered at once")
                doc = json.loads(body.split(b"\n", 1)[0])
                self.assertTrue(doc.get("detail"), f"{name}: {doc}")
                self.assertEqual(closed, closes, f"{name}: closed after the answer")
                if closes:
                    self.assertEqual(headers.get("connection"), "close", name)
                    self.assertEqual(body.count(b"HTTP/1.1"), 0, f"{name}: one answer only")
        # a request sent right behind another on one connection is not read: the first is
        # answered, and the connection closes
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /api/v1/messages/none/receipt HTTP/1.1\r\n" + auth +
                  b"Content-Length: 0\r\n\r\n" + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        self.assertTrue(got.startswith(b"HTTP/1.1 404"), got[:100])
        self.assertEqual(got.count(b"HTTP/1.1 "), 1, got)
        s.close()
        code, _, body, closed, took = raw_exchange(port, b"POST /api/v1/presence HTTP/1.1\r\n" +
                                                   auth + b"\r\n")
        self.assertEqual((code, closed), (400, True), body)
        self.assertLess(took, 2)
        self.assert_intact()

    def test_request_heads_checked_before_lws(self):
        """statusd reads and checks each request head itself (statusd/front.c) before
        libwebsockets sees it: a header name that is the start of one lws knows (A:,
        Origi:) is answered at once, last or not, and hides no header after it; a head
        over 8 KiB gets 431; what RFC 9112 forbids gets 400 (a blank before any colon,
        obs-fold, a CR or LF alone, a control byte, a body on a request other than POST or
        PUT, HTTP/1.1 without Host), an expectation other than 100-continue 417, an unknown
        method 501, another HTTP version 505 -- each with a problem document, at once, and
        Connection: close."""
        port = self.sd.http_port
        token = self.sd.token(ALICE).encode()
        get = b"GET /api/v1/messages HTTP/1.1\r\nHost: x\r\n"
        auth = b"Authorization: Bearer " + token + b"\r\n"
        cases = [  # (name, raw request, status)
            ("A: last", b"GET /healthz HTTP/1.1\r\nHost: x\r\nA:\r\n\r\n", 200),
            ("A: 1 last", b"GET /healthz HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n", 200),
            ("Origi: last", b"GET /healthz HTTP/1.1\r\nHost: x\r\nOrigi: y\r\n\r\n", 200),
            ("A: before Authorization", get + b"A: 1\r\n" + auth + b"\r\n", 200),
            ("Origi: before Authorization", get + b"Origi:\r\n" + auth + b"\r\n", 200),
            ("a 9 KiB head of small headers", get + auth +
             b"".join(b"X-%03d: %s\r\n" % (i, b"v" * 80) for i in range(100)) + b"\r\n", 431),
            ("a 9 KiB head of three headers", get +
             b"".join(b"X-%d: %s\r\n" % (i, b"v" * 3000) for i in range(3)) + b"\r\n", 431),
            ("a 9 KiB request line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
            ("three blanks before a colon", get + b"Transfer-Encoding   : chunked\r\n\r\n", 400),
            ("a blank before another colon", get + b"X-Forwarded-For : 1.2.3.4\r\n\r\n", 400),
            ("obs-fold", get + auth + b"X-A: b\r\n c\r\n\r\n", 400),
            ("obs-fold in Content-Length", b"POST /api/v1/presence HTTP/1.1\r\nHost: x\r\n" +
             auth + b"Content-Length: 1\r\n 9\r\n\r\n{}", 400),
            ("a LF alone", b"GET /healthz HTTP/1.1\nHost: x\n\n", 400),
            ("a CR alone", b"GET /healthz HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", 400),
            ("a NUL in a value", get + b"X-A: a\x00b\r\n\r\n", 400),
            ("an unknown method", b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 501),
            ("HTTP/2.0", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("two Authorization", get + auth + auth + b"\r\n", 400),
            # a body goes with POST and PUT only: another request's would wait for nobody
            ("a GET with a body", get + auth + b"Content-Length: 5\r\n\r\nhello", 400),
            ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
            ("an expectation other than 100-continue", get + auth + b"Expect: 200-ok\r\n\r\n",
             417),
            ("a WebSocket handshake with a body",
             b"GET /api/v1/messages/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello", 400),
        ]
        for name, raw, want in cases:
            with self.subTest(name):
                code, headers, body, closed, took = raw_exchange(port, raw)
                self.assertEqual(code, want, f"{name}: {body[:200]!r}")
                self.assertLess(took, 2, f"{name}: answered at once")
                self.assertTrue(closed, f"{name}: closed after the answer")
                self.assertEqual(headers.get("connection"), "close", name)
                if want != 200:
                    doc = json.loads(body.split(b"\n", 1)[0])
                    self.assertEqual(doc["status"], want, name)
                    self.assertTrue(doc.get("detail"), f"{name}: {doc}")
        self.assertRegex(self.sd.child.log(), r"http: refused a request: 431 ")
        self.assert_intact()

    def test_expect_100_continue(self):
        """A client that sends Expect: 100-continue and waits gets the 100 before it sends
        the body, then the answer to the request."""
        token = self.sd.token(ALICE).encode()
        body = b'{"read_receipts": true}'
        s = socket.create_connection(("127.0.0.1", self.sd.http_port), timeout=5)
        try:
            s.sendall(b"PUT /api/v1/preferences HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                      token + b"\r\nContent-Type: application/json\r\nExpect: 100-continue"
                      b"\r\nContent-Length: %d\r\n\r\n" % len(body))
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "closed before the 100")
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), got[:100])
            s.sendall(body)
            got = got[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "closed before the answer")
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
        finally:
            s.close()

    def test_slow_request_heads(self):
        """A client that sends no complete head within http_head_timeout is closed; of
        more than http_head_pending_max such clients the oldest are closed; others are
        served all the while, at once."""
        sd = self.sb.statusd(self.pg, name="statusd-slow",
                             settings={"http_head_timeout": "2s", "http_head_pending_max": "4"})
        stalled = []
        for i in range(6):
            c = socket.create_connection(("127.0.0.1", sd.http_port), timeout=10)
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: %d" % i)
            stalled.append(c)
        start = time.monotonic()
        self.assertEqual(sd.http("/healthz")[0], 200)
        self.assertLess(time.monotonic() - start, 1, "served beside the slow clients")
        # the two oldest were pushed out at once
        for c in stalled[:2]:
            self.assertEqual(c.recv(100), b"", "the oldest are closed")
        # the others, after the timeout
        for c in stalled[2:]:
            self.assertEqual(c.recv(100), b"", "closed after http_head_timeout")
        self.assertLess(time.monotonic() - start, 5)
        for c in stalled:
            c.close()
        log = sd.child.log()
        self.assertIn("(http_head_pending_max): closed the oldest", log)
        self.assertIn("no complete request head within http_head_timeout", log)
        # a head that arrives a byte at a time, in time, is served
        c = socket.create_connection(("127.0.0.1", sd.http_port), timeout=10)
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n":
            c.send(bytes([b]))
            time.sleep(0.01)
        self.assertTrue(c.recv(100).startswith(b"HTTP/1.1 200"))
        c.close()
        sd.stop()

    def test_out_of_descriptors(self):
        """statusd out of file descriptors stops accepting for a second at a time (one
        warning each) instead of spinning on its readable listening socket, and serves
        again once descriptors are free."""
        sd = self.sb.statusd(self.pg, name="statusd-emfile")
        pid = sd.child.pid
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        subprocess.run(["prlimit", f"--pid={pid}",
                        f"--nofile={len(os.listdir(f'/proc/{pid}/fd')) + 3}:{hard}"], check=True)
        conns = [socket.create_connection(("127.0.0.1", sd.http_port), timeout=5)
                 for _ in range(20)]
        time.sleep(3)
        warnings = sd.child.log().count("accepting again in a second")
        self.assertGreaterEqual(warnings, 1)
        self.assertLessEqual(warnings, 5, "one try and one warning a second, no busy loop")
        for c in conns:
            c.close()
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}"], check=True)
        time.sleep(1.5)
        self.assertEqual(sd.http("/healthz")[0], 200)
        sd.stop()

    def test_feed_connections_per_user(self):
        """One user's feed connections (WebSocket and SSE together) stop at
        feed_max_per_user: one more is refused with close 4429 or a 429 and a log line,
        while another user is served, and a connection that ends frees its place."""
        # a statusd of its own, on the same database; a user no other test follows
        sd = self.sb.statusd(self.pg, name="statusd-feedcap",
                             settings={"feed_max_per_user": "3"})
        capped = "capped@example.org"
        token, bob = sd.token(capped), sd.token(BOB)
        open_ = [ws_connect(sd, token), ws_connect(sd, token)]
        sse = Sse(sd, token)
        for ws in open_:
            self.assertEqual(json.loads(ws.recv())["type"], "hello")
        self.assertEqual(sse.resp.status, 200)
        self.assertEqual(sse.next()[0], "hello")
        # a fourth, either way, is refused
        ws = ws_connect(sd, token)
        frame = ws.frame_buffer.recv_frame()
        ws.close()
        self.assertEqual(frame.opcode, websocket.ABNF.OPCODE_CLOSE,
                         f"the fourth is refused, not served: {frame.data[:60]!r}")
        code, reason = struct.unpack("!H", frame.data[:2])[0], frame.data[2:].decode()
        self.assertEqual(code, 4429, reason)
        self.assertIn("too many feed connections", reason)
        extra = Sse(sd, token)
        self.assertEqual(extra.resp.status, 429)
        doc = json.loads(extra.resp.read())
        extra.close()
        self.assertIn("too many feed connections", doc["detail"])
        wait_for("the log line", lambda: f"refused a feed connection for {capped}"
                 in sd.child.log(), timeout=10)
        # bob is served all the while, on both feeds
        ws = ws_connect(sd, bob)
        self.assertEqual(json.loads(ws.recv())["type"], "hello")
        s = Sse(sd, bob)
        self.assertEqual((s.resp.status, s.next()[0]), (200, "hello"))
        # and the open feeds go on: an event of the user's reaches them
        sd.send_events([event("queued", tracking_id="sec-cap", recipient=BOB, sender=capped,
                              sasl_user=capped, message_id="<sec-cap@example.org>")])
        for w in open_:
            while json.loads(w.recv())["type"] != "event":
                pass
        ev, _, data = sse.next()
        self.assertEqual((ev, data["tracking_id"]), ("status", "sec-cap"))
        # one of them ends: its place is free again
        open_.pop().close()

        def fourth_accepted():
            w = ws_connect(sd, token)
            try:
                return json.loads(w.recv()).get("type") == "hello"
            except (websocket.WebSocketException, ValueError):  # closed: 4429 still
                return False
            finally:
                w.close()
        wait_for("a place freed", fourth_accepted, timeout=10, interval=0.2)
        for w in open_ + [ws]:
            w.close()
        sse.close()
        s.close()
        sd.stop()

    def test_websocket_hostile_input(self):
        alice = self.sd.token(ALICE)
        # an upgrade anywhere but the stream path is refused
        with self.assertRaises(websocket.WebSocketException):
            websocket.create_connection(f"ws://127.0.0.1:{self.sd.http_port}/api/v1/messages"
                                        "?access_token=" + urllib.parse.quote(alice), timeout=10)
        frames = [  # (name, raw frame bytes after the hello, acceptable close codes)
            # a first fragment without its end: messages are one frame of at most 1 KiB
            ("a fragmented message", b"\x01\x85" + b"\x00" * 4 + b'{"typ', (1009, 1002)),
            # client frames must be masked
            ("an unmasked frame", b"\x81\x0f" + b'{"type":"ping"}', (1002, None)),
            # a length of 2^62 bytes
            ("a huge announced length", b"\x81\xff" + struct.pack("!Q", 1 << 62) +
             b"\x00" * 4 + b"x" * 100, (1009, 1002, None)),
            ("a reserved opcode", b"\x83\x80" + b"\x00" * 4, (1002, None)),
            ("a binary frame", b"\x82\x84" + b"\x00" * 4 + b"\xff\xfe\xfd\xfc", (1003, None)),
        ]
        for name, raw, want in frames:
            ws = ws_connect(self.sd, alice)
            self.assertEqual(json.loads(ws.recv())["type"], "hello")
            ws.sock.sendall(raw)
            try:
                code = ws_close_code(ws)[0]
            except (websocket.WebSocketException, OSError):
                code = None  # closed without a close frame
            ws.close()
            self.assertIn(code, want, f"{name}: got {code}, want {want}")
            self.assertEqual(self.sd.http("/healthz")[0], 200, f"still serving after {name}")
        # and a good client is unaffected
        ws = ws_connect(self.sd, alice)
        json.loads(ws.recv())
        ws.send(json.dumps({"type": "ping"}))
        self.assertEqual(json.loads(ws.recv()), {"type": "pong"})
        ws.close()

    # --- tokens --------------------------------------------------------------------------

    def test_signed_tokens_over_http(self):
        now = int(time.time())
        claims = {"sub": ALICE, "iat": now, "exp": now + 600}
        key = self.sd.secret.encode()
        good = jwt({"alg": "HS256", "typ": "JWT"}, claims, key)
        head, payload, sig = good.split(".")
        evil = b64(json.dumps(dict(claims, sub=MALLORY)).encode())
        none_head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        cases = [  # (name, token)
            ("signed with another secret", jwt({"alg": "HS256"}, claims, os.urandom(48))),
            ("the secret base64-decoded", jwt({"alg": "HS256"}, claims,
                                              base64.b64decode(self.sd.secret))),
            ("alg none, no signature", f"{none_head}.{payload}."),
            ("alg none, the old signature", f"{none_head}.{payload}.{sig}"),
            ("another user's claims under alice's signature", f"{head}.{evil}.{sig}"),
            ("HS512", jwt({"alg": "HS512"}, claims, key)),
            ("a crit header", jwt({"alg": "HS256", "crit": ["exp"]}, claims, key)),
            ("not valid yet", jwt({"alg": "HS256"}, dict(claims, nbf=now + 300), key)),
            ("expired", jwt({"alg": "HS256"}, dict(claims, iat=now - 600, exp=now - 1), key)),
            ("no exp", jwt({"alg": "HS256"}, {"sub": ALICE, "iat": now}, key)),
        ]
        for name, token in cases:
            code, doc = self.sd.api("/api/v1/messages", token)
            self.assertEqual(code, 401, f"{name}: got {code} {doc}")
            ws = ws_connect(self.sd, token)
            self.assertEqual(ws_close_code(ws)[0], 4401, name)
            self.assertNotIn(token, self.sd.child.log(), f"{name}: the token is not logged")
        self.assertEqual(self.sd.api("/api/v1/messages", good)[0], 200)
        # the user name is compared without case, as statusd lower-cases it
        code, doc = self.sd.status("sec-a1", ALICE.upper())
        self.assertEqual(code, 200, doc)

    def test_feeds_end_when_the_token_expires(self):
        token = self.sd.token(ALICE, ttl=3)
        ws = ws_connect(self.sd, token)
        self.assertEqual(json.loads(ws.recv())["type"], "hello")
        s = Sse(self.sd, token)
        self.assertEqual(s.next()[0], "hello")
        t0 = time.monotonic()
        code, reason = ws_close_code(ws)
        self.assertEqual((code, reason), (4401, "the token has expired"))
        self.assertLess(time.monotonic() - t0, 6)
        ev, _, data = s.next()
        self.assertEqual((ev, data["reason"]), ("error", "the token has expired"))
        with self.assertRaises(EOFError):
            s.next()
        s.close()
        # a token without an end (an API token made without --expires) keeps its feed
        res = self.ctl("--json", "token", "create", ALICE)
        forever = json.loads(res.stdout)["token"]
        ws = ws_connect(self.sd, forever)
        json.loads(ws.recv())
        self.send([event("relayed", tracking_id="sec-a1", recipient=BOB)])
        self.assertEqual(json.loads(ws.recv())["status"], "relayed")
        ws.close()

    # --- replay and takeover ---------------------------------------------------------

    def test_replayed_events_and_receipts(self):
        self.send([event("queued", tracking_id="sec-r1", recipient=BOB, sender=ALICE,
                         sasl_user=ALICE, offset_ms=-5000)])
        read = event("read", tracking_id="sec-r1", recipient=BOB)
        for _ in range(3):
            self.send([read])
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE tracking_id = 'sec-r1' AND type = 7"), "1")
        # the same id and time with other contents is the same event: the first stays
        self.send([dict(read, recipient="eve@example.net", type="deleted")])
        self.assertEqual(self.pg.psql("SELECT type, recipient FROM events"
                                      " WHERE tracking_id = 'sec-r1' ORDER BY log_offset"),
                         [["1", BOB], ["7", BOB]])
        # a second queued event for the message cannot change whose it is
        self.send([event("queued", tracking_id="sec-r1", recipient="eve@example.net",
                         sender=MALLORY, sasl_user=MALLORY)])
        self.assertEqual(self.sd.status("sec-r1", MALLORY)[0], 404)
        self.assertEqual(self.pg.scalar(
            "SELECT owner FROM messages WHERE tracking_id = 'sec-r1'"), ALICE)
        # a manual receipt posted again: another read event, the status stays read
        bob = self.sd.token(BOB)
        for _ in range(2):
            code, doc = self.sd.api("/api/v1/messages/sec-r1/receipt", bob, method="POST")
            self.assertEqual(code, 202, doc)
        code, doc = self.sd.status("sec-r1", ALICE)
        got = {r["recipient"]: (r["status"], r["displayed"]) for r in doc["recipients"]}
        self.assertEqual(got[BOB], ("read", "yes"))
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE tracking_id = 'sec-r1' AND type = 7"), "3",
            "the replayed read once, and each receipt")

    # --- authorization across users and domains ---------------------------------------

    def test_domain_admins_see_their_domain_only(self):
        self.send([event("queued", tracking_id=t, recipient=BOB, sender=s, sasl_user=s,
                         offset_ms=-4000)
                   for t, s in (("sec-d-org", MALLORY), ("sec-d-com", CAROL.upper()),
                                ("sec-d-sub", DAVE), ("sec-d-two", "x@example.com@example.net"))])
        res = self.ctl("user", "admin", "postmaster@example.com", "example.com")
        self.assertEqual(res.returncode, 0, res.stderr)
        res = self.ctl("--json", "token", "create", "postmaster@example.com")
        api_token = json.loads(res.stdout)["token"]
        for token in (self.sd.token("postmaster@example.com"), api_token):
            code, doc = self.sd.api("/api/v1/messages", token)
            self.assertEqual([m["tracking_id"] for m in doc["messages"]], ["sec-d-com"],
                             "not example.org, not sub.example.com")
            for tid, want in (("sec-d-com", 200), ("sec-d-org", 404), ("sec-d-sub", 404),
                              ("sec-d-two", 404), ("sec-a1", 404)):
                code, doc = self.sd.api(f"/api/v1/messages/{tid}/status", token)
                self.assertEqual(code, want, f"{tid}: {doc}")
        # an administrator of a domain is not one of its parent or of its subdomains
        res = self.ctl("user", "admin", "hostmaster@example.com", "com")
        self.assertEqual(res.returncode, 0, res.stderr)
        code, doc = self.sd.api("/api/v1/messages", self.sd.token("hostmaster@example.com"))
        self.assertEqual(doc["messages"], [])
        # a sender's domain is what follows the last '@', in the list as in the status
        res = self.ctl("user", "admin", "postmaster@example.net", "example.net")
        self.assertEqual(res.returncode, 0, res.stderr)
        net = self.sd.token("postmaster@example.net")
        code, doc = self.sd.api("/api/v1/messages", net)
        self.assertEqual([m["tracking_id"] for m in doc["messages"]], ["sec-d-two"])
        code, doc = self.sd.api("/api/v1/messages/sec-d-two/status", net)
        self.assertEqual(code, 200, doc)
        # the feeds: the domain's events, and nobody else's
        admin = self.sd.token("postmaster@example.com")
        ws = ws_connect(self.sd, admin)
        json.loads(ws.recv())
        self.send([event("relayed", tracking_id="sec-d-org", recipient=BOB)])
        self.send([event("relayed", tracking_id="sec-d-sub", recipient=BOB)])
        self.send([event("relayed", tracking_id="sec-d-com", recipient=BOB)])
        self.assertEqual(json.loads(ws.recv())["tracking_id"], "sec-d-com")
        ws.close()
        # and a message of their domain is not one they can receipt: only recipients can
        code, doc = self.sd.api("/api/v1/messages/sec-d-com/receipt", admin, method="POST")
        self.assertEqual(code, 404, doc)

    def test_resume_from_memory_shows_only_ones_own(self):
        """A feed resumed near the head is served from statusd's memory, where only the
        subscriber's rights keep others' events out (no SQL filters them there): Mallory,
        and Bob, a recipient of Alice's mail, resuming over WebSocket and SSE get their
        own events and none of Alice's in between; Alice gets hers and none of theirs."""
        rcpt = {"sec-r-a": BOB, "sec-r-m": CAROL, "sec-r-b": CAROL}
        # a feed says hello once statusd knows the log's head; from then on what is
        # logged is also kept in memory (before, a resume reads PostgreSQL)
        ws = ws_connect(self.sd, self.sd.token(ALICE))
        self.assertEqual(json.loads(ws.recv())["type"], "hello")
        ws.close()
        for tid, who in (("sec-r-a", ALICE), ("sec-r-m", MALLORY), ("sec-r-b", BOB)):
            self.send([event("queued", tracking_id=tid, recipient=rcpt[tid], sender=who,
                             sasl_user=who, offset_ms=-3000)])
        log = self.sd.http("/healthz")[1]["log"]
        epoch, start = log["epoch"], log["head"]
        # Alice's events before, between and after the others'
        order = ["sec-r-a", "sec-r-m", "sec-r-a", "sec-r-b", "sec-r-a", "sec-r-m", "sec-r-a"]
        for i, tid in enumerate(order):
            self.send([event("deferred", tracking_id=tid, recipient=rcpt[tid],
                             offset_ms=-2000 + i)])
        rows = self.pg.psql("SELECT e.log_offset, m.tracking_id FROM events e JOIN messages m "
                            f"ON m.id = e.message WHERE e.log_offset > {start} "
                            "ORDER BY e.log_offset")
        self.assertEqual([t for _, t in rows], order)
        for user, tid in ((MALLORY, "sec-r-m"), (BOB, "sec-r-b"), (ALICE, "sec-r-a")):
            want = [(int(o), t) for o, t in rows if t == tid]
            token = self.sd.token(user)
            ws = ws_connect(self.sd, token, f"?offset={start}&epoch={epoch}")
            hello = json.loads(ws.recv())
            self.assertEqual((hello["type"], hello["from"]), ("hello", start))
            got = []
            for _ in want:
                ev = json.loads(ws.recv())
                got.append((ev["offset"], ev["tracking_id"]))
            ws.close()
            self.assertEqual(got, want, f"{user} over WebSocket")
            sse = Sse(self.sd, token, last_event_id=f"{epoch}-{start}")
            kind, _, hello = sse.next()
            self.assertEqual((kind, hello["from"]), ("hello", start))
            got = []
            for _ in want:
                kind, _, ev = sse.next()
                self.assertEqual(kind, "status")
                got.append((ev["offset"], ev["tracking_id"]))
            sse.close()
            self.assertEqual(got, want, f"{user} over SSE")

    def test_a_copied_message_id_does_not_hide_a_message(self):
        """Mallory sends mail with the Message-ID of Alice's (she got a copy): Alice still
        finds her own message by it, Mallory finds hers, and nobody sees the other's."""
        mid = "<sec-copied@example.org>"
        self.send([event("queued", tracking_id="sec-c-a", recipient=BOB, sender=ALICE,
                         sasl_user=ALICE, message_id=mid, offset_ms=-3000)])
        self.send([event("queued", tracking_id="sec-c-m", recipient=BOB, sender=MALLORY,
                         sasl_user=MALLORY, message_id=mid, offset_ms=-2000)])
        for user, want in ((ALICE, "sec-c-a"), (MALLORY, "sec-c-m")):
            for ref in (mid, mid[1:-1]):
                for kind in ("status", "timeline"):
                    code, doc = self.sd.api(f"/api/v1/messages/{urllib.parse.quote(ref)}/"
                                            f"{kind}", self.sd.token(user))
                    self.assertEqual((code, doc.get("tracking_id")), (200, want),
                                     f"{user} {kind} {ref}: {doc}")
        code, doc = self.sd.status(mid, BOB)
        self.assertEqual(code, 404, "a recipient is not a sender")

    def test_typing_is_told_only_to_whom(self):
        who = "typist@example.net"
        token = self.sd.token(who)
        self.sd.api("/api/v1/preferences", token, method="PUT", body={"presence": True})
        code, _ = self.sd.api("/api/v1/presence", token, method="POST",
                              body={"state": "typing", "to": ALICE})
        self.assertEqual(code, 200)
        for viewer, want in ((ALICE, ALICE), (ALICE.upper(), ALICE), (who, ALICE),
                             (MALLORY, None)):
            code, doc = self.sd.api("/api/v1/presence/" + who, self.sd.token(viewer))
            self.assertEqual((code, doc["online"], doc["typing_to"]), (200, True, want),
                             f"seen by {viewer}")

    # --- modes ---------------------------------------------------------------------------

    def test_event_socket_mode(self):
        path = self.sd.socket_path
        st = os.lstat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(mode(path), 0o660, "events_socket_mode")
        import grp
        self.assertEqual(st.st_gid, grp.getgrnam("mail").gr_gid, "events_socket_group")


class ProducerSecurityTest(unittest.TestCase):
    """The milter and the log follower: their sockets, spools and state files."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.milter = cls.sb.milter(cls.sd, settings={"milter_socket_mode": "0660"})
        cls.maillog = cls.sb.path("maillog")
        open(cls.maillog, "w").close()
        cls.logd = cls.sb.logd(cls.sd, maillog_file=cls.maillog)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def test_milter_socket_and_spool_modes(self):
        wait_for("milter_socket_mode", lambda: mode(self.milter.socket_path) == 0o660)
        self.assertEqual(mode(self.milter.spool_dir), 0o700)
        for name in os.listdir(self.milter.spool_dir):
            self.assertEqual(mode(os.path.join(self.milter.spool_dir, name)) & 0o077, 0,
                             f"spool file {name}")

    def test_logd_state_modes(self):
        state = self.logd.settings["state_dir"]
        self.assertEqual(mode(state), 0o700)
        with open(self.maillog, "a") as f:
            f.write("Dec  1 10:00:00 host postfix/qmgr[1]: 4XbWyF2n3Lz7Qk: removed\n")
        wait_for("the position file", lambda: os.path.exists(self.logd.position_file))
        for name in os.listdir(state):
            self.assertEqual(mode(os.path.join(state, name)) & 0o077, 0, f"state file {name}")

    def milter_packet(self, cmd, data=b""):
        return struct.pack("!I", len(data) + 1) + cmd + data

    def milter_negotiate(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.milter.socket_path)
        s.sendall(self.milter_packet(b"O", struct.pack("!III", 6, 0x1ff, 0x1fffff)))
        head = s.recv(5)
        s.close()
        return head[4:5]

    def test_milter_socket_hostile_input(self):
        self.assertEqual(self.milter_negotiate(), b"O")
        junk = [
            b"\xff\xff\xff\xff" + b"x" * 100,              # a 4 GiB packet announced
            self.milter_packet(b"Z", b"\x00" * 50),          # an unknown command
            self.milter_packet(b"H", b"no-nul-terminator"),  # HELO without its NUL
            self.milter_packet(b"M", b"<a@example.org>"),    # MAIL before negotiation
            b"\x00\x00",                                    # half a length
        ]
        for raw in junk:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(self.milter.socket_path)
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
            s.close()
            self.assertEqual(self.milter_negotiate(), b"O", f"still serving after {raw[:8]!r}")
        self.assertTrue(self.milter.child.alive())


class PluginSecurityTest(unittest.TestCase):
    """The Dovecot plugin's pickup files (as root: Dovecot runs as the mail user)."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (a private Dovecot)")
        cls.sb = Sandbox()
        cls.pg = cls.sb.postgres()
        cls.sd = cls.sb.statusd(cls.pg)
        cls.dc = cls.sb.dovecot(users={"bob@example.org": "bob-secret"},
                                mail_plugins=["notify", "msgstatus"],
                                plugin_paths=[paths.binary(
                                    "dovecot-plugin/lib90_msgstatus_plugin.so")],
                                plugin=cls.sd.dovecot_plugin_settings())

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def test_pickup_files_are_not_for_others(self):
        from msgsandbox.postfix import make_message
        import pwd
        user = "bob@example.org"
        self.assertTrue(all("ack" in r for r in self.sd.send_events(
            [event("queued", tracking_id="sec-plug", recipient=user, sender=ALICE,
                   sasl_user=ALICE)])))
        self.sd.stop()
        try:
            self.dc.deliver(user, make_message(ALICE, [user], subject="sec-plug",
                                               headers=[("Msgstatus-Id", "sec-plug")]))
            names = wait_for("a pickup file", lambda: [
                n for n in os.listdir(self.sd.pickup_dir) if n.endswith(".events")])
            for n in names:
                path = os.path.join(self.sd.pickup_dir, n)
                self.assertEqual(mode(path), 0o640, n)
                self.assertEqual(os.lstat(path).st_uid, pwd.getpwnam("mail").pw_uid,
                                 "written by the mail user")
        finally:
            self.sd.start()
        wait_for("the delivered event", lambda: self.pg.scalar(
            "SELECT count(*) FROM events WHERE tracking_id = 'sec-plug' AND type = 4") == "1")


if __name__ == "__main__":
    main()
