"""The dashboard statusd serves at "/", in a real headless Chromium (Debian's chromium and
chromedriver), against the whole private chain: Postfix with the milter, LMTP into Dovecot
with the plugin, msgstatus-logd, statusd and PostgreSQL.

- mail sent through Postfix appears in the sender's open page by itself, its recipients go
  delivered; read over IMAP, the recipient shows read in the page within a second, without
  a reload;
- a recipient who turned read receipts off in their own page never shows read, and no read
  event for them is stored;
- a user who is not the sender sees nothing of the message (page and API);
- statusd killed (SIGKILL) while the page is open: the page says it is reconnecting; mail
  sent and read meanwhile shows once statusd is back, and the open timeline holds exactly
  the message's events (none missing, none twice), all through the feed;
- where WebSocket is blocked, the page falls back to Server-Sent Events;
- opened while PostgreSQL is down, the page waits and goes live when it is back;
- a recipient at another site: relayed shows ✓, a verified DSN's delivered ✓✓ (its
  bounce after relayed ✕) and a verified MDN's read a blue ✓✓ (report events on statusd's
  event socket, as the milter sends them);
- keyboard and screen-reader basics: rows are buttons with aria-expanded, the connection
  indicator is a live status region; the page fits a phone's width.
"""
import os
import time
import unittest

from e2e import event, mail_chain, main, require_root
from msgsandbox import browser as browser_mod
from msgsandbox.core import wait_for


ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
USERS = {ALICE: "alice-secret", BOB: "bob-secret", CAROL: "carol-secret"}

