"""A DSN or MDN entry (report event, type 15) that reaches statusd before its message's
queued events is held (table report_held, sql/018) and counts when a later batch brings
the message, as it would have after it (docs/reports.md, "Before their message"), on
statusd's event socket and a private PostgreSQL.

When statusd was down, the milter's spool (with the reports it read) and another
producer's spool (the message's queued events) are replayed in any order. Each case sends
the report first, then the message: the recipient's status becomes what the report says
for the sender's API, the stored state equals that of the same report sent after its
message, a replay of both changes nothing, an unverified entry held then matched changes
nothing, and a held entry past its window goes with the maintenance.
"""
import json

from e2e import StatusdTest, event, main
from msgsandbox.core import wait_for
from msgsandbox.statusd import now_rfc3339

ALICE = "alice@example.org"
BOB = "bob@b.example"


class ReportHeldTest(StatusdTest):
    def message(self, tid, rcpts=(BOB,), message_id=None, times=None):
        """The message's events: queued by the milter, relayed by Postfix (at times)."""
        queued, relayed = times or (now_rfc3339(-60000), now_rfc3339(-50000))
        return ([event("queued", tracking_id=tid, recipient=r, sender=ALICE,
                       message_id=message_id, time=queued) for r in rcpts]
                + [event("relayed", tracking_id=tid, recipient=r, source="postfix",
                         time=relayed) for r in rcpts])

    def stored(self, tid):
        """What the message's batches left: the reports kept, the events in the log."""
        return (self.pg.psql("SELECT r.event_id, r.verified, r.proof, r.status, r.rcpt, "
                             "r.kind, r.event_time FROM reports r JOIN messages m "
                             f"ON m.id = r.message WHERE m.tracking_id = '{tid}' "
                             "ORDER BY r.event_id"),
                self.pg.psql("SELECT e.event_id, e.type, e.source, e.rcpt, e.dkey, e.rkey, "
                             "e.details, e.log_offset IS NOT NULL FROM events e JOIN messages "
                             f"m ON m.id = e.message WHERE m.tracking_id = '{tid}' "
                             "AND e.source IN ('dsn', 'mdn') ORDER BY e.event_id"))

    def held(self, event_id):
        return self.pg.scalar(f"SELECT count(*) FROM report_held WHERE event_id = '{event_id}'")

    def head(self):
        return self.pg.scalar("SELECT head FROM log_head")

    def stored_marker(self, name):
        """A batch after the ones sent so far is stored (statusd ingests in order)."""
        tid = f"mark{name}" + "z" * (22 - len(name))
        self.send([event("queued", tracking_id=tid, recipient="x@b.example", sender=ALICE)])
        wait_for("the next batch", lambda: self.pg.scalar(
            f"SELECT 1 FROM messages WHERE tracking_id = '{tid}'"), timeout=10)

    def report(self, tid, details, message_id=None, when=None, recipient=BOB):
        ev = event("report", tracking_id=tid, message_id=message_id, recipient=recipient,
                   source="milter", details=details)
        if when is not None:
            ev["time"] = when
        return ev

    def test_dsn_before_its_message(self):
        """A DKIM-verified DSN held, then its message: delivered, with the very state of
        the same DSN after its message; a replay of both changes nothing."""
        when = now_rfc3339(-10000)
        times = (now_rfc3339(-60000), now_rfc3339(-50000))
        states = {}
        for order in ("after", "before"):
            tid = f"held{order}" + "a" * (22 - len(order))
            rep = self.report(tid, {"kind": "dsn", "status": "delivered", "dkim": "b.example",
                                    "reporting_mta": "mx.b.example", "dsn": "2.0.0",
                                    "smtp_reply": "250 2.0.0 Ok", "envid_ok": False,
                                    "report_id": f"rep{order}" + "b" * (23 - len(order)),
                                    "raw": "Action: delivered\r\n"}, when=when)
            msg = self.message(tid, times=times)
            if order == "after":
                self.send(msg)
                self.send([rep])
            else:
                self.send([rep])
                self.send([rep])  # a replay while it is held: held once
                self.stored_marker("dsn")
                self.assertEqual(self.held(rep["id"]), "1")
                self.assertEqual(self.sd.status(tid)[0], 404)
                self.assertEqual(self.stored(tid), ([], []))
                self.send(msg)
            got = wait_for("delivered", lambda: (lambda r: r if r["status"] == "delivered"
                                                 else None)(self.status_of(tid, BOB)), timeout=10)
            self.assertEqual(self.held(rep["id"]), "0")
            rows, events = self.stored(tid)
            self.assertEqual([r[1:6] for r in rows], [["t", "dkim", "4", BOB, "dsn"]], order)
            self.assertEqual(len(events), 1, events)
            self.assertEqual(events[0][-1], "t", "the status event is in the log")
            self.assertEqual(self.pg.scalar(
                "SELECT raw = E'Action: delivered\\r\\n' FROM report_raw "
                f"WHERE report_id = '{rep['details']['report_id']}'"), "t")
            # the same state as the in-order arrival, but for the ids
            events[0][0] = rows[0][0] = None
            details = json.loads(events[0][6])
            self.assertEqual(details.pop("report_id"), rep["details"]["report_id"])
            events[0][6] = details
            self.assertEqual(got.pop("dsn_report_ids"), [rep["details"]["report_id"]])
            self.assertEqual(got["details"].pop("report_id"), rep["details"]["report_id"])
            states[order] = (rows, events, got)
            # a replay of the report and of the message changes nothing
            head = self.head()
            self.send([rep])
            self.send(msg + [rep])
            self.stored_marker(f"dsn{order}")
            self.assertEqual(self.head(), str(int(head) + 1), "only the marker was logged")
            again = self.stored(tid)
            self.assertEqual((len(again[0]), len(again[1])), (1, 1), again)
            self.assertEqual(self.held(rep["id"]), "0")
        self.assertEqual(states["before"], states["after"])
        self.assertEqual((states["before"][2]["delivered"], states["before"][2]["smtp_reply"]),
                         ("yes", "250 2.0.0 Ok"))

    def test_mdn_before_its_message_by_message_id(self):
        """An MDN that names the message by Message-ID only, held, then the message to
        that recipient: read, displayed yes, on the sender's API."""
        tid = "heldmdn" + "c" * 19
        msgid = "<heldmdn.1@example.org>"
        rep = self.report(None, {"kind": "mdn", "status": "read", "dkim": "b.example",
                                 "disposition": "automatic-action/MDN-sent-automatically; "
                                                "displayed",
                                 "report_id": "mdnrep" + "d" * 20}, message_id=msgid)
        self.send([rep])
        # a message with that Message-ID to someone else brings nothing back
        self.send(self.message("heldmdnother" + "c" * 14, rcpts=["carol@c.example"],
                               message_id=msgid))
        self.stored_marker("mdn")
        self.assertEqual(self.held(rep["id"]), "1")
        # the message comes with a replay of the MDN in its batch: it counts once
        self.send(self.message(tid, message_id=msgid) + [rep])
        got = wait_for("read", lambda: (lambda r: r if r["status"] == "read" else None)(
            self.status_of(tid, BOB)), timeout=10)
        self.assertEqual(got["displayed"], "yes")
        self.assertEqual(got["mdn_report_ids"], ["mdnrep" + "d" * 20])
        self.assertEqual(self.held(rep["id"]), "0")
        rows, events = self.stored(tid)
        self.assertEqual([r[1:6] for r in rows], [["t", "dkim", "7", BOB, "mdn"]])
        self.assertEqual([e[1:4] for e in events], [["7", "mdn", BOB]])

    def test_dsn_before_its_queued_events(self):
        """The Dovecot plugin's delivery to a local co-recipient makes the message known
        before its queued events: a DSN about a remote recipient is held all the same
        (not kept as not_recipient for good), and counts with the queued events."""
        tid = "heldlocal" + "k" * 17
        local = "carol@example.org"
        self.send([event("delivered", tracking_id=tid, recipient=local, source="dovecot",
                         offset_ms=-55000)])
        wait_for("the message", lambda: self.pg.scalar(
            f"SELECT 1 FROM messages WHERE tracking_id = '{tid}'"), timeout=10)
        rep = self.report(tid, {"kind": "dsn", "status": "delivered", "dkim": "b.example",
                                "report_id": "localrep" + "l" * 18, "raw": "x"})
        self.send([rep])
        self.stored_marker("local")
        self.assertEqual(self.held(rep["id"]), "1")
        self.assertEqual(self.stored(tid), ([], []))
        self.send(self.message(tid, rcpts=(BOB, local)))
        wait_for("delivered", lambda: self.status_of(tid, BOB)["status"] == "delivered" or None,
                 timeout=10)
        self.assertEqual([r[1:6] for r in self.stored(tid)[0]],
                         [["t", "dkim", "4", BOB, "dsn"]])
        self.assertEqual(self.status_of(tid, local)["status"], "delivered")
        self.assertEqual(self.held(rep["id"]), "0")

    def test_unverified_held_then_matched_changes_nothing(self):
        """A bounce signed by a domain that does not align, held, then its message: kept
        unverified, the status stays relayed, no status event."""
        tid = "heldbad" + "e" * 19
        rep = self.report(tid, {"kind": "dsn", "status": "bounced", "dkim": "evil.example",
                                "report_id": "badrep" + "f" * 20})
        self.send([rep])
        self.stored_marker("bad")
        self.assertEqual(self.held(rep["id"]), "1")
        self.send(self.message(tid))
        rows = wait_for("the report", lambda: self.stored(tid)[0], timeout=10)
        self.assertEqual([r[1:6] for r in rows], [["f", "unproven", "5", BOB, "dsn"]])
        self.assertEqual(self.stored(tid)[1], [])
        self.assertEqual(self.status_of(tid, BOB)["status"], "relayed")
        self.assertEqual(self.held(rep["id"]), "0")

    def test_maintenance_removes_held_past_the_window(self):
        """Held entries go when older than 60 days (or event_retention if shorter);
        younger ones stay. An entry that can never be matched is not held."""
        old = self.report("heldold" + "g" * 19, {"kind": "dsn", "status": "bounced"})
        young = self.report("heldyoung" + "h" * 17, {"kind": "dsn", "status": "bounced"})
        nothing = self.report(None, {"kind": "dsn", "status": "bounced"})
        self.send([old, young, nothing])
        self.stored_marker("maint")
        self.assertEqual((self.held(old["id"]), self.held(young["id"]),
                          self.held(nothing["id"])), ("1", "1", "0"))
        self.pg.psql("UPDATE report_held SET event_time = now() - interval '61 days' "
                     f"WHERE event_id = '{old['id']}'")
        self.pg.psql("UPDATE report_held SET event_time = now() - interval '59 days' "
                     f"WHERE event_id = '{young['id']}'")
        self.statusctl("maintain")
        self.assertEqual((self.held(old["id"]), self.held(young["id"])), ("0", "1"))

    def test_message_id_only_is_held_a_day(self):
        """An entry known by its Message-ID only (anyone can send one; backscatter about
        mail that is not ours looks the same) goes a day after it was held; one with a
        tracking id stays its 60 days."""
        stale = self.report(None, {"kind": "dsn", "status": "bounced"},
                            message_id="<stale@elsewhere.example>")
        fresh = self.report(None, {"kind": "dsn", "status": "bounced"},
                            message_id="<fresh@elsewhere.example>")
        tracked = self.report("heldtracked" + "k" * 15, {"kind": "dsn", "status": "bounced"})
        self.send([stale, fresh, tracked])
        self.stored_marker("midonly")
        self.assertEqual((self.held(stale["id"]), self.held(fresh["id"]),
                          self.held(tracked["id"])), ("1", "1", "1"))
        self.pg.psql("UPDATE report_held SET held_at = now() - interval '25 hours' "
                     f"WHERE event_id IN ('{stale['id']}', '{tracked['id']}')")
        self.pg.psql("UPDATE report_held SET held_at = now() - interval '23 hours' "
                     f"WHERE event_id = '{fresh['id']}'")
        self.statusctl("maintain")
        self.assertEqual((self.held(stale["id"]), self.held(fresh["id"]),
                          self.held(tracked["id"])), ("0", "1", "1"))


if __name__ == "__main__":
    main()
