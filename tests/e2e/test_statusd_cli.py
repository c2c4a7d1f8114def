"""statusd and statusctl on the command line: configuration errors name the file, line and
setting; usage on bad flags; every setting is documented; statusctl migrate and status; an
upgrade of a database with data."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from e2e import event, main, schema_version
from msgsandbox import Sandbox, paths
from msgsandbox.core import SandboxError

STATUSD = paths.binary("statusd/statusd")
STATUSCTL = paths.binary("statusd/statusctl")
MILTER = paths.binary("milter/msgstatus-milter")
LOGD = paths.binary("logd/msgstatus-logd")


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


class ConfigTest(unittest.TestCase):
    def config(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_check_prints_every_setting(self):
        res = run([STATUSD, "-n", "-c", self.config("# comment\n\nverbose = yes\n")])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("verbose = yes", res.stdout)
        self.assertIn("event_retention = 7776000000ms", res.stdout)

    def test_bad_configurations(self):
        cases = [  # (config text, substrings of the error)
            ("no_such_thing = 1\n", [":1:", "unknown setting", "no_such_thing"]),
            ("\nverbose = maybe\n", [":2:", "verbose", "yes or no"]),
            ("ingest_batch_max = 0\n", [":1:", "ingest_batch_max", "out of range"]),
            ("ingest_batch_max = lots\n", ["ingest_batch_max", "integer"]),
            ("event_retention = 5 fortnights\n", ["event_retention", "time"]),
            ("verbose = yes\nverbose = no\n", [":2:", "set twice"]),
            ("just some words\n", [":1:", "name = value"]),
            ("http_listen = localhost\n", ["http_listen", "host:port"]),
            ("events_socket_mode = 999\n", ["events_socket_mode", "octal"]),
            ("events_socket = relative.sock\n", ["events_socket", "absolute"]),
            ("log_target = printer\n", ["log_target", "stderr or syslog"]),
            ("events_socket_group = no-such-group-here\n", ["events_socket_group", "no group"]),
            ("syslog_facility = kitchen\n", ["syslog_facility", "unknown facility"]),
            ("federation_accept = maybe\n", ["federation_accept", "yes, no or auto"]),
            ("federation_endpoint = http://status.example.org/r\n", ["federation_endpoint"]),
        ]
        for text, wants in cases:
            path = self.config(text)
            res = run([STATUSD, "-n", "-c", path])
            self.assertEqual(res.returncode, 1, f"{text!r}: got exit {res.returncode}")
            for want in wants:
                self.assertIn(want, res.stderr, f"{text!r}: got {res.stderr!r}")
            self.assertIn("fatal", res.stderr)

    def test_missing_file_and_usage(self):
        res = run([STATUSD, "-c", "/nonexistent/statusd.conf"])
        self.assertEqual(res.returncode, 1)
        self.assertIn("/nonexistent/statusd.conf", res.stderr)
        for argv in ([STATUSD, "-x"], [STATUSD, "extra"], [STATUSCTL], [STATUSCTL, "frobnicate"],
                     [STATUSCTL, "status"]):
            res = run(argv)
            self.assertEqual(res.returncode, 2, f"{argv}: {res.returncode}")
            self.assertIn("usage:", res.stderr)

    def test_every_setting_is_documented(self):
        for program, man_page, example_file in (
                (STATUSD, "statusd.conf.5", "statusd.conf"),
                (MILTER, "msgstatus-milter.conf.5", "milter.conf"),
                (LOGD, "msgstatus-logd.conf.5", "logd.conf")):
            res = run([program, "-n", "-c", self.config("")])
            self.assertEqual(res.returncode, 0, res.stderr)
            names = [line.split(" = ")[0] for line in res.stdout.splitlines()]
            self.assertGreater(len(names), 10)
            with open(os.path.join(paths.source, "man", man_page)) as f:
                man = f.read()
            with open(os.path.join(paths.source, "etc", example_file)) as f:
                example = f.read()
            for name in names:
                self.assertRegex(man, r"\.TP\n\\fB" + re.escape(name) + r"\\fR",
                                 f"{man_page} lacks {name}")
                self.assertRegex(example, r"(?m)^#?" + re.escape(name) + " =",
                                 f"etc/{example_file} lacks {name}")

    def test_logd_configuration_errors(self):
        cases = [
            ("maillog_file =\n", ["maillog_file or syslog_socket"]),
            ("maillog_file = relative.log\n", ["absolute"]),
            ("syslog_socket_mode = 999\n", ["syslog_socket_mode", "octal"]),
            ("log_target = file\n", ["log_target"]),
            ("spool_max_size = 1k\n", ["spool_max_size", "out of range"]),
            ("bogus = 1\n", [":1:", "unknown setting"]),
        ]
        for text, wants in cases:
            res = run([LOGD, "-n", "-c", self.config(text)])
            self.assertEqual(res.returncode, 1, f"{text!r}")
            for want in wants:
                self.assertIn(want, res.stderr, f"{text!r}: {res.stderr!r}")
        res = run([LOGD, "-x"])
        self.assertEqual(res.returncode, 2)
        self.assertIn("usage:", res.stderr)

    def test_milter_configuration_errors(self):
        cases = [
            ("milter_socket = /no/scheme\n", ["milter_socket", "unix:"]),
            ("spool_dir = relative\n", ["absolute"]),
            ("spool_segment_size = 2g\nspool_max_size = 1g\n", ["spool_segment_size"]),
            ("max_recipients = 0\n", ["max_recipients", "out of range"]),
            ("bogus = 1\n", [":1:", "unknown setting"]),
        ]
        for text, wants in cases:
            res = run([MILTER, "-n", "-c", self.config(text)])
            self.assertEqual(res.returncode, 1, f"{text!r}")
            for want in wants:
                self.assertIn(want, res.stderr, f"{text!r}: {res.stderr!r}")
        res = run([MILTER, "-x"])
        self.assertEqual(res.returncode, 2)
        self.assertIn("usage:", res.stderr)


class StatusctlTest(unittest.TestCase):
    def test_migrate_and_status(self):
        with Sandbox() as sb:
            pg = sb.postgres()
            conf = sb.path("statusctl.conf")
            with open(conf, "w") as f:
                f.write(f"database = {pg.conninfo}\nsql_dir = {paths.source}/sql\n")
            for _ in range(2):  # idempotent
                res = run([STATUSCTL, "-c", conf, "migrate"])
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn(f"version {schema_version()}", res.stdout)
            # migrated by statusctl: a statusd that does not migrate accepts the schema
            sd = sb.statusd(pg, settings={"database_migrate": "no"})
            sd.send_events([event("queued", tracking_id="ctl1", message_id="<ctl1@example.org>",
                                  sender="alice@example.org", recipient="bob@example.net"),
                            event("delivered", tracking_id="ctl1", recipient="bob@example.net")])
            res = run([STATUSCTL, "-c", conf, "status", "ctl1"])
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertRegex(res.stdout, r"bob@example\.net\s+delivered")
            res = run([STATUSCTL, "-c", conf, "--json", "status", "<ctl1@example.org>"])
            self.assertEqual(json.loads(res.stdout)["recipients"][0]["status"], "delivered")
            res = run([STATUSCTL, "-c", conf, "status", "nope"])
            self.assertEqual(res.returncode, 3)


class UpgradeTest(unittest.TestCase):
    # what an upgrade must keep: every column the ingest and the status read
    RECIPIENTS = ("SELECT m.tracking_id, r.recipient, r.orig_recipient, r.dkey, r.rkey, r.xkey,"
                  " r.copies, r.displayed, r.status, r.details FROM recipients r"
                  " JOIN messages m ON m.id = r.message ORDER BY 1, 2")
    EVENTS = ("SELECT event_id, log_offset, type, message, rcpt, dkey, rkey, xkey, copies"
              " FROM events ORDER BY event_id")

    @staticmethod
    def migrations_up_to(sb, version):
        """A folder with sql/'s migrations up to version: the schema of an older release."""
        old = sb.mkdir(f"sql-{version:03d}")
        for name in sorted(os.listdir(os.path.join(paths.source, "sql"))):
            m = re.match(r"(\d{3})_.*\.sql$", name)
            if m and int(m.group(1)) <= version:
                shutil.copy(os.path.join(paths.source, "sql", name), old)
        return old

    def statuses(self, sd, tid):
        code, doc = sd.status(tid, user="alice@example.org")
        self.assertEqual(code, 200, doc)
        return {r["recipient"]: r["status"] for r in doc["recipients"]}

    def at_schema(self, sb, pg, version):
        """statusd on a database of the first migrations only, up to version."""
        sd = sb.statusd(pg, settings={"sql_dir": self.migrations_up_to(sb, version)})
        self.assertEqual(pg.scalar("SELECT max(version) FROM schema_version"), str(version))
        return sd

    def migrate(self, sb, pg):
        """statusctl migrate, to the newest schema."""
        conf = sb.path("statusctl.conf")
        with open(conf, "w") as f:
            f.write(f"database = {pg.conninfo}\nsql_dir = {paths.source}/sql\n")
        res = run([STATUSCTL, "-c", conf, "migrate"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(f"version {schema_version()}", res.stdout)

    def test_upgrade_from_005_keeps_data_and_goes_on(self):
        """A database at schema 005 with events in each state (in the log; held for an
        address the sender did not use; held for a message without an owner; stored
        without a message) migrates to the newest schema, keeps what it stored, and goes on:
        later events count as they would have, those held are released when they would
        have been."""
        with Sandbox() as sb:
            pg = sb.postgres()
            sd = self.at_schema(sb, pg, 5)
            alice = dict(sender="alice@example.org")
            sd.send_events([
                event("queued", tracking_id="up1", recipient="bob@example.net", **alice),
                event("queued", tracking_id="up1", recipient="carol@example.net", **alice),
                event("delivered", tracking_id="up1", recipient="bob@example.net"),
                # an address alice did not use: held
                event("delivered", tracking_id="up1", recipient="erin@example.net"),
                # a read ahead of its queued: its message has no owner yet
                event("read", tracking_id="up2", recipient="dave@example.net"),
                # a log line ahead of the milter's record: no message yet
                event("relayed", tracking_id=None, queue_id="4UPQ3",
                      recipient="fred@example.net")])
            self.assertEqual(self.statuses(sd, "up1"),
                             {"bob@example.net": "delivered", "carol@example.net": "queued"})
            recipients, events = pg.psql(self.RECIPIENTS), pg.psql(self.EVENTS)
            self.assertEqual(len(events), 6)
            sd.stop()

            self.migrate(sb, pg)
            self.assertEqual(pg.psql(self.RECIPIENTS), recipients)
            self.assertEqual(pg.psql(self.EVENTS), events)

            sd.settings["sql_dir"] = os.path.join(paths.source, "sql")
            sd.start()
            self.assertEqual(self.statuses(sd, "up1"),
                             {"bob@example.net": "delivered", "carol@example.net": "queued"})
            sd.send_events([
                # carol was queued before the upgrade: her relay counts
                event("relayed", tracking_id="up1", recipient="carol@example.net"),
                # the owner of up2 arrives: the read held since before the upgrade counts
                event("queued", tracking_id="up2", recipient="dave@example.net", **alice),
                # the milter's record of 4UPQ3: the log line stored before joins it
                event("queued", tracking_id="up3", queue_id="4UPQ3",
                      recipient="fred@example.net", **alice)])
            self.assertEqual(self.statuses(sd, "up1"),
                             {"bob@example.net": "delivered", "carol@example.net": "relayed"})
            self.assertEqual(self.statuses(sd, "up2"), {"dave@example.net": "read"})
            self.assertEqual(self.statuses(sd, "up3"), {"fred@example.net": "relayed"})
            # erin's delivery stays held; every other event is in the log, once
            self.assertEqual(pg.psql("SELECT rcpt, log_offset FROM events"
                                     " WHERE recipient = 'erin@example.net'"), [["", ""]])
            self.assertEqual(pg.scalar("SELECT count(DISTINCT log_offset) FROM events"), "8")

    # the federation's message ids of every message, by the generic function (sql/008),
    # and what the indexes of messages find for each (a Message-ID's id is of what is
    # between its angle brackets)
    BARE = ("CASE WHEN {0}.message_id LIKE '<%>' AND length({0}.message_id) > 2"
            " THEN substr({0}.message_id, 2, length({0}.message_id) - 2)"
            " ELSE {0}.message_id END")
    FED_IDS = ("SELECT m.tracking_id,"
               " msgstatus_fed_msgid('msgstatus tracking-id', m.tracking_id),"
               " msgstatus_fed_msgid('rfc5322 msg-id', " + BARE.format("m") + "),"
               " (SELECT array_agg(f.tracking_id) FROM messages f WHERE msgstatus_fed_tid("
               "  f.tracking_id) = msgstatus_fed_msgid('msgstatus tracking-id', m.tracking_id)),"
               " (SELECT array_agg(f.tracking_id) FROM messages f WHERE msgstatus_fed_mid("
               "  f.message_id) = msgstatus_fed_msgid('rfc5322 msg-id', " + BARE.format("m") + "))"
               " FROM messages m ORDER BY 1")

    def test_upgrade_from_011_keeps_the_federation_ids(self):
        """Schema 012 replaces the functions that index messages by their federation ids
        with ones PostgreSQL inlines (each stored message ran both through the executor):
        the messages stored before the upgrade are found by the same ids, by index, and
        those stored after too; the index of recipients by address alone is gone; the
        ingest's last step, which statusd now calls itself, moves the head only from where
        it is."""
        with Sandbox() as sb:
            pg = sb.postgres()
            sd = self.at_schema(sb, pg, 11)
            inlined = ("EXPLAIN (VERBOSE, COSTS OFF) SELECT msgstatus_fed_tid(tracking_id),"
                       " msgstatus_fed_mid(message_id) FROM messages")
            self.assertIn("msgstatus_fed_tid(", "\n".join(r[0] for r in pg.psql(inlined)))
            alice = dict(sender="alice@example.org")
            # Message-IDs with what the new functions treat specially: a backslash, a
            # quote, letters outside ASCII, no angle brackets, <> alone
            odd = ['<a\\b@x.example>', '<"q\\\\"@x.example>', '<ünï€😀@x.example>',
                   'bare@x.example', '<>', '<\\x41@x.example>']
            sd.send_events([event("queued", tracking_id=f"fed{i}", recipient="bob@example.net",
                                  message_id=mid, **alice) for i, mid in enumerate(odd)])
            before = pg.psql(self.FED_IDS)
            self.assertEqual(len(before), len(odd))
            sd.stop()

            self.migrate(sb, pg)
            plan = "\n".join(r[0] for r in pg.psql(inlined))
            self.assertNotIn("msgstatus_fed_tid(", plan)
            self.assertNotIn("msgstatus_fed_mid(", plan)
            self.assertIn("sha256(", plan)
            self.assertEqual(pg.scalar("SELECT to_regclass('recipients_recipient') IS NULL"), "t")
            # the same ids, and each message found by each of them (the index in use)
            self.assertEqual(pg.psql("SET enable_seqscan = off; " + self.FED_IDS), before)
            for tid, _tidhash, _midhash, by_tid, by_mid in before:
                self.assertEqual(by_tid, "{" + tid + "}")
                self.assertIn(tid, by_mid)
            lookup = pg.psql("SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM"
                             " messages WHERE msgstatus_fed_tid(tracking_id) = '\\x01'"
                             " OR msgstatus_fed_mid(message_id) = '\\x01'")
            lookup = "\n".join(r[0] for r in lookup)
            self.assertIn("messages_fed_tid", lookup)
            self.assertIn("messages_fed_mid", lookup)
            # the ingest's last step (statusd calls the steps one by one since 012) moves
            # the head only from where it is
            head = pg.scalar("SELECT head FROM log_head")
            with self.assertRaisesRegex(Exception, "the log head is not"):
                pg.psql(f"SELECT msgstatus_ingest_end({int(head) + 1}, 1)")
            self.assertEqual(pg.scalar("SELECT head FROM log_head"), head)

            sd.settings["sql_dir"] = os.path.join(paths.source, "sql")
            sd.start()
            sd.send_events([event("queued", tracking_id=f"fednew{i}", recipient="bob@example.net",
                                  message_id=mid.replace("@", f"{i}@"), **alice)
                            for i, mid in enumerate(odd)])
            after = pg.psql(self.FED_IDS)
            self.assertEqual(len(after), 2 * len(odd))
            for tid, _tidhash, _midhash, by_tid, by_mid in after:
                self.assertEqual(by_tid, "{" + tid + "}")
                self.assertIn(tid, by_mid)

    def test_upgrade_from_011_keeps_each_outbox_event_once(self):
        """A database at schema 011 whose federation outbox holds events twice (the ingest
        added both copies of an event that came twice in one batch) migrates: the first row
        of each event stays, in its place, and an event id is taken once from then on."""
        with Sandbox() as sb:
            pg = sb.postgres()
            old = self.migrations_up_to(sb, 11)
            conf = sb.path("statusctl.conf")
            for sql_dir, version in ((old, 11), (os.path.join(paths.source, "sql"),
                                                 schema_version())):
                with open(conf, "w") as f:
                    f.write(f"database = {pg.conninfo}\nsql_dir = {sql_dir}\n")
                res = run([STATUSCTL, "-c", conf, "migrate"])
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn(f"version {version}", res.stdout)
                if version == 11:
                    pg.psql("INSERT INTO fed_outbox (destination, reporter, event_id, status,"
                            " origin_tracking_id, recipient, event_time) SELECT 'example.org',"
                            " 'example.net', e, 7, 'org1', 'bob@example.net', now()"
                            " FROM unnest(ARRAY['e1', 'e2', 'e1', 'e3', 'e2', 'e1']) e")
            self.assertEqual(pg.psql("SELECT id, event_id FROM fed_outbox ORDER BY id"),
                             [["1", "e1"], ["2", "e2"], ["4", "e3"]])
            with self.assertRaisesRegex(SandboxError, "fed_outbox_event"):
                pg.psql("INSERT INTO fed_outbox (destination, reporter, event_id, status,"
                        " origin_tracking_id, recipient, event_time) VALUES ('example.org',"
                        " 'example.net', 'e2', 7, 'org1', 'bob@example.net', now())")


class FirstStartTest(unittest.TestCase):
    def test_first_start_on_an_empty_database_migrates_before_reading(self):
        """statusd migrates a new database before anything reads it: the log of a first
        start holds the migrations and no error about missing tables (issue 16)."""
        for attempt in range(3):  # the race it had was won most times by the reader
            with Sandbox() as sb:
                pg = sb.postgres()
                sd = sb.statusd(pg)
                wait = "feed: the log is at offset 0"
                deadline = time.monotonic() + 20
                while wait not in sd.child.log() and time.monotonic() < deadline:
                    time.sleep(0.05)
                log = sd.child.log()
                self.assertIn(wait, log)
                self.assertIn(f"database schema migrated to version {schema_version()}", log)
                for bad in ("does not exist", "ERROR", "not readable yet", "warning",
                            "set-up failed"):
                    self.assertNotIn(bad, log, f"attempt {attempt}: {log}")
                lines = log.splitlines()
                first_read = next(i for i, line in enumerate(lines)
                                  if "database (queries): connected" in line)
                last_migration = max(i for i, line in enumerate(lines)
                                     if "database schema migrated" in line)
                self.assertLess(last_migration, first_read, log)


if __name__ == "__main__":
    main()
