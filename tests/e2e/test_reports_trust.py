"""statusd's rule for DSN and MDN entries (report events, type 15; sql/009
msgstatus_reports(); docs/security.md, "Reports from other mail systems"), case by case,
on statusd's event socket and a private PostgreSQL.

Each case is a message of alice@example.org queued to some recipients, then one report
event as msgstatus-milter sends it; the test checks what statusd kept (verified and how)
and what the recipient's status became. A report entry counts only for an address the
sender used, and only when its origin is proven for that address's domain: an aligned
DKIM signature (d= the domain or a parent of it with two labels or more), or for a DSN our
ENVID (envid_ok) on a message whose recipients outside the sender's domain are all in
that domain; never DKIM for a recipient of the site's own (the sender's domain, a
domain of the site's users, one the Dovecot plugin delivered). By Message-ID, only a
message that lists the recipient, and none when such messages have different owners.
A replay changes nothing; an entry about no message of ours is not kept in reports (it
is held for its message: test_reports_held.py); kept reports expire with event_retention.
"""
import os

from e2e import StatusdTest, event, main
from msgsandbox.core import wait_for

ALICE = "alice@example.org"

# (name, recipients queued, report recipient, details, want verified/proof, want status)
CASES = [
    ("dkim of the recipient's domain", ["bob@b.example"], "bob@b.example",
     {"kind": "dsn", "status": "delivered", "dkim": "b.example"}, (True, "dkim"), "delivered"),
    ("dkim of a parent domain", ["bob@mx.b.example"], "bob@mx.b.example",
     {"kind": "dsn", "status": "delivered", "dkim": "other.test b.example"}, (True, "dkim"),
     "delivered"),
    ("dkim of a subdomain does not prove the parent", ["bob@b.example"], "bob@b.example",
     {"kind": "dsn", "status": "delivered", "dkim": "mail.b.example"}, (False, "unproven"),
     "relayed"),
    ("dkim of a top-level domain proves nothing", ["bob@b.example"], "bob@b.example",
     {"kind": "dsn", "status": "delivered", "dkim": "example"}, (False, "unproven"),
     "relayed"),
    ("dkim of another domain", ["bob@b.example"], "bob@b.example",
     {"kind": "dsn", "status": "bounced", "dkim": "evil.example"}, (False, "unproven"),
     "relayed"),
    ("dkim of a look-alike", ["bob@b.example"], "bob@b.example",
     {"kind": "dsn", "status": "bounced", "dkim": "xb.example"}, (False, "unproven"),
     "relayed"),
    ("our envid, one remote domain", ["bob@b.example", "carol@b.example"], "bob@b.example",
     {"kind": "dsn", "status": "bounced", "envid_ok": True}, (True, "envid"), "bounced"),
    ("our envid, the sender's own domain does not count", ["bob@b.example", "dan@example.org"],
     "bob@b.example", {"kind": "dsn", "status": "delivered", "envid_ok": True},
     (True, "envid"), "delivered"),
    ("our envid, two remote domains", ["bob@b.example", "carol@c.example"], "bob@b.example",
     {"kind": "dsn", "status": "bounced", "envid_ok": True}, (False, "unproven"), "relayed"),
    ("no envid of ours", ["bob@b.example"], "bob@b.example",
     {"kind": "dsn", "status": "bounced", "envid_ok": False}, (False, "unproven"), "relayed"),
    ("an MDN proves nothing by envid", ["bob@b.example"], "bob@b.example",
     {"kind": "mdn", "status": "read", "envid_ok": True}, (False, "unproven"), "relayed"),
    ("an MDN with aligned dkim", ["bob@b.example"], "bob@b.example",
     {"kind": "mdn", "status": "read", "dkim": "b.example"}, (True, "dkim"), "read"),
    ("not a recipient of the message", ["bob@b.example"], "eve@b.example",
     {"kind": "dsn", "status": "bounced", "dkim": "b.example", "envid_ok": True},
     (False, "not_recipient"), "relayed"),
    # DKIM proves the domain, not the user: a user of the site's own domain could have the
    # site sign a forged report about a co-recipient of that domain
    ("dkim of the sender's own domain about a local recipient", ["dan@example.org"],
     "dan@example.org", {"kind": "dsn", "status": "bounced", "dkim": "example.org"},
     (False, "unproven"), "queued"),
    ("dkim of another domain of the site's users", ["gina@own2.example"], "gina@own2.example",
     {"kind": "dsn", "status": "bounced", "dkim": "own2.example"}, (False, "unproven"),
     "relayed"),
    ("the domain's case does not matter", ["bob@b.example"], "bob@B.Example",
     {"kind": "dsn", "status": "delivered", "dkim": "B.EXAMPLE."}, (True, "dkim"),
     "delivered"),
]