# The page's view of things, read through the DOM the user sees.
RCPT_STATUS = """
const li = document.querySelector(`li.msg[data-id="${arguments[0]}"] li.rcpt[data-recipient="${arguments[1]}"]`);
return li ? li.dataset.status : null;"""
MSG_IDS = "return [...document.querySelectorAll('li.msg')].map((li) => li.dataset.id);"
TIMELINE = """
return [...document.querySelectorAll(`li.msg[data-id="${arguments[0]}"] ol.timeline > li`)]
  .map((li) => [Number(li.dataset.offset), li.dataset.recipient, li.dataset.status]);"""


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        why = browser_mod.available()
        if why:
            raise unittest.SkipTest(why)
        mail_chain(cls, USERS)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # helpers
    def page(self, user, name=None):
        """A browser signed in as user through a sign-in link, showing the live list."""
        b = browser_mod.Browser(self.sb, name=name or f"browser-{user.split('@')[0]}-{self.n}")
        DashboardTest.n += 1
        b.open(f"{self.sd.url}/#token={self.sd.token(user)}")
        b.wait("the page to go live",
               lambda: b.js("return document.getElementById('conn').dataset.state") == "live")
        self.assertEqual(b.js("return location.hash"), "", "the token stays in the address bar")
        return b

    def send(self, rcpts, subject):
        """Alice sends through Postfix (SASL); the message's tracking id."""
        qid = self.postfix.send(ALICE, rcpts, subject=subject, auth=(ALICE, USERS[ALICE]))
        return wait_for(f"the milter's record of {qid}",
                        lambda: self.pg.scalar("SELECT tracking_id FROM messages "
                                               f"WHERE queue_id = '{qid}'"), timeout=20)

    def imap_read(self, user, subject):
        """user reads the message with that subject (STORE +FLAGS \\Seen); when it completed."""
        c = self.dovecot.imap(user)
        try:
            c.select("INBOX")
            _, data = c.uid("SEARCH", None, "SUBJECT", subject)
            uid = data[0].split()[-1]
            typ, _ = c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            done = time.monotonic()
            self.assertEqual(typ, "OK")
        finally:
            c.logout()
        return done

    def expand(self, b, tid):
        b.wait(f"message {tid} in the list", lambda: tid in b.js(MSG_IDS))
        b.js(f"document.querySelector('li.msg[data-id=\"{tid}\"] > button').click()")
        b.wait("its timeline", lambda: b.js(TIMELINE, tid))

    def rcpt_status(self, b, tid, rcpt):
        return b.js(RCPT_STATUS, tid, rcpt)

    def api_timeline(self, tid, user=ALICE):
        code, doc = self.sd.api(f"/api/v1/messages/{tid}/timeline", self.sd.token(user))
        self.assertEqual(code, 200, doc)
        return doc

    # tests
    def test_live_delivery_then_read_within_a_second(self):
        alice = self.page(ALICE)
        carol = self.page(CAROL)
        # carol turns read receipts off in her own page
        carol.js("document.getElementById('pref-receipts').click()")
        carol.wait("the preference to be saved", lambda: carol.js(
            "return document.getElementById('prefs-status').textContent") == "Saved.")
        code, prefs = self.sd.api("/api/v1/preferences", self.sd.token(CAROL))
        self.assertEqual((code, prefs["read_receipts"]), (200, False))

        tid = self.send([BOB, CAROL], "dash-live")
        self.expand(alice, tid)
        for rcpt in (BOB, CAROL):
            alice.wait(f"{rcpt} delivered in the page",
                       lambda r=rcpt: self.rcpt_status(alice, tid, r) == "delivered", timeout=30)

        done = self.imap_read(BOB, "dash-live")
        alice.wait("bob read in the page", lambda: self.rcpt_status(alice, tid, BOB) == "read",
                   timeout=5)
        latency = time.monotonic() - done
        self.assertLess(latency, 1.0, f"read appeared {latency:.3f} s after STORE")
        print(f"\n  IMAP STORE -> 'read' in the page: {latency * 1000:.0f} ms")
        self.assertEqual(alice.js(f"""return document.querySelector(
            'li.msg[data-id="{tid}"]').dataset.status"""), "delivered",
            "the message as a whole: carol has not been seen reading")

        self.imap_read(CAROL, "dash-live")
        time.sleep(1.5)  # what would come, would come well within this
        self.assertEqual(self.rcpt_status(alice, tid, CAROL), "delivered")
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message "
            f"WHERE m.tracking_id = '{tid}' AND e.recipient = '{CAROL}' AND e.type = 7"), "0")
        self.assertNotIn("read", [s for _, r, s in alice.js(TIMELINE, tid) if r == CAROL])

    def test_remote_delivered_and_read_by_reports(self):
        alice = self.page(ALICE)
        tid, dave = "dashreport" + "a" * 16, "dave@remote.example"
        self.sd.send_events([event("queued", tracking_id=tid, recipient=dave, sender=ALICE,
                                   source="milter", offset_ms=-3000),
                             event("relayed", tracking_id=tid, recipient=dave,
                                   source="postfix", offset_ms=-2000)])
        self.expand(alice, tid)
        mark = ("return document.querySelector(`li.msg[data-id=\"${arguments[0]}\"] "
                "li.rcpt[data-recipient=\"${arguments[1]}\"] .mark`)")
        text = mark + ".textContent"
        color = f"return getComputedStyle({mark[len('return '):]}).color"
        alice.wait("relayed", lambda: self.rcpt_status(alice, tid, dave) == "relayed")
        self.assertEqual(alice.js(text, tid, dave), "✓")
        grey = alice.js(color, tid, dave)

        def report(kind, status, offset_ms):
            self.sd.send_events([event("report", tracking_id=tid, recipient=dave,
                                       source="milter", offset_ms=offset_ms,
                                       details={"kind": kind, "status": status,
                                                "dkim": "remote.example",
                                                "report_id": kind + "r" * 23})])
        report("dsn", "delivered", -1000)
        alice.wait("delivered by the DSN",
                   lambda: self.rcpt_status(alice, tid, dave) == "delivered", timeout=10)
        self.assertEqual(alice.js(text, tid, dave), "✓✓")
        self.assertEqual(alice.js(color, tid, dave), grey, "delivered: not the read colour")
        report("mdn", "read", 0)
        alice.wait("read by the MDN", lambda: self.rcpt_status(alice, tid, dave) == "read",
                   timeout=10)
        self.assertEqual(alice.js(text, tid, dave), "✓✓")
        self.assertNotEqual(alice.js(color, tid, dave), grey, "read: the read colour (blue)")
        self.assertEqual([s for _, r, s in alice.js(TIMELINE, tid) if r == dave],
                         ["queued", "relayed", "delivered", "read"])
        # a far side's bounce after relayed, live: the page ranks it as statusd does
        tid2, erin = "dashbounce" + "b" * 16, "erin@remote.example"
        self.sd.send_events([event("queued", tracking_id=tid2, recipient=erin, sender=ALICE,
                                   source="milter", offset_ms=-3000),
                             event("relayed", tracking_id=tid2, recipient=erin,
                                   source="postfix", offset_ms=-2000)])
        self.expand(alice, tid2)
        alice.wait("relayed", lambda: self.rcpt_status(alice, tid2, erin) == "relayed")
        self.sd.send_events([event("report", tracking_id=tid2, recipient=erin,
                                   source="milter", details={
                                       "kind": "dsn", "status": "bounced",
                                       "dkim": "remote.example", "report_id": "b" * 26})])
        alice.wait("bounced by the DSN", lambda: self.rcpt_status(alice, tid2, erin) == "bounced",
                   timeout=10)
        self.assertEqual(alice.js(text, tid2, erin), "✕")

    def test_someone_else_sees_nothing(self):
        tid = self.send([BOB], "dash-private")
        wait_for("delivered", lambda: self.sd.status(tid)[1]["recipients"][0]["status"]
                 == "delivered", timeout=30)
        bob = self.page(BOB)
        bob.wait("bob's list to load", lambda: bob.js(
            "return !document.getElementById('empty').hidden || "
            "document.querySelectorAll('li.msg').length > 0"))
        time.sleep(0.5)
        self.assertNotIn(tid, bob.js(MSG_IDS))
        self.assertNotIn("dash-private", bob.js("return document.body.innerText"))
        code, _ = self.sd.api(f"/api/v1/messages/{tid}/timeline", self.sd.token(BOB))
        self.assertEqual(code, 404)
        # and the page's own files carry a policy that keeps other code out
        import urllib.request
        for path in ("/", "/app.js", "/msgstatus.js"):
            with urllib.request.urlopen(self.sd.url + path, timeout=5) as r:
                self.assertEqual(r.status, 200)
                csp = r.headers.get("content-security-policy", "")
                self.assertIn("default-src 'none'", csp)
                self.assertIn("script-src 'self'", csp)
                self.assertIn("frame-ancestors 'none'", csp)

    def test_reconnects_and_catches_up_after_statusd_dies(self):
        alice = self.page(ALICE)
        tid = self.send([BOB], "dash-outage-1")
        self.expand(alice, tid)
        alice.wait("delivered", lambda: self.rcpt_status(alice, tid, BOB) == "delivered",
                   timeout=30)

        self.sd.kill()
        alice.wait("the page to notice", lambda: alice.js(
            "return document.getElementById('conn').dataset.state") == "reconnecting")
        self.assertIn("reconnecting", alice.js(
            "return document.getElementById('conn-text').textContent").lower())
        # while statusd is down: the open message is read, and another one is sent; and the
        # page stays away until statusd has stored all that, so only resuming from its
        # offset can bring it
        alice.offline(True)
        self.imap_read(BOB, "dash-outage-1")
        tid2 = self.send_during_outage([BOB], "dash-outage-2")
        self.sd.start()
        wait_for("the outage's events stored", lambda: self.pg.scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message WHERE "
            f"(m.tracking_id = '{tid}' AND e.type = 7) OR (m.tracking_id = '{tid2}' "
            "AND e.type = 4)") not in (None, "0", "1"), timeout=30)
        time.sleep(0.5)
        alice.offline(False)

        alice.wait("the page to be live again", lambda: alice.js(
            "return document.getElementById('conn').dataset.state") == "live", timeout=30)
        alice.wait("bob read, through the feed",
                   lambda: self.rcpt_status(alice, tid, BOB) == "read", timeout=30)
        alice.wait("the message sent meanwhile", lambda: tid2 in alice.js(MSG_IDS), timeout=30)
        # the timeline open since before the outage has exactly the stored events
        want = sorted((e["offset"], e["recipient"], e["status"])
                      for e in self.api_timeline(tid)["events"])
        alice.wait("the timeline to hold every event",
                   lambda: sorted(map(tuple, alice.js(TIMELINE, tid))) == want, timeout=10)
        got = [tuple(e) for e in alice.js(TIMELINE, tid)]
        self.assertEqual(len(got), len(set(got)), "an event shown twice")
        self.assertIn("read", [s for _, _, s in got])

    def test_waits_for_the_database_instead_of_signing_out(self):
        """Opened while PostgreSQL is down (statusd answers 503): the page says it is
        reconnecting, keeps the sign-in, and goes live when the database is back."""
        self.pg.stop()
        try:
            b = browser_mod.Browser(self.sb, name="browser-nodb")
            b.open(f"{self.sd.url}/#token={self.sd.token(ALICE)}")
            b.wait("reconnecting", lambda: b.js(
                "return document.getElementById('conn').dataset.state") == "reconnecting")
            self.assertTrue(b.js("return document.getElementById('signin').hidden"))
        finally:
            self.pg.start()
        b.wait("live once the database is back", lambda: b.js(
            "return document.getElementById('conn').dataset.state") == "live", timeout=40)
        self.assertTrue(b.js("return !document.getElementById('app').hidden"))

    def test_falls_back_to_sse_where_websocket_is_blocked(self):
        """A proxy that does not pass WebSocket upgrades (here: every WebSocket the page
        opens closes with 1006 before it opens, as a refused upgrade does): the page goes live
        over Server-Sent Events and stays live."""
        b = browser_mod.Browser(self.sb, name="browser-sse")
        b.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.WebSocket = class {
              constructor() {
                this.readyState = 0;
                setTimeout(() => {
                  this.readyState = 3;
                  if (this.onerror) this.onerror(new Event("error"));
                  if (this.onclose) this.onclose({ code: 1006, reason: "" });
                }, 20);
              }
              send() {}
              close() {}
            };"""})
        b.open(f"{self.sd.url}/#token={self.sd.token(ALICE)}")
        b.wait("the page to go live", lambda: b.js(
            "return document.getElementById('conn').dataset.state") == "live", timeout=20)
        self.assertEqual(b.js("return document.getElementById('conn').dataset.transport"), "sse")
        tid = self.send([BOB], "dash-sse")
        self.expand(b, tid)
        b.wait("delivered over SSE", lambda: self.rcpt_status(b, tid, BOB) == "delivered",
               timeout=30)
        self.imap_read(BOB, "dash-sse")
        b.wait("read over SSE", lambda: self.rcpt_status(b, tid, BOB) == "read", timeout=5)

    def send_during_outage(self, rcpts, subject):
        """Send while statusd is down: the milter spools its record, so there is no tracking
        id to read from the database yet; take it from the delivered copy's header."""
        qid = self.postfix.send(ALICE, rcpts, subject=subject, auth=(ALICE, USERS[ALICE]))
        self.assertTrue(qid)
        c = self.dovecot.imap(rcpts[0])
        try:
            c.select("INBOX")

            def header():
                _, data = c.uid("SEARCH", None, "SUBJECT", subject)
                if not data[0]:
                    return None
                _, msg = c.uid("FETCH", data[0].split()[-1],
                               "(BODY.PEEK[HEADER.FIELDS (MSGSTATUS-ID)])")
                return msg[0][1].decode().split(":", 1)[1].strip()
            return wait_for(f"{subject} delivered", header, timeout=30)
        finally:
            c.logout()

    def test_accessible_and_fits_a_phone(self):
        tid = self.send([BOB], "dash-a11y")
        b = browser_mod.Browser(self.sb, name="browser-phone", width=375, height=740)
        b.open(f"{self.sd.url}/#token={self.sd.token(ALICE)}")
        b.wait("live", lambda: b.js("return document.getElementById('conn').dataset.state")
               == "live")
        b.wait("the message", lambda: tid in b.js(MSG_IDS), timeout=30)
        self.assertEqual(b.js("return document.getElementById('conn').getAttribute('role')"),
                         "status")
        button = f"document.querySelector('li.msg[data-id=\"{tid}\"] > button')"
        self.assertEqual(b.js(f"return {button}.getAttribute('aria-expanded')"), "false")
        # keyboard: focus the row and press Enter
        from selenium.webdriver.common.keys import Keys
        el = b.js(f"return {button}")
        el.send_keys(Keys.ENTER)
        b.wait("expanded", lambda: b.js(f"return {button}.getAttribute('aria-expanded')")
               == "true")
        b.wait("its recipients", lambda: b.js(RCPT_STATUS, tid, BOB))
        # the search box and the filter narrow the list
        search = "document.getElementById('search')"
        b.js(f"{search}.value = 'no-such-recipient'; {search}.dispatchEvent(new Event('input'))")
        b.wait("nothing matches", lambda: b.js(MSG_IDS) == [])
        b.js(f"{search}.value = '{BOB}'; {search}.dispatchEvent(new Event('input'))")
        b.wait("bob's messages", lambda: tid in b.js(MSG_IDS))
        b.js("const f = document.getElementById('filter'); f.value = 'failed';"
             "f.dispatchEvent(new Event('change'))")
        b.wait("no failed message", lambda: b.js(MSG_IDS) == [])
        b.js("const f = document.getElementById('filter'); f.value = '';"
             "f.dispatchEvent(new Event('change'))")
        b.wait("all again", lambda: tid in b.js(MSG_IDS))
        # nothing wider than the phone's screen
        self.assertLessEqual(b.js("return document.documentElement.scrollWidth"),
                             b.js("return window.innerWidth"))
        if os.environ.get("MSGSTATUS_SCREENSHOTS"):
            b.screenshot(os.path.join(os.environ["MSGSTATUS_SCREENSHOTS"], "dashboard-phone.png"))
        errors = [m for m in b.console() if "SEVERE" in m or "Error" in m]
        self.assertEqual(errors, [])


if __name__ == "__main__":
    main()
