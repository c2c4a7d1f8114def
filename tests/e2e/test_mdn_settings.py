"""The server-sent MDN preference (docs/mdn.md) in the pages, in headless Chromium (Debian's
chromium and chromedriver), against the whole private chain (Postfix + milter, LMTP into
Dovecot with the plugin, statusd, PostgreSQL) and, where it is installed, Roundcube 1.6:

- the dashboard's privacy card: choosing "Always" stores mdn = always in statusd, the page
  shows it again after a reload, and statusd then decides to send for that user's read of
  a message asking for a receipt; "As the server is set up" goes back to null;
- Roundcube's Settings -> Delivery status: the same list, saved in statusd and shown again.

statusd's mdn_sendmail is empty here: decisions are recorded, nothing leaves (test_mdn.py
sends real ones).
"""
import os
import time
import unittest

from e2e import mail_chain, main, require_root
from msgsandbox import browser as browser_mod, free_port
from msgsandbox import roundcube as roundcube_mod
from msgsandbox.core import wait_for
from msgsandbox.postfix import make_message

ALICE, BOB = "alice@example.org", "bob@example.org"
USERS = {ALICE: "alice-secret", BOB: "bob-secret"}


class MdnSettingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        why = browser_mod.available()
        if why:
            raise unittest.SkipTest(why)
        cls.rc_port = free_port()
        mail_chain(cls, USERS, {"http_cors_origins": f"http://127.0.0.1:{cls.rc_port}",
                                "mdn_sendmail": ""})
        cls.rc = None
        if not roundcube_mod.available():
            cls.rc = cls.sb.roundcube(cls.sd, cls.dovecot, cls.postfix, port=cls.rc_port)

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def pref(self, user):
        code, doc = self.sd.api("/api/v1/preferences", self.sd.token(user))
        self.assertEqual(code, 200, doc)
        return doc["mdn"]

    def set_pref(self, user, value):
        code, doc = self.sd.api("/api/v1/preferences", self.sd.token(user), method="PUT",
                                body={"mdn": value})
        self.assertEqual(code, 200, doc)

    def test_dashboard(self):
        self.set_pref(BOB, None)
        b = browser_mod.Browser(self.sb, name="browser-mdn-dashboard")
        page = f"{self.sd.url}/#token={self.sd.token(BOB)}"
        b.open(page)
        b.wait("the page to go live",
               lambda: b.js("return document.getElementById('conn').dataset.state") == "live")
        self.assertEqual(b.js("return document.getElementById('pref-mdn').value"), "")
        b.js("const s = document.getElementById('pref-mdn'); s.value = 'always';"
             "s.dispatchEvent(new Event('change'));")
        b.wait("the preference to be saved", lambda: b.js(
            "return document.getElementById('prefs-status').textContent") == "Saved.")
        self.assertEqual(self.pref(BOB), "always")
        b.open(page)
        b.wait("the choice shown again", lambda: b.js(
            "return document.getElementById('pref-mdn').value") == "always")

        # statusd decides with it: bob reads a message asking for a receipt
        msgid = f"<mdnset{os.getpid()}@example.net>"
        self.dovecot.deliver(BOB, make_message("carol@example.net", [BOB], subject="receipt?",
                                               message_id=msgid,
                                               headers=[("Disposition-Notification-To",
                                                         "carol@example.net")]),
                             sender="carol@example.net")
        c = self.dovecot.imap(BOB)
        try:
            c.select("INBOX")
            _, data = c.uid("SEARCH", None, "HEADER", "Message-ID", msgid)
            c.uid("STORE", data[0].split()[-1], "+FLAGS", "(\\Seen)")
        finally:
            c.logout()
        wait_for("statusd's decision", lambda: self.pg.scalar(
            f"SELECT decision FROM mdn WHERE message_id = '{msgid}'") == "send", timeout=15)

        b.js("const s = document.getElementById('pref-mdn'); s.value = '';"
             "s.dispatchEvent(new Event('change'));")
        b.wait("back to the server's default", lambda: self.pref(BOB) is None, timeout=10)

    def test_roundcube_settings_pane(self):
        if self.rc is None:
            raise unittest.SkipTest(roundcube_mod.available())
        self.set_pref(ALICE, None)
        b = browser_mod.Browser(self.sb, name=f"browser-mdn-rc-{time.monotonic_ns()}")
        b.open(self.rc.url + "/")
        b.wait("the login form", lambda: b.js("return !!document.getElementById('rcmloginuser')"))
        b.js("document.getElementById('rcmloginuser').value = arguments[0];"
             "document.getElementById('rcmloginpwd').value = arguments[1];"
             "document.getElementById('rcmloginsubmit').click();", ALICE, USERS[ALICE])
        b.wait("the mailbox", lambda: b.js("return !!document.getElementById('messagelist')"),
               timeout=30)
        page = self.rc.url + "/?_task=settings&_action=edit-prefs&_section=msgstatus&_framed=1"
        b.open(page)
        b.wait("the list", lambda: b.js(
            "const s = document.getElementById('msgstatus_mdn'); return s && s.value === ''"))
        b.js("document.getElementById('msgstatus_mdn').value = 'always'; rcmail.command('save');")
        b.wait("statusd has it", lambda: self.pref(ALICE) == "always", timeout=15)
        b.open(page)
        b.wait("the list shows it", lambda: b.js(
            "const s = document.getElementById('msgstatus_mdn'); return s && s.value") == "always")
        b.js("document.getElementById('msgstatus_mdn').value = 'never'; rcmail.command('save');")
        b.wait("statusd has never", lambda: self.pref(ALICE) == "never", timeout=15)


if __name__ == "__main__":
    main()