class ReportTrustTest(StatusdTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # a user of the site in a second domain of its own
        cls.pg.psql("INSERT INTO users (name) VALUES ('frank@own2.example')")

    def kept(self, tid):
        return self.pg.psql("SELECT r.verified, r.proof, r.status, r.rcpt FROM reports r "
                            f"JOIN messages m ON m.id = r.message WHERE m.tracking_id = '{tid}'")

    def test_cases(self):
        for i, (name, rcpts, about, details, want, want_status) in enumerate(CASES):
            with self.subTest(name):
                tid = f"trust{i:02d}" + "a" * 19
                self.send([event("queued", tracking_id=tid, recipient=r, sender=ALICE,
                                 offset_ms=-60000) for r in rcpts]
                          + [event("relayed", tracking_id=tid, recipient=r, source="postfix",
                                   offset_ms=-50000)
                             for r in rcpts if not r.endswith("@example.org")])
                rep = event("report", tracking_id=tid, recipient=about, source="milter",
                            details=dict({"report_id": f"rep{i:02d}" + "b" * 21,
                                          "reporting_mta": "mx.b.example", "dsn": "2.0.0"},
                                         **details))
                self.send([rep])
                rows = wait_for(f"the report of {name}", lambda: self.kept(tid), timeout=10)
                self.assertEqual(len(rows), 1, rows)
                verified, proof, _status, _rcpt = rows[0]
                self.assertEqual((verified == "t", proof), want, name)
                self.assertEqual(self.status_of(tid, rcpts[0])["status"], want_status, name)
                # a replay changes nothing
                self.send([rep])
                self.assertEqual(len(self.kept(tid)), 1, name)

    def test_verified_entry_is_an_ordinary_event(self):
        tid = "trustev" + "c" * 19
        self.send([event("queued", tracking_id=tid, recipient="bob@b.example", sender=ALICE,
                         offset_ms=-60000)])
        self.send([event("report", tracking_id=tid, recipient="bob@b.example", source="milter",
                         details={"kind": "dsn", "status": "delivered", "dkim": "b.example",
                                  "reporting_mta": "mx.b.example", "dsn": "2.0.0",
                                  "smtp_reply": "250 2.0.0 Ok", "report_id": "r" * 26,
                                  "raw": "Action: delivered\r\n", "envid_ok": False})])
        got = wait_for("delivered", lambda: (lambda r: r if r["status"] == "delivered"
                                             else None)(self.status_of(tid, "bob@b.example")),
                       timeout=10)
        self.assertEqual((got["delivered"], got["smtp_reply"], got["details"]["report_id"],
                          got["details"]["reporting_mta"]),
                         ("yes", "250 2.0.0 Ok", "r" * 26, "mx.b.example"))
        self.assertEqual(self.pg.psql(
            "SELECT e.source, e.details ? 'raw', e.details ? 'dkim' FROM events e "
            f"JOIN messages m ON m.id = e.message WHERE m.tracking_id = '{tid}' AND e.type = 4"),
            [["dsn", "f", "f"]])
        self.assertEqual(self.pg.scalar(f"SELECT raw = E'Action: delivered\\r\\n' FROM "
                                        f"report_raw WHERE report_id = '{'r' * 26}'"), "t")

    def test_no_dkim_for_a_recipient_delivered_here(self):
        """A recipient the Dovecot plugin delivered is known first-hand: a DKIM-signed
        bounce about it is kept unverified and does not override the delivery."""
        tid = "trustlocal" + "h" * 16
        self.send([event("queued", tracking_id=tid, recipient="hank@b.example", sender=ALICE,
                         offset_ms=-60000)])
        self.send([event("delivered", tracking_id=tid, recipient="hank@b.example",
                         source="dovecot", offset_ms=-50000)])
        wait_for("delivered", lambda: self.status_of(tid, "hank@b.example")["status"]
                 == "delivered" or None, timeout=10)
        self.send([event("report", tracking_id=tid, recipient="hank@b.example",
                         source="milter", details={"kind": "dsn", "status": "bounced",
                                                   "dkim": "b.example"})])
        rows = wait_for("the report", lambda: self.kept(tid), timeout=10)
        self.assertEqual((rows[0][0], rows[0][1]), ("f", "unproven"), rows)
        self.assertEqual(self.status_of(tid, "hank@b.example")["status"], "delivered")

    def owner_of_report(self, report_id):
        return self.pg.psql("SELECT m.tracking_id FROM reports r JOIN messages m "
                            f"ON m.id = r.message WHERE r.report_id = '{report_id}'")

    def test_message_id_fallback_cannot_be_taken_over(self):
        """By Message-ID, a report goes only to a message that lists its recipient, and
        to none when such messages have different owners."""
        msgid = f"<same{os.getpid()}@example.org>"
        mine, hers, both = ("trustmid" + c * 18 for c in "ijk")
        self.send([event("queued", tracking_id=mine, recipient="bob@b.example", sender=ALICE,
                         message_id=msgid, offset_ms=-60000)])
        # mallory sends her own message with the same Message-ID, later, to someone else
        self.send([event("queued", tracking_id=hers, recipient="carol@c.example",
                         sender="mallory@example.org", message_id=msgid, offset_ms=-50000)])
        rep = "midrep1" + "l" * 19
        self.send([event("report", tracking_id=None, message_id=msgid,
                         recipient="bob@b.example", source="milter",
                         details={"kind": "mdn", "status": "read", "dkim": "b.example",
                                  "report_id": rep, "raw": "Disposition: displayed"})])
        rows = wait_for("the report", lambda: self.owner_of_report(rep), timeout=10)
        self.assertEqual(rows, [[mine]], "the report goes to the message sent to bob")
        self.assertEqual(self.status_of(mine, "bob@b.example")["status"], "read")
        # now she sends to bob too: two owners, the report goes to no one
        self.send([event("queued", tracking_id=both, recipient="bob@b.example",
                         sender="mallory@example.org", message_id=msgid, offset_ms=-40000)])
        rep2 = "midrep2" + "m" * 19
        self.send([event("report", tracking_id=None, message_id=msgid,
                         recipient="bob@b.example", source="milter",
                         details={"kind": "mdn", "status": "deleted", "dkim": "b.example",
                                  "report_id": rep2, "raw": "Disposition: deleted"})])
        self.send([event("queued", tracking_id="after2" + "n" * 20, recipient="x@b.example",
                         sender=ALICE)])  # the batch after it is stored
        wait_for("the next batch", lambda: self.pg.scalar(
            "SELECT 1 FROM messages WHERE tracking_id = 'after2" + "n" * 20 + "'"), timeout=10)
        self.assertEqual(self.owner_of_report(rep2), [])
        self.assertEqual(self.pg.scalar(
            f"SELECT count(*) FROM report_raw WHERE report_id = '{rep2}'"), "0")

    def test_report_in_the_batch_of_its_message(self):
        """Postfix's own bounce follows the milter's record within milliseconds: a report
        in the same batch as its message's queued events counts as it would later."""
        for i, (rcpts, details, want) in enumerate([
                (["bob@b.example"], {"kind": "dsn", "status": "bounced", "envid_ok": True},
                 ("t", "envid", "bounced")),
                (["bob@b.example", "carol@c.example"],
                 {"kind": "dsn", "status": "bounced", "envid_ok": True},
                 ("f", "unproven", "queued")),
                (["bob@b.example"], {"kind": "dsn", "status": "delivered", "dkim": "b.example"},
                 ("t", "dkim", "delivered"))]):
            tid = f"trustbatch{i}" + "g" * 15
            self.send([event("queued", tracking_id=tid, recipient=r, sender=ALICE,
                             offset_ms=-1000) for r in rcpts]
                      + [event("report", tracking_id=tid, recipient="bob@b.example",
                               source="milter", details=details)])
            rows = wait_for("the report", lambda: self.kept(tid), timeout=10)
            self.assertEqual((rows[0][0], rows[0][1]), want[:2], rows)
            self.assertEqual(self.status_of(tid, "bob@b.example")["status"], want[2])

    def test_report_about_no_message_is_not_kept(self):
        self.send([event("report", tracking_id="nosuch" + "d" * 20, recipient="bob@b.example",
                         source="milter", details={"kind": "dsn", "status": "bounced",
                                                   "dkim": "b.example"})])
        self.send([event("queued", tracking_id="after" + "e" * 21, recipient="x@b.example",
                         sender=ALICE)])  # the batch after it is stored
        wait_for("the next batch", lambda: self.pg.scalar(
            "SELECT 1 FROM messages WHERE tracking_id = 'after" + "e" * 21 + "'"), timeout=10)
        self.assertEqual(self.pg.scalar("SELECT count(*) FROM reports r JOIN messages m ON "
                                        "m.id = r.message WHERE m.tracking_id LIKE 'nosuch%'"),
                         "0")

    def test_maintenance_expires_old_reports(self):
        """Reports and their raw text go with the events of their time (event_retention),
        by statusctl maintain as by statusd's own maintenance; newer ones stay."""
        ids = {}
        for name in ("old", "new"):
            tid = f"trustmaint{name}" + "f" * (16 - len(name))
            ids[name] = name + "m" * (26 - len(name))
            self.send([event("queued", tracking_id=tid, recipient="bob@b.example",
                             sender=ALICE, offset_ms=-60000)])
            self.send([event("report", tracking_id=tid, recipient="bob@b.example",
                             source="milter", details={"kind": "dsn", "status": "delivered",
                                                       "report_id": ids[name], "raw": "x"})])
            wait_for("the report", lambda: self.kept(tid), timeout=10)
        self.pg.psql("UPDATE reports SET event_time = now() - interval '3650 days' "
                     f"WHERE report_id = '{ids['old']}'")
        self.pg.psql("UPDATE report_raw SET event_time = now() - interval '3650 days' "
                     f"WHERE report_id = '{ids['old']}'")
        self.statusctl("maintain")
        for table in ("reports", "report_raw"):
            self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM {table} "
                                            f"WHERE report_id = '{ids['old']}'"), "0", table)
            self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM {table} "
                                            f"WHERE report_id = '{ids['new']}'"), "1", table)


if __name__ == "__main__":
    main()
