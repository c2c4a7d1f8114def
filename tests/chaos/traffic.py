"""Traffic for the chaos suite: mail submitted over SMTP and read over IMAP, all the time,
with every outcome and every command's latency recorded.

The sender submits one message a turn, authenticated (SMTP AUTH, through Dovecot), to a
local recipient (LMTP into Dovecot) and a remote one (smtp-sink), each with a Message-ID of
its own, and records the SMTP transaction's time and result. When AUTH is not available
(Dovecot is down) it tries again a second later, as a mail client would, and records the
phase of each retry. The reader keeps one IMAP session open as the local
recipient and reads every unseen message with FETCH BODY[] (which sets \\Seen, so the
Dovecot plugin reports `read`), reconnecting when the session breaks; it records each
FETCH's time and every failure. Each record carries the phase (the fault) during which it
happened, so the report can say what a fault cost the mail system.
"""
import email.utils
import imaplib
import json
import random
import smtplib
import socket
import threading
import time

import websocket  # Debian's python3-websocket

from msgsandbox.postfix import make_message

SENDER = "alice@example.org"
LOCAL = "bob@example.org"
REMOTE = "carol@remote.example"


class Clock:
    """The phase now running, shared by the traffic threads and the fault schedule."""

    def __init__(self):
        self.lock = threading.Lock()
        self.phase = "start"

    def set(self, phase):
        with self.lock:
            self.phase = phase

    def get(self):
        with self.lock:
            return self.phase


class Sent:
    __slots__ = ("mid", "qid", "phase", "at", "seconds", "error", "retries")

    def __init__(self, mid, phase, at):
        self.mid, self.phase, self.at = mid, phase, at
        self.qid = None
        self.seconds = None
        self.error = None
        self.retries = []  # (phase, error) of each attempt that was tried again


class Traffic(threading.Thread):
    """A traffic thread: runs until stop(); what it recorded is read under its lock."""

    JOIN_SECONDS = 90

    def __init__(self, name):
        super().__init__(name=name, daemon=True)
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def stop(self):
        self.stopping.set()
        self.join(self.JOIN_SECONDS)

    def copy(self, items):
        with self.lock:
            return list(items)


class Sender(Traffic):
    """Submit mail at `rate` messages/s until stopped."""

    RETRIES = 120  # a second apart: a client's retries while SMTP AUTH (Dovecot) is away

    def __init__(self, postfix, clock, rate, auth):
        super().__init__("chaos-sender")
        self.postfix = postfix
        self.clock = clock
        self.interval = 1.0 / rate
        self.auth = auth
        self.sent = []
        self.n = 0

    def submit_one(self):
        self.n += 1
        mid = email.utils.make_msgid(idstring=f"chaos{self.n}", domain="chaos.test")
        rec = Sent(mid, self.clock.get(), time.time())
        msg = make_message(SENDER, [LOCAL, REMOTE], subject=f"chaos {self.n}",
                           body="A message of the chaos suite.\n" * 20, message_id=mid)
        while True:
            t0 = time.monotonic()
            try:
                rec.qid = self.postfix.send(SENDER, [LOCAL, REMOTE], message=msg,
                                            auth=self.auth, timeout=60)
            except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError,
                    smtplib.SMTPServerDisconnected) as e:
                # SMTP AUTH goes through Dovecot: while it is away, AUTH is not offered, or
                # smtpd exits ("no SASL authentication mechanisms") and drops the session
                # before the message. A client tries again; the report says where it had to.
                if len(rec.retries) < self.RETRIES and not self.stopping.is_set():
                    rec.retries.append((self.clock.get(), f"{type(e).__name__}: {e}"[:200]))
                    time.sleep(1.0)
                    continue
                rec.error = f"{type(e).__name__}: {e}"[:300]
            except (smtplib.SMTPException, OSError) as e:
                rec.error = f"{type(e).__name__}: {e}"[:300]
            rec.seconds = time.monotonic() - t0
            break
        with self.lock:
            self.sent.append(rec)

    def run(self):
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.submit_one()
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)
            else:
                next_at = time.monotonic()

    def records(self):
        return self.copy(self.sent)


