"""The Roundcube plugin (webmail/roundcube/msgstatus) in a real Roundcube 1.6 (Debian's
roundcube-core, served by PHP on 127.0.0.1, IMAP to the private Dovecot), in headless
Chromium, with the whole private chain behind it (Postfix + milter, LMTP into Dovecot with
the plugin, msgstatus-logd, statusd, PostgreSQL):

- the Sent folder's list shows a mark per tracked message: delivered, then read — live,
  without reloading — when the recipient reads it over IMAP;
- the message view shows each recipient's status;
- a recipient at another site: a verified DSN's delivered shows ✓✓, then a verified
  MDN's read a blue ✓✓, live (report events on statusd's event socket, as the milter
  sends them);
- Settings → Delivery status shows and saves the user's read-receipt switch in statusd;
- a user who is not the sender sees no status of the message in their own Roundcube;
- the browser never holds the shared secret: it gets short-lived signed tokens.
"""
import email.utils
import imaplib
import time
import unittest

from e2e import event, mail_chain, main, require_root
from msgsandbox import browser as browser_mod, free_port
from msgsandbox import roundcube as roundcube_mod
from msgsandbox.core import wait_for
from msgsandbox.postfix import make_message

ALICE, BOB = "alice@example.org", "bob@example.org"
USERS = {ALICE: "alice-secret", BOB: "bob-secret"}

MARK = """
const row = [...document.querySelectorAll('#messagelist tr')]
  .find((tr) => tr.textContent.includes(arguments[0]));
const mark = row && row.querySelector('.msgstatus-mark');
return mark ? (mark.dataset.status || '') : null;"""


class RoundcubeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        for why in (browser_mod.available(), roundcube_mod.available()):
            if why:
                raise unittest.SkipTest(why)
        rc_port = free_port()
        mail_chain(cls, USERS, {"http_cors_origins": f"http://127.0.0.1:{rc_port}"})
        cls.rc = cls.sb.roundcube(cls.sd, cls.dovecot, cls.postfix, port=rc_port)

    @classmethod
    def tearDownClass(cls):
        errors = cls.rc.errors() if hasattr(cls, "rc") else ""
        cls.sb.close()
        if "msgstatus" in errors:
            raise AssertionError("Roundcube logged errors of the plugin:\n" + errors[-2000:])

    # helpers
    def login(self, user):
        b = browser_mod.Browser(self.sb, name=f"browser-{user.split('@')[0]}-{time.monotonic_ns()}")
        b.open(self.rc.url + "/")
        b.wait("the login form", lambda: b.js("return !!document.getElementById('rcmloginuser')"))
        b.js("document.getElementById('rcmloginuser').value = arguments[0];"
             "document.getElementById('rcmloginpwd').value = arguments[1];"
             "document.getElementById('rcmloginsubmit').click();", user, USERS[user])
        b.wait("the mailbox", lambda: b.js("return !!document.getElementById('messagelist')"),
               timeout=30)
        return b

    def send_and_keep(self, subject, rcpts=(BOB,)):
        """alice sends through Postfix and files a copy in her Sent folder, as a mail client
        does; returns the Message-ID."""
        mid = email.utils.make_msgid(domain="example.org")
        msg = make_message(ALICE, list(rcpts), subject=subject, message_id=mid)
        self.postfix.send(ALICE, list(rcpts), message=msg, auth=(ALICE, USERS[ALICE]))
        c = self.dovecot.imap(ALICE)
        try:
            c.create("Sent")  # fails harmlessly if Roundcube made it already
            typ, _ = c.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(time.time()), msg)
            self.assertEqual(typ, "OK")
        finally:
            c.logout()
        wait_for(f"{subject} delivered", lambda: self.status(mid) == "delivered", timeout=30)
        return mid

    def status(self, mid, user=ALICE):
        code, doc = self.sd.status(mid, user=user)
        return doc["recipients"][0]["status"] if code == 200 and doc["recipients"] else None

    def read(self, user, subject):
        c = self.dovecot.imap(user)
        try:
            c.select("INBOX")
            _, data = c.uid("SEARCH", None, "SUBJECT", subject)
            c.uid("STORE", data[0].split()[-1], "+FLAGS", "(\\Seen)")
        finally:
            c.logout()
        return time.monotonic()

    # tests
    def test_sent_list_mark_goes_live_and_message_view(self):
        b = self.login(ALICE)
        self.send_and_keep("rc-live-1")
        b.open(self.rc.url + "/?_task=mail&_mbox=Sent")
        try:
            b.wait("the delivered mark in the Sent list",
                   lambda: b.js(MARK, "rc-live-1") == "delivered", timeout=30)
        except Exception:
            print("page console:", *b.console(), sep="\n  ")
            print("list:", b.js("const l = document.getElementById('messagelist');"
                                "return l && l.outerHTML.slice(0, 3000)"))
            raise
        self.assertEqual(b.js("return document.documentElement.dataset.msgstatus"), "live")
        self.assertNotIn(self.sd.secret, b.js("return document.documentElement.outerHTML"))
        done = self.read(BOB, "rc-live-1")
        b.wait("read, without a reload", lambda: b.js(MARK, "rc-live-1") == "read", timeout=10)
        print(f"\n  IMAP STORE -> mark in Roundcube's list: {(time.monotonic() - done) * 1000:.0f} ms")

        # the message view: each recipient's status
        uid = b.js("""const row = [...document.querySelectorAll('#messagelist tr')]
            .find((tr) => tr.textContent.includes('rc-live-1')); return row && row.uid;""")
        self.assertTrue(uid)
        b.open(self.rc.url + f"/?_task=mail&_mbox=Sent&_uid={uid}&_action=show")
        b.wait("the status panel", lambda: b.js(
            "const li = document.querySelector('.msgstatus-panel li.msgstatus-rcpt');"
            "return li && [li.dataset.recipient, li.dataset.status].join(' ')") == f"{BOB} read",
            timeout=20)

    def test_remote_delivered_and_read_by_reports(self):
        dave = "dave@remote.example"
        mid = email.utils.make_msgid(domain="example.org")
        tid = "rcreport" + "a" * 18
        self.sd.send_events([event("queued", tracking_id=tid, message_id=mid, recipient=dave,
                                   sender=ALICE, source="milter", offset_ms=-3000),
                             event("relayed", tracking_id=tid, recipient=dave,
                                   source="postfix", offset_ms=-2000)])
        c = self.dovecot.imap(ALICE)
        try:
            c.create("Sent")
            msg = make_message(ALICE, [dave], subject="rc-remote-1", message_id=mid)
            typ, _ = c.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(time.time()), msg)
            self.assertEqual(typ, "OK")
        finally:
            c.logout()
        b = self.login(ALICE)
        b.open(self.rc.url + "/?_task=mail&_mbox=Sent")
        b.wait("the relayed mark", lambda: b.js(MARK, "rc-remote-1") == "relayed", timeout=30)
        text = MARK.replace("mark.dataset.status || ''", "mark.textContent")
        color = MARK.replace("mark.dataset.status || ''", "getComputedStyle(mark).color")
        self.assertEqual(b.js(text, "rc-remote-1"), "✓")

        def report(kind, status, offset_ms):
            self.sd.send_events([event("report", tracking_id=tid, recipient=dave,
                                       source="milter", offset_ms=offset_ms,
                                       details={"kind": kind, "status": status,
                                                "dkim": "remote.example",
                                                "report_id": kind + "q" * 23})])
        report("dsn", "delivered", -1000)
        b.wait("delivered by the DSN", lambda: b.js(MARK, "rc-remote-1") == "delivered",
               timeout=10)
        self.assertEqual(b.js(text, "rc-remote-1"), "✓✓")
        plain = b.js(color, "rc-remote-1")
        report("mdn", "read", 0)
        b.wait("read by the MDN", lambda: b.js(MARK, "rc-remote-1") == "read", timeout=10)
        self.assertEqual(b.js(text, "rc-remote-1"), "✓✓")
        self.assertNotEqual(b.js(color, "rc-remote-1"), plain, "read: blue")

    def test_page_gets_fresh_tokens_from_roundcube(self):
        """The page asks Roundcube's server for a new signed token (when statusd refused the
        old one): it is for the logged-in user and statusd takes it."""
        b = self.login(ALICE)
        b.open(self.rc.url + "/?_task=mail&_mbox=Sent")
        b.wait("the plugin", lambda: b.js("return !!rcmail.env.msgstatus_token"), timeout=20)
        token = b.driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            rcmail.addEventListener('plugin.msgstatus_token', (d) => done(d.token));
            rcmail.http_post('plugin.msgstatus-token', {}, false);""")
        self.assertTrue(token)
        code, prefs = self.sd.api("/api/v1/preferences", token)
        self.assertEqual((code, prefs["user"]), (200, ALICE))

    def test_settings_switch_read_receipts(self):
        b = self.login(BOB)
        page = self.rc.url + "/?_task=settings&_action=edit-prefs&_section=msgstatus&_framed=1"
        b.open(page)
        b.wait("the switch", lambda: b.js(
            "const c = document.getElementById('msgstatus_read_receipts'); return c && c.checked"))
        b.js("document.getElementById('msgstatus_read_receipts').click(); rcmail.command('save');")
        b.wait("statusd has it", lambda: self.sd.api("/api/v1/preferences",
                                                     self.sd.token(BOB))[1]["read_receipts"]
               is False, timeout=15)
        b.open(page)
        b.wait("the switch shows off", lambda: b.js(
            "const c = document.getElementById('msgstatus_read_receipts');"
            "return c && !c.checked"))
        # and on again, so the other tests see bob's reads
        b.js("document.getElementById('msgstatus_read_receipts').click(); rcmail.command('save');")
        b.wait("statusd has it", lambda: self.sd.api("/api/v1/preferences",
                                                     self.sd.token(BOB))[1]["read_receipts"]
               is True, timeout=15)

    def test_cors_for_the_webmail_origin_only(self):
        """statusd lets Roundcube's pages call it (preflight included) and nobody else's;
        its own pages (the dashboard) may always open the feed."""
        import urllib.request
        import websocket

        def preflight(origin):
            req = urllib.request.Request(self.sd.url + "/api/v1/messages", method="OPTIONS",
                                         headers={"Origin": origin,
                                                  "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "authorization"})
            with urllib.request.urlopen(req, timeout=5) as r:
                return {k.lower(): v for k, v in r.headers.items()}
        h = preflight(self.rc.url)
        self.assertEqual(h.get("access-control-allow-origin"), self.rc.url)
        self.assertIn("Authorization", h.get("access-control-allow-headers", ""))
        self.assertIn("PUT", h.get("access-control-allow-methods", ""))
        h = preflight("http://evil.example")
        self.assertNotIn("access-control-allow-origin", h)

        token = self.sd.token(ALICE)
        feed = self.sd.url.replace("http:", "ws:") + f"/api/v1/messages/stream?access_token={token}"
        for origin, ok in ((self.rc.url, True), (self.sd.url, True),
                           ("http://evil.example", False)):
            try:
                ws = websocket.create_connection(feed, origin=origin, timeout=5)
                hello = ws.recv()
                ws.close()
                self.assertTrue(ok, f"{origin} was let in")
                self.assertIn('"hello"', hello)
            except (websocket.WebSocketBadStatusException,
                    websocket.WebSocketConnectionClosedException):  # lws drops it
                self.assertFalse(ok, f"{origin} was refused")

    def test_not_the_sender_sees_nothing(self):
        mid = self.send_and_keep("rc-private")
        b = self.login(BOB)
        c = self.dovecot.imap(BOB)
        try:
            c.select("INBOX")
            _, data = c.uid("SEARCH", None, "SUBJECT", "rc-private")
            uid = data[0].split()[-1].decode()
        finally:
            c.logout()
        b.open(self.rc.url + f"/?_task=mail&_mbox=INBOX&_uid={uid}&_action=show")
        b.wait("the message", lambda: "rc-private" in b.js("return document.body.innerText"))
        b.wait("the page's feed", lambda: b.js(
            "return document.documentElement.dataset.msgstatus") == "live", timeout=15)
        time.sleep(1)
        self.assertFalse(b.js("return !!document.querySelector('.msgstatus-panel')"))
        self.assertEqual(self.sd.status(mid, user=BOB)[0], 404)


if __name__ == "__main__":
    main()
