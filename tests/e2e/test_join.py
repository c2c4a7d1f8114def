"""How statusd joins events that carry no tracking id (Postfix's log) to messages: by queue
id within a time window (short queue ids are reused), else by Message-ID; a log line that
arrives before the milter's record waits and is folded in when the record comes, and so
does a Dovecot plugin event that names a message whose sender is not known yet (it must
reach the sender's live feed); an alias's expansion counts for the address the sender
used, in every order of the milter's record, Postfix's orig_to= line and the plugin's
events; an event of an address the sender did not use and nothing tied to one is in
nothing the sender sees; addresses compare case-blind."""
import json

import websocket  # Debian's python3-websocket

from e2e import StatusdTest, event, main

DAY = 86400 * 1000
SENDER = "alice@example.org"


class JoinTest(StatusdTest):
    def status(self, tid):
        code, doc = self.sd.status(tid)
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r for r in doc["recipients"]}

    def log_event(self, type_, queue_id, recipient, offset_ms=0, **kw):
        ev = event(type_, tracking_id=None, queue_id=queue_id, recipient=recipient,
                   offset_ms=offset_ms, source="postfix", **kw)
        return ev

    def test_log_line_before_the_milter_record(self):
        self.send([self.log_event("relayed", "4XjoinA1", "bob@example.net", -1000,
                                  details={"smtp_reply": "250 2.0.0 Ok", "mta": "mx"})])
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE queue_id = '4XjoinA1' AND message IS NULL"), "1")
        self.send([event("queued", tracking_id="joinA", queue_id="4XjoinA1",
                         recipient="bob@example.net", offset_ms=-2000, sender=SENDER)])
        bob = self.status("joinA")["bob@example.net"]
        self.assertEqual((bob["status"], bob["smtp_reply"]), ("relayed", "250 2.0.0 Ok"))
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events WHERE queue_id = '4XjoinA1' AND message IS NULL"), "0")

    def test_plugin_event_before_the_milter_record(self):
        """delivered and read from the plugin, then (statusd was away, the milter's spool
        comes later) the milter's queued: the sender's live feed gets all three, and no
        offset went by while nobody could be told whose event it was."""
        url = (f"ws://127.0.0.1:{self.sd.http_port}/api/v1/messages/stream?access_token="
               + self.sd.token(SENDER))
        ws = websocket.create_connection(url, timeout=10)
        try:
            self.assertEqual(json.loads(ws.recv())["type"], "hello")
            head = int(self.pg.scalar("SELECT head FROM log_head"))
            self.send([event("delivered", tracking_id="early1", recipient="bob@example.org",
                             offset_ms=-1000, source="dovecot"),
                       event("read", tracking_id="early1", recipient="bob@example.org",
                             source="dovecot")])
            self.assertEqual(self.pg.scalar("SELECT head FROM log_head"), str(head),
                             "an event of a message without an owner entered the log")
            self.assertEqual(self.sd.status("early1")[0], 404)
            self.send([event("queued", tracking_id="early1", queue_id="EARLY1",
                             recipient="bob@example.org", offset_ms=-2000, sender=SENDER)])
            got = [json.loads(ws.recv()) for _ in range(3)]
        finally:
            ws.close()
        self.assertEqual([(g["status"], g["offset"]) for g in got],
                         [("queued", head + 1), ("delivered", head + 2), ("read", head + 3)])
        self.assertEqual(self.status("early1")["bob@example.org"]["status"], "read")
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message "
            "WHERE m.tracking_id = 'early1' AND e.log_offset IS NULL"), "0")

    def test_queue_id_reuse(self):
        old, new = -70 * DAY, -60000
        self.send([event("queued", tracking_id="reuseOld", queue_id="ABC123",
                         recipient="x@example.net", offset_ms=old, sender=SENDER),
                   event("queued", tracking_id="reuseNew", queue_id="ABC123",
                         recipient="y@example.net", offset_ms=new, sender=SENDER)])
        self.send([self.log_event("bounced", "ABC123", "x@example.net", old + 60000),
                   self.log_event("relayed", "ABC123", "y@example.net", new + 1000)])
        self.assertEqual(self.status("reuseOld")["x@example.net"]["status"], "bounced")
        self.assertEqual(self.status("reuseNew")["y@example.net"]["status"], "relayed")
        self.assertNotIn("x@example.net", self.status("reuseNew"))

    def test_message_id_fallback(self):
        self.send([event("queued", tracking_id="midJoin", message_id="<mj@example.org>",
                         queue_id="QQ1", recipient="z@example.net", offset_ms=-5000,
                         sender=SENDER)])
        self.send([event("delivered", tracking_id=None, queue_id=None,
                         message_id="<mj@example.org>", recipient="z@example.net",
                         source="postfix")])
        self.assertEqual(self.status("midJoin")["z@example.net"]["status"], "delivered")

    def test_alias_expansion_counts_for_the_original_recipient(self):
        self.send([event("queued", tracking_id="alias1", queue_id="AL1",
                         recipient="team@example.org", offset_ms=-5000, sender=SENDER)])
        self.send([self.log_event("delivered", "AL1", "alice@example.org", -1000,
                                  orig_recipient="team@example.org"),
                   self.log_event("deferred", "AL1", "bob@example.org", -1000,
                                  orig_recipient="team@example.org")])
        rc = self.status("alias1")
        self.assertEqual(sorted(rc), ["team@example.org"])
        self.assertEqual(rc["team@example.org"]["status"], "delivered")

    def feed_after(self, head, n=50):
        """What alice's feeds and webhooks get after head: every logged event of a message
        of hers, as (recipient, type code)."""
        rows = self.pg.psql(
            "SELECT e.rcpt, e.type FROM events e JOIN messages m ON m.id = e.message"
            f" WHERE e.log_offset > {int(head)} AND m.owner = '{SENDER}'"
            " ORDER BY e.log_offset")
        return [(r[0], int(r[1])) for r in rows]

    def alias_case(self, tid, qid, order):
        """alice mails robert@, an alias of bob@: Postfix's line ties bob@ to robert@
        (orig_to=), the plugin knows only bob@. In every order, only robert@ shows."""
        queued = [event("queued", tracking_id=tid, queue_id=qid,
                        recipient="robert@example.org", offset_ms=-5000, sender=SENDER)]
        plugin = [event("delivered", tracking_id=tid, recipient="bob@example.org",
                        offset_ms=-900, source="dovecot"),
                  event("read", tracking_id=tid, recipient="bob@example.org",
                        offset_ms=-100, source="dovecot")]
        logd = [self.log_event("delivered", qid, "bob@example.org", -1000,
                               orig_recipient="robert@example.org")]
        parts = {"queued": queued, "plugin": plugin, "logd": logd}
        head = self.pg.scalar("SELECT head FROM log_head")
        for name in order:
            self.send(parts[name])
            # whatever has arrived so far, bob@ is not shown
            code, doc = self.sd.status(tid)
            if code == 200:
                self.assertNotIn("bob@example.org",
                                 [r["recipient"] for r in doc["recipients"]], order)
        rc = self.status(tid)
        self.assertEqual(sorted(rc), ["robert@example.org"], order)
        self.assertEqual(rc["robert@example.org"]["status"], "read", order)
        code, doc = self.sd.api(f"/api/v1/messages/{tid}/timeline", self.sd.token(SENDER))
        self.assertEqual(code, 200, doc)
        self.assertEqual({e["recipient"] for e in doc["events"]}, {"robert@example.org"})
        self.assertEqual(sorted(e["status"] for e in doc["events"]),
                         ["delivered", "delivered", "queued", "read"], order)
        self.assertEqual({r for r, _ in self.feed_after(head)}, {"robert@example.org"})
        code, doc = self.sd.api("/api/v1/messages?recipient=bob@example.org",
                                self.sd.token(SENDER))
        self.assertEqual((code, [m["tracking_id"] for m in doc["messages"]]), (200, []))

    def test_alias_plugin_before_the_log_line(self):
        self.alias_case("aliasP1", "ALP1", ["queued", "plugin", "logd"])

    def test_alias_log_line_before_the_plugin(self):
        self.alias_case("aliasP2", "ALP2", ["queued", "logd", "plugin"])

    def test_alias_every_order(self):
        orders = [["plugin", "queued", "logd"], ["plugin", "logd", "queued"],
                  ["logd", "plugin", "queued"], ["logd", "queued", "plugin"]]
        for i, order in enumerate(orders):
            with self.subTest(order=order):
                self.alias_case(f"aliasO{i}", f"ALO{i}", order)

    def test_a_copy_for_someone_the_sender_did_not_address(self):
        """alice mails carol only; a copy carrying its Msgstatus-Id is delivered to bob
        (LMTP injection, a redirect or a forward that keeps the header) and read: the
        events are stored, but bob is in nothing alice sees, and no offset went by."""
        self.send([event("queued", tracking_id="forged1", queue_id="FG1",
                         recipient="carol@example.org", offset_ms=-5000, sender=SENDER)])
        head = self.pg.scalar("SELECT head FROM log_head")
        self.send([event("delivered", tracking_id="forged1", recipient="bob@example.org",
                         offset_ms=-1000, source="dovecot"),
                   event("read", tracking_id="forged1", recipient="bob@example.org",
                         source="dovecot"),
                   event("deleted", tracking_id="forged1", recipient="bob@example.org",
                         source="dovecot")])
        self.assertEqual(self.pg.scalar("SELECT head FROM log_head"), head)
        self.assertEqual(self.pg.scalar(
            "SELECT count(*) FROM events e JOIN messages m ON m.id = e.message"
            " WHERE m.tracking_id = 'forged1' AND e.recipient = 'bob@example.org'"
            " AND e.log_offset IS NULL AND e.rcpt IS NULL"), "3")
        rc = self.status("forged1")
        self.assertEqual(list(rc), ["carol@example.org"])
        self.assertEqual(rc["carol@example.org"]["status"], "queued")
        # carol's own delivery still counts, and a later milter record changes nothing
        self.send([event("delivered", tracking_id="forged1", recipient="carol@example.org",
                         source="dovecot"),
                   event("queued", tracking_id="forged1", queue_id="FG1",
                         recipient="carol@example.org", offset_ms=-5000, sender=SENDER)])
        rc = self.status("forged1")
        self.assertEqual(list(rc), ["carol@example.org"])
        self.assertEqual(rc["carol@example.org"]["status"], "delivered")
        self.assertEqual(self.feed_after(head), [("carol@example.org", 4),
                                                 ("carol@example.org", 1)])

    def test_addresses_compare_without_case(self):
        self.send([event("queued", tracking_id="case1", queue_id="CS1",
                         recipient="Bob@Example.NET", offset_ms=-5000, sender=SENDER)])
        self.send([self.log_event("relayed", "CS1", "bob@example.net", -1000)])
        rc = self.status("case1")
        self.assertEqual(list(rc), ["bob@example.net"])
        self.assertEqual(rc["bob@example.net"]["status"], "relayed")


if __name__ == "__main__":
    main()