class Sample:
    __slots__ = ("phase", "at", "seconds", "error")

    def __init__(self, phase, at, seconds, error=None):
        self.phase, self.at, self.seconds, self.error = phase, at, seconds, error


class Reader(Traffic):
    """Read the local recipient's new mail over IMAP until stopped."""

    def __init__(self, dovecot, clock, poll=0.2):
        super().__init__("chaos-reader")
        self.dovecot = dovecot
        self.clock = clock
        self.poll = poll
        self.samples = []  # one per FETCH, and one per failed session or command
        self.imap = None
        self.idle = threading.Event()  # set after a pass that found nothing unseen

    def _record(self, seconds, error=None):
        with self.lock:
            self.samples.append(Sample(self.clock.get(), time.time(), seconds, error))

    def _session(self):
        if self.imap is None:
            self.imap = self.dovecot.imap(LOCAL, timeout=30)
            self.imap.select("INBOX")
        return self.imap

    def _drop_session(self):
        if self.imap is not None:
            try:
                self.imap.shutdown()
            except (OSError, imaplib.IMAP4.error):
                pass
        self.imap = None

    def one_pass(self):
        """Read every unseen message once; returns how many were read."""
        c = self._session()
        typ, data = c.uid("SEARCH", None, "UNSEEN")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"SEARCH: {typ} {data}")
        uids = data[0].split()
        random.shuffle(uids)
        for uid in uids:
            t0 = time.monotonic()
            typ, data = c.uid("FETCH", uid, "(BODY[])")
            if typ != "OK":
                raise imaplib.IMAP4.error(f"FETCH: {typ} {data}")
            self._record(time.monotonic() - t0)
            if self.stopping.is_set():
                break
        c.noop()  # let the session see new mail
        return len(uids)

    def run(self):
        while not self.stopping.is_set():
            try:
                if self.one_pass() == 0:
                    self.idle.set()
                else:
                    self.idle.clear()
            except (imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError, socket.timeout,
                    EOFError) as e:
                self._record(0.0, f"{type(e).__name__}: {e}"[:300])
                self._drop_session()
                self.idle.clear()
                self.stopping.wait(0.5)
                continue
            self.stopping.wait(self.poll)
        self._drop_session()

    def records(self):
        return self.copy(self.samples)


class Follower(Traffic):
    """The sender's live feed over WebSocket, resumed from its last offset and epoch after
    every break (statusd killed, stopped, or closing a slow consumer)."""

    JOIN_SECONDS = 30

    def __init__(self, statusd, token, clock):
        super().__init__("chaos-follower")
        self.statusd = statusd
        self.token = token
        self.clock = clock
        self.offsets = []  # every event's offset, in the order received
        self.epoch = None
        self.breaks = []  # (phase, why) of each reconnect
        self.resets = 0

    def _url(self):
        url = (f"ws://127.0.0.1:{self.statusd.http_port}/api/v1/messages/stream"
               f"?access_token={self.token}")
        with self.lock:
            if self.epoch is None:  # from the log's start: epoch unknown, so a reset
                return url + "&offset=0&epoch=1"
            last = self.offsets[-1] if self.offsets else 0
        return url + f"&offset={last}&epoch={self.epoch}"

    def run(self):
        while not self.stopping.is_set():
            ws = None
            try:
                ws = websocket.create_connection(self._url(), timeout=2)
                while not self.stopping.is_set():
                    try:
                        data = ws.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if not data:
                        raise ConnectionError("closed by statusd")
                    doc = json.loads(data)
                    with self.lock:
                        if doc.get("type") == "hello":
                            if doc.get("reset") and self.epoch is not None:
                                self.resets += 1
                            self.epoch = doc["epoch"]
                        elif doc.get("type") == "event":
                            self.offsets.append(doc["offset"])
            except (websocket.WebSocketException, OSError, ConnectionError, ValueError) as e:
                with self.lock:
                    self.breaks.append((self.clock.get(), f"{type(e).__name__}: {e}"[:200]))
                self.stopping.wait(0.3)
            finally:
                if ws is not None:
                    ws.close()

    def received(self):
        return self.copy(self.offsets)


def percentile(values, p):
    """The p-th percentile (nearest rank) of values, or None for none."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]
