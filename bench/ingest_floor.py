#!/usr/bin/env python3
"""What the writes of an ingest cost alone: the floor of any ingest design that stores what
statusd stores, side by side with bench/ingest.py's COPY and with statusd's own ingest.

    bench/ingest_floor.py [--events 100000] [--rounds 3] [--batch 2000] [--only NAME,...]
                          [--statements NAME]

One private PostgreSQL 15 with durable settings (fsync on, synchronous_commit on), the
tree's schema (sql/, applied by statusd at its start), bench/ingest.py's event mix. Each
round runs every configuration once, in the order listed (interleaved: round 2 starts
after round 1 has run all of them), each on emptied tables after a CHECKPOINT, and measures
the wall time and the CPU time of all of PostgreSQL's processes per event:

  copy         bench/ingest.py's baseline: the same psql \\copy of the same event rows into
               events, one transaction (its emptying and counting left out of the clock)
  copy_batches the same rows, a COPY and a commit per batch
  writes       the writes a redesigned ingest cannot avoid, done the cheapest way found, a
               transaction per batch: lock the log head; ids for the batch's messages from
               the identity sequence; COPY of the messages (all indexes); COPY of the events
               with log_offset, message and rcpt filled in; the batch's recipients folded
               per (message, recipient) in the client (one row each, as lib/status.c's
               merge would) and upserted from a temporary table they are COPYed into; the
               log head moved
  writes_unnest  the same, the recipients upserted from unnest() of arrays instead
  writes_cut   writes with the cuts below that are allowed: messages without the two
               federation indexes, recipients without the stored status column
  writes_nofold  writes without the recipients (the fold off the acknowledgement's path)
  writes_nofold_cut  writes_nofold with messages without the federation indexes
  frame        only the batch's frame: the lock, the head moved, the commit
  events       only the COPY of the events (filled in), a transaction per batch
  messages     only the messages: the sequence and the COPY (7 indexes)
  messages_returning  INSERT ... SELECT FROM unnest() RETURNING id instead
  messages_5ix messages without the federation ids' indexes (sql/008)
  messages_4ix messages without them and without messages_owner (the user's list)
  recipients   only the recipients: COPY into a temporary table + INSERT ... ON CONFLICT
  recipients_unnest  INSERT ... SELECT FROM unnest(arrays) ON CONFLICT
  recipients_nostatus  as recipients, into a copy of the table without the stored
               generated status column
  recipients_ff70  as recipients, into a copy of the table with fillfactor 70
  prototype    sql/019's fast path, driven from here: a batch at a time,
               msgstatus_fast_begin() (lock, the
               batch's messages, whether it may take the fast path), then the fast path (the
               events COPYed numbered and joined, msgstatus_fast_fold() of the client's
               recipient rows) or today's, msgstatus_fast_end() (msgstatus_ingest_end()
               without the NOTIFY that the statusd beside it would answer by reading the
               batch back from the log)
  prototype_cut  the same without the federation indexes of messages
  statusd      statusd's real ingest, as bench/ingest.py measures it (--batch per batch)

Before the rounds, the prototype stores a set of batches that goes through every rule of
msgstatus_ingest_append() (held events, events joined late, alias ties, the queued-recipient
rule, expiries, presence, read receipts turned off, a replay), and the result is compared
with what today's ingest stores from the same batches: the run stops if they differ.

Prints a Markdown table: per configuration the medians of the rounds and their range of
events/s, of PostgreSQL CPU µs per event, and both as ratios to copy (medians of the rounds'
ratios). Every configuration's result is checked (row counts, the log head).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import time

import benchutil  # noqa: F401  (first: it puts the sandbox on sys.path)
from benchutil import backends, pg_cpu
import ingest
from ingest import TYPES, copy_rows, make_events, rfc3339, run_statusd

from msgsandbox import Sandbox

ALL_TYPES = dict(TYPES, online=10, offline=11)  # presence too (lib/msevent.h)
# lib/status.h's delivery ranks; the reading axis has rank 0
RANK = {"queued": 1, "deferred": 2, "bounced": 3, "expired": 3, "relayed": 4, "delivered": 5}
COPY_COLS = ("event_time, event_id, log_offset, type, source, message, tracking_id, queue_id, "
             "message_id, recipient, orig_recipient, details")  # bench/ingest.py's
EVENT_COLS = ("event_time, event_id, log_offset, type, source, message, dkey, rkey, xkey, "
              "copies, tracking_id, queue_id, message_id, recipient, orig_recipient, rcpt, "
              "details")
MESSAGE_COLS = "id, tracking_id, message_id, queue_id, sender, sasl_user, owner, size, queued_at"
RCPT_COLS = ("message, recipient, orig_recipient, dkey, rkey, xkey, copies, displayed, queued, "
             "details")


def time_ms(s):
    return int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def keys(e):
    """The event's keys (dkey, rkey) in lib/status.h's layout: [0:1][rank:3][time_ms:44]
    [0:10][tie:2][code:4]."""
    code, t = ALL_TYPES[e["type"]], time_ms(e["time"])
    if e["type"] in RANK:
        return (RANK[e["type"]] << 60) | (t << 16) | code, 0
    if e["type"] in ("read", "unread"):
        return 0, (t << 16) | code
    return 0, 0


def copy_text(v):
    """A value in COPY's text format."""
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def array_literal(values):
    """A PostgreSQL array literal of values (text form), as a quoted SQL string."""
    out = []
    for v in values:
        if v is None:
            out.append("NULL")
        else:
            if isinstance(v, bool):
                v = "t" if v else "f"
            out.append('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "'{" + ",".join(out).replace("'", "''") + "}'"


class Batch:
    """One batch as a redesigned ingest would send it: its messages (new ones, with ids from
    the sequence), its events numbered and joined, its recipients folded in the client."""

    def __init__(self, events, first_offset, message_ids):
        self.n = len(events)
        self.messages = {}
        for e in events:
            m = self.messages.get(e["tracking_id"])
            if m is None:
                m = self.messages[e["tracking_id"]] = {
                    "id": message_ids[e["tracking_id"]], "tracking_id": e["tracking_id"],
                    "message_id": None, "queue_id": None, "sender": None, "sasl_user": None,
                    "size": None, "queued_at": None}
            for k in ("message_id", "queue_id", "sender", "sasl_user", "size"):
                if e.get(k) is not None and (m[k] is None or e[k] > m[k]):
                    m[k] = e[k]
            if e["type"] == "queued" and (m["queued_at"] is None or e["time"] < m["queued_at"]):
                m["queued_at"] = e["time"]
        for m in self.messages.values():
            m["owner"] = (m["sasl_user"] or m["sender"] or "").lower() or None
        self.events = []
        folded = {}
        for i, e in enumerate(events):
            mid = self.messages[e["tracking_id"]]["id"]
            rcpt = e["recipient"].lower()
            dkey, rkey = keys(e)
            details = json.dumps(e["details"]) if "details" in e else None
            self.events.append((e["time"], e["id"], first_offset + i, ALL_TYPES[e["type"]],
                                e["source"], mid, dkey, rkey, 0, 0, e["tracking_id"],
                                e.get("queue_id"), e.get("message_id"), e["recipient"], None,
                                rcpt, details))
            # lib/status.c's merge: the maximum per axis, the sum of copies; the details
            # of the event that set the delivery axis
            r = folded.setdefault((mid, rcpt), {"orig": None, "dkey": 0, "rkey": 0, "xkey": 0,
                                                "copies": 0, "displayed": False,
                                                "queued": False, "details": None})
            if dkey > r["dkey"]:
                r["dkey"], r["details"] = dkey, details
            r["rkey"] = max(r["rkey"], rkey)
            r["displayed"] = r["displayed"] or e["type"] == "read"
            r["queued"] = r["queued"] or e["type"] == "queued"
        self.recipients = [(mid, rcpt, r["orig"], r["dkey"], r["rkey"], r["xkey"], r["copies"],
                            r["displayed"], r["queued"], r["details"])
                           for (mid, rcpt), r in folded.items()]


def copy_block(table, cols, rows):
    return (f"COPY {table} ({cols}) FROM STDIN;\n"
            + "".join("\t".join(copy_text(v) for v in row) + "\n" for row in rows) + "\\.\n")


MESSAGE_TYPES = ("bigint", "text", "text", "text", "text", "text", "text", "bigint",
                 "timestamptz")
RCPT_TYPES = ("bigint", "text", "text", "bigint", "bigint", "bigint", "int", "boolean",
              "boolean", "jsonb")


def unnest(rows, types):
    cols = list(zip(*rows))
    return "unnest(" + ", ".join(f"{array_literal(c)}::{t}[]" for c, t in zip(cols, types)) + ")"


def messages_sql(b, how):
    ms = [tuple(m[k] for k in ("id", "tracking_id", "message_id", "queue_id", "sender",
                               "sasl_user", "owner", "size", "queued_at"))
          for m in b.messages.values()]
    if how == "returning":
        return (f"INSERT INTO messages ({MESSAGE_COLS.split(', ', 1)[1]})\n"
                f"SELECT * FROM {unnest([m[1:] for m in ms], MESSAGE_TYPES[1:])} RETURNING id;\n")
    # the ids from the identity sequence up front (the client numbers the rows with them),
    # then a COPY: COPY writes an identity column's values as given
    return (f"SELECT nextval('messages_id_seq') FROM generate_series(1, {len(ms)});\n"
            + copy_block("messages", MESSAGE_COLS, ms))


UPSERT = """INSERT INTO {table} AS r ({cols})
SELECT * FROM {source}
ON CONFLICT (message, recipient) DO UPDATE SET
	dkey = greatest(r.dkey, EXCLUDED.dkey),
	rkey = greatest(r.rkey, EXCLUDED.rkey),
	xkey = greatest(r.xkey, EXCLUDED.xkey),
	copies = r.copies + EXCLUDED.copies,
	displayed = r.displayed OR EXCLUDED.displayed,
	queued = r.queued OR EXCLUDED.queued,
	details = CASE WHEN EXCLUDED.dkey > r.dkey THEN EXCLUDED.details ELSE r.details END,
	updated_at = now()
WHERE EXCLUDED.dkey > r.dkey OR EXCLUDED.rkey > r.rkey OR EXCLUDED.xkey > r.xkey
   OR EXCLUDED.copies <> 0 OR (EXCLUDED.displayed AND NOT r.displayed)
   OR (EXCLUDED.queued AND NOT r.queued);
"""
RSTAGE = ("CREATE TEMP TABLE rstage (message bigint, recipient text, orig_recipient text, "
          "dkey bigint, rkey bigint, xkey bigint, copies int, displayed boolean, "
          "queued boolean, details jsonb) ON COMMIT DELETE ROWS;\n")


def recipients_sql(b, how, table="recipients"):
    if how == "unnest":
        return UPSERT.format(table=table, cols=RCPT_COLS, source=unnest(b.recipients, RCPT_TYPES))
    return copy_block("rstage", RCPT_COLS, b.recipients) + \
        UPSERT.format(table=table, cols=RCPT_COLS, source="rstage")


def script(batches, parts, rtable="recipients"):
    """A psql script: a transaction per batch with the parts asked for."""
    out = [RSTAGE if any(p.startswith("recipients") for p in parts) else ""]
    for b in batches:
        out.append("BEGIN;\n")
        if "frame" in parts:
            out.append("SELECT head FROM log_head FOR UPDATE;\n")
        if "messages" in parts:
            out.append(messages_sql(b, "sequence"))
        if "messages_returning" in parts:
            out.append(messages_sql(b, "returning"))
        if "events" in parts:
            out.append(copy_block("events", EVENT_COLS, b.events))
        if "recipients" in parts:
            out.append(recipients_sql(b, "copy", rtable))
        if "recipients_unnest" in parts:
            out.append(recipients_sql(b, "unnest", rtable))
        if "frame" in parts:
            out.append(f"UPDATE log_head SET head = head + {b.n};\n")
        out.append("COMMIT;\n")
    return "".join(out)


# --- the prototype (sql/019's functions, bench/ingest_fast.sql's end) ----------------

STAGE_COLS = ("seq, event_id, event_time, type, dkey, rkey, source, tracking_id, queue_id, "
              "message_id, recipient, orig_recipient, sender, sasl_user, size, details, xkey, "
              "copies")


def stage_rows(events):
    """The batch as statusd COPYs it into ingest_stage."""
    rows = []
    for i, e in enumerate(events):
        dkey, rkey = keys(e)
        rows.append((i + 1, e["id"], e["time"], ALL_TYPES[e["type"]], dkey, rkey, e["source"],
                     e.get("tracking_id"), e.get("queue_id"), e.get("message_id"),
                     e.get("recipient"), e.get("orig_recipient"), e.get("sender"),
                     e.get("sasl_user"), e.get("size"),
                     json.dumps(e["details"]) if "details" in e else None, 0, 0))
    return rows


def fast_candidate(events):
    """The client's own checks (sql/019, step 0): a batch that fails them takes
    today's path from the start."""
    seen = set()
    for e in events:
        if not e.get("tracking_id") or not e.get("recipient") or e.get("orig_recipient") \
                or e["type"] in ("online", "offline") or (e["time"], e["id"]) in seen:
            return False
        seen.add((e["time"], e["id"]))
    return True


def reference_batch(events):
    """A batch as statusd stores it today (msgstatus_ingest(): begin, append, end)."""
    return ("BEGIN;\n" + copy_block("ingest_stage", STAGE_COLS, stage_rows(events))
            + "SELECT count(*) FROM msgstatus_ingest();\nCOMMIT;\n")


def lit(v):
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def prototype_batch(events, slow_file, known=None, label=""):
    """A batch through the prototype: msgstatus_fast_begin(), then the fast path or today's
    (the staged batch in slow_file, read by psql's \\i only when taken).

    known: (h, ids), the head and the message ids the run knows in advance (every message
    new, from an empty table): the events are COPYed, as statusd would with the values
    msgstatus_fast_begin() returned (the script checks that they are those). None: the
    values are taken from its result (psql variables), by an INSERT, for the rule check."""
    local = {}
    for e in events:
        local.setdefault(e["tracking_id"], len(local) + 1)
    b = Batch(events, 1, local)
    ms = list(b.messages.values())
    arrays = [([m["tracking_id"] for m in ms], "text"), ([m["message_id"] for m in ms], "text"),
              ([m["queue_id"] for m in ms], "text"), ([m["sender"] for m in ms], "text"),
              ([m["sasl_user"] for m in ms], "text"), ([m["size"] for m in ms], "bigint"),
              ([m["queued_at"] for m in ms], "timestamptz"),
              ([r[0] for r in b.recipients], "int"),
              ([r[1] for r in b.recipients], "text"), ([r[8] for r in b.recipients], "boolean"),
              (sorted({e["recipient"].lower() for e in events
                       if e["type"] in ("read", "unread")}), "text"),
              ([e["message_id"] for e in events
                if e["type"] == "queued" and e.get("message_id")], "text")]
    begin = ("SELECT * FROM msgstatus_fast_begin("
             + ", ".join(f"{array_literal(a)}::{t}[]" for a, t in arrays) + ") \\gset\n")
    with open(slow_file, "w") as f:
        f.write(copy_block("ingest_stage", STAGE_COLS, stage_rows(events))
                + "SELECT count(*) AS n FROM msgstatus_fast_slow(:h, :known) \\gset\n"
                + (f"\\echo slow {label}\n" if label else ""))
    rest = [array_literal(c) + f"::{t}[]" for c, t in
            zip(list(zip(*b.recipients))[1:], RCPT_TYPES[1:])]
    if known is not None:
        h, ids = known
        check = (f"SELECT CASE WHEN :h <> {h} OR :'ids' <> '{{{','.join(map(str, ids))}}}' "
                 f"THEN 1/0 END;\n")
        write = copy_block("events", EVENT_COLS, [r[:2] + (h + r[2], r[3], r[4], ids[r[5] - 1])
                                                  + r[6:] for r in b.events])
        fold_ids = array_literal([ids[r[0] - 1] for r in b.recipients]) + "::bigint[]"
    else:
        check = ""
        write = (f"INSERT INTO events ({EVENT_COLS}) VALUES\n" + ",\n".join(
            f"({lit(r[0])}::timestamptz, {lit(r[1])}, :h + {r[2]}, {r[3]}, {lit(r[4])}, "
            f"(:'ids'::bigint[])[{r[5]}], {r[6]}, {r[7]}, 0, 0, {lit(r[10])}, {lit(r[11])}, "
            f"{lit(r[12])}, {lit(r[13])}, NULL, {lit(r[15])}, {lit(r[16])}::jsonb)"
            for r in b.events) + ";\n")
        fold_ids = "ARRAY[" + ", ".join(f"(:'ids'::bigint[])[{r[0]}]"
                                        for r in b.recipients) + "]::bigint[]"
    fold = "SELECT msgstatus_fast_fold(" + ", ".join([fold_ids] + rest) + ");\n"
    return ("BEGIN;\n" + begin + "\\if :fast\n" + check
            # a replay is a unique violation: back to the savepoint before the write, and
            # today's path
            + "\\set ON_ERROR_STOP 0\n\\set ON_ERROR_ROLLBACK on\n" + write
            + "\\set ON_ERROR_ROLLBACK off\n\\set ON_ERROR_STOP 1\n"
            + f"\\if :ERROR\n\\i {slow_file}\n\\else\n" + fold + f"\\set n {b.n}\n"
            + (f"\\echo fast {label}\n" if label else "") + "\\endif\n"
            + f"\\else\n\\i {slow_file}\n\\endif\n"
            + "SELECT msgstatus_fast_end(:h, :n);\nCOMMIT;\n")


def prototype_script(sb, name, batches, known=None, labels=False):
    out = ["SELECT msgstatus_session_setup();\n"]
    for k, events in enumerate(batches):
        label = f"{k + 1}" if labels else ""
        if fast_candidate(events):
            out.append(prototype_batch(events, sb.path(f"{name}-slow{k}.sql"),
                                       known(k, events) if known else None, label))
        else:
            out.append(reference_batch(events) + (f"\\echo today {label}\n" if label else ""))
    return "".join(out)


def rule_batches():
    """Batches that take every path and rule of msgstatus_ingest_append(), in order."""
    base = time.time() - 3600

    def msg(k):
        return {"tracking_id": f"chk{k}", "message_id": f"<chk{k}@bench.example>",
                "queue_id": f"5Q{k:08d}"}

    def ev(eid, kind, t, rcpt, m=None, **kw):
        d = {"v": 1, "source": "bench", "id": eid, "type": kind, "time": rfc3339(base + t)}
        if rcpt is not None:
            d["recipient"] = rcpt
        if m is not None:
            d.update(msg(m))
        d.update(kw)
        return d

    def queued(m, r, t):
        return ev(f"c{m}q{r}", "queued", t, f"{r}@bench.example", m,
                  sender="alice@bench.example", sasl_user="alice@bench.example", size=4096)

    def plain(m, t):
        return [queued(m, "bob", t), queued(m, "carol", t),
                ev(f"c{m}s", "relayed", t + 0.2, "carol@bench.example", m,
                   details={"mta": "mx.remote.example[192.0.2.7]:25", "dsn": "2.0.0"}),
                ev(f"c{m}d", "delivered", t + 0.1, "bob@bench.example", m),
                ev(f"c{m}r", "read", t + 5, "bob@bench.example", m)]

    return [
        plain(1, 0) + plain(2, 1),                                   # fast
        [ev("c3r", "read", 12, "bob@bench.example", 3)],             # no owner: held
        [queued(3, "bob", 10), queued(3, "carol", 10),               # releases the held read
         ev("c3d", "delivered", 11, "bob@bench.example", 3)],
        [ev("c5d", "delivered", 21, "carol@bench.example", None, source="postfix",
            queue_id=msg(5)["queue_id"])],                           # no message yet
        [queued(5, "carol", 20), queued(5, "bob", 20)],              # joins it
        [queued(6, "alias", 30),                                     # an alias's expansion
         ev("c6d", "delivered", 31, "real@bench.example", 6,
            orig_recipient="alias@bench.example")],
        [ev("c6r", "read", 35, "real@bench.example", 6)],            # tied to alias@
        [queued(7, "dave", 40), ev("c7d", "delivered", 41, "dave@bench.example", 7),
         ev("c7r", "read", 42, "dave@bench.example", 7)],            # receipts off
        [ev("c8p", "online", 45, "erin@bench.example", source="dovecot")],  # presence
        plain(1, 0) + plain(2, 1),                                   # a replay
        [ev("c2d2", "delivered", 3, "carol@bench.example", 2)],      # fast, known message
        [ev("c2z", "read", 6, "zed@bench.example", 2)],              # not used: held
        [queued(9, "bob", 50), queued(9, "carol", 50)],              # fast
        [ev("c9x", "expired", 60, None, queue_id=msg(9)["queue_id"],
            source="postfix")],                                      # message-level expiry
        [queued(10, "bob", 70)],                                     # fast
        [queued(10, "carol", 70), ev("c10d", "delivered", 71, "carol@bench.example", 10)],
        plain(11, 80) + [ev("c11z", "read", 86, "zed@bench.example", 11)],  # one not used
    ]


RULE_PATHS = ["fast", "slow", "slow", "today", "slow", "today", "slow", "slow", "today", "slow",
              "fast", "slow", "fast", "today", "fast", "fast", "slow"]
DUMPS = [
    "SELECT e.event_id, e.event_time, e.log_offset, e.type, m.tracking_id, e.rcpt, e.dkey, "
    "e.rkey, e.xkey, e.copies, e.recipient, e.orig_recipient, e.queue_id, e.details "
    "FROM events e LEFT JOIN messages m ON m.id = e.message ORDER BY 1, 2",
    "SELECT m.tracking_id, r.recipient, r.orig_recipient, r.dkey, r.rkey, r.xkey, r.copies, "
    "r.displayed, r.queued, r.status, r.details FROM recipients r "
    "JOIN messages m ON m.id = r.message ORDER BY 1, 2",
    "SELECT tracking_id, message_id, queue_id, sender, sasl_user, owner, size, queued_at "
    "FROM messages ORDER BY 1",
    "SELECT name, online_until, last_seen, client FROM presence ORDER BY 1",
    "SELECT head FROM log_head",
]


def check_rules(pg, sb):
    """The prototype stores what today's ingest stores, batch by batch through every rule."""
    pg.psql("INSERT INTO users (name, read_receipts, presence) VALUES "
            "('dave@bench.example', false, false), ('erin@bench.example', true, true) "
            "ON CONFLICT DO NOTHING")
    batches = rule_batches()
    got = {}
    for name, text in (("today", "SELECT msgstatus_session_setup();\n"
                        + "".join(reference_batch(b) for b in batches)),
                       ("prototype", prototype_script(sb, "rules", batches, labels=True))):
        empty(pg)
        pg.psql("TRUNCATE presence")
        path = sb.path(f"rules-{name}.sql")
        with open(path, "w") as f:
            f.write(text)
        res = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null",
                              "-h", pg.dir, "-p", str(pg.port), "-U", pg.superuser, "-d",
                              pg.dbname, "-f", path], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        got[name] = [pg.psql(q) for q in DUMPS]
        if name == "prototype":
            paths = [line.split()[0] for line in res.stdout.splitlines()]
            assert paths == RULE_PATHS, f"paths taken: {paths}, not {RULE_PATHS}"
            assert "duplicate key" in res.stderr, res.stderr  # the replay's COPY
    for q, a, b in zip(DUMPS, got["today"], got["prototype"]):
        assert a == b, f"{q}:\n today     {a}\n prototype {b}"
    print(f"rules: the prototype stored what today's ingest stores ({len(batches)} batches, "
          f"{sum(map(len, batches))} events, {len(got['today'][0])} stored, paths "
          f"{' '.join(RULE_PATHS)})", flush=True)


def psql_file(pg, path):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-h", pg.dir,
                    "-p", str(pg.port), "-U", pg.superuser, "-d", pg.dbname, "-f", path],
                   check=True)


def client_backends(pg):
    """The pids of PostgreSQL's children that are client backends, exiting or exited
    (zombies). pg_cpu() reads the postmaster's reaped children's CPU before the live
    children's: a backend reaped in between is counted in neither, so the measurement
    waits until psql's backend has gone."""
    out = set()
    for pid in backends(pg):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        # an exiting process has no command line any more
        if zombie(pid) or b"[local]" in cmdline or not cmdline:
            out.add(pid)
    return out


def zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def settled_cpu(pg, keep):
    """pg_cpu() once every client backend but those in keep (statusd's) has ended and been
    reaped. keep grows by the live ones still there after 2 s (statusd opened one)."""
    deadline = time.monotonic() + 2
    while client_backends(pg) - keep:
        if time.monotonic() > deadline:
            keep |= {p for p in client_backends(pg) if not zombie(p)}
            deadline = time.monotonic() + 2
        time.sleep(0.005)
    return pg_cpu(pg)


def empty(pg):
    pg.psql("TRUNCATE events, recipients, messages, recipients_nostatus, recipients_ff70 "
            "RESTART IDENTITY; UPDATE log_head SET head = 0; CHECKPOINT")


FED_INDEXES = ("messages_fed_tid", "messages_fed_mid")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--only", help="comma-separated configurations (copy is always run)")
    ap.add_argument("--statements", metavar="NAME",
                    help="after the rounds, run configuration NAME once more with "
                         "pg_stat_statements (track = all) and print its statements' "
                         "mean time per call")
    args = ap.parse_args()

    events = make_events(args.events)
    n = len(events)
    ids = {}
    for e in events:
        ids.setdefault(e["tracking_id"], len(ids) + 1)
    batches = [Batch(events[i:i + args.batch], i + 1, ids) for i in range(0, n, args.batch)]
    nmsg, nrcpt = len(ids), sum(len(b.recipients) for b in batches)

    with Sandbox(name="bench-floor") as sb:
        settings = {"shared_buffers": "512MB", "max_wal_size": "4GB"}
        if args.statements:
            settings.update({"shared_preload_libraries": "'pg_stat_statements'",
                             "pg_stat_statements.track": "all"})
        pg = sb.postgres(fsync=True, settings=settings)
        sd = sb.statusd(pg, settings={"ingest_batch_max": str(args.batch)})
        # the tables of the cuts: recipients as it is, without the stored status, with
        # fillfactor 70
        pg.psql("CREATE TABLE recipients_nostatus (LIKE recipients INCLUDING DEFAULTS "
                "INCLUDING INDEXES); ALTER TABLE recipients_nostatus DROP COLUMN status; "
                "CREATE TABLE recipients_ff70 (LIKE recipients INCLUDING ALL) "
                "WITH (fillfactor = 70)")
        fed = {name: pg.scalar(f"SELECT pg_get_indexdef('{name}'::regclass)")
               for name in FED_INDEXES + ("messages_owner",)}
        restore = "; ".join(f"{d} " for d in fed.values()).replace(
            "CREATE INDEX", "CREATE INDEX IF NOT EXISTS")
        drop_fed = "DROP INDEX messages_fed_tid, messages_fed_mid"
        drop_owner = "DROP INDEX messages_owner"

        files = {}

        def write(name, text):
            path = sb.path(f"{name}.sql")
            with open(path, "w") as f:
                f.write(text)
            files[name] = path

        # bench/ingest.py's rows: in one COPY as its run_copy() (without its emptying and
        # counting), and a COPY and a commit per batch
        text = copy_rows(events)
        rows = sb.path("events.copy")
        with open(rows, "w") as f:
            f.write(text)
        write("copy", f"\\copy events ({COPY_COLS}) FROM '{rows}'\n")
        lines = text.splitlines(keepends=True)
        write("copy_batches", "".join(
            f"BEGIN;\nCOPY events ({COPY_COLS}) FROM STDIN;\n"
            + "".join(lines[i:i + args.batch]) + "\\.\nCOMMIT;\n"
            for i in range(0, n, args.batch)))
        all_writes = ("frame", "messages", "events", "recipients")
        write("writes", script(batches, all_writes))
        write("writes_unnest", script(batches, ("frame", "messages", "events",
                                                "recipients_unnest")))
        write("writes_cut", script(batches, all_writes, rtable="recipients_nostatus"))
        write("writes_nofold", script(batches, ("frame", "messages", "events")))
        write("frame", script(batches, ("frame",)))
        write("events", script(batches, ("events",)))
        write("messages", script(batches, ("messages",)))
        write("messages_returning", script(batches, ("messages_returning",)))
        write("recipients", script(batches, ("recipients",)))
        write("recipients_unnest", script(batches, ("recipients_unnest",)))
        write("recipients_nostatus", script(batches, ("recipients",), "recipients_nostatus"))
        write("recipients_ff70", script(batches, ("recipients",), "recipients_ff70"))
        psql_file(pg, os.path.join(benchutil.SOURCE, "bench", "ingest_fast.sql"))
        check_rules(pg, sb)
        chunks = [events[i:i + args.batch] for i in range(0, n, args.batch)]
        write("prototype", prototype_script(
            sb, "proto", chunks,
            known=lambda k, evs: (k * args.batch, list(dict.fromkeys(ids[e["tracking_id"]]
                                                                   for e in evs)))))
        ndjson = sb.path("events.ndjson")
        with open(ndjson, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in events)
        os.chmod(sb.root, 0o755)

        # name: (how to run it, SQL before, SQL after, what it must have stored)
        full = {"events": n, "messages": nmsg, "recipients": nrcpt, "head": n}
        configs = {
            "copy": ("copy", None, None, {"events": n}),
            "copy_batches": ("copy_batches", None, None, {"events": n}),
            "writes": ("writes", None, None, full),
            "writes_unnest": ("writes_unnest", None, None, full),
            "writes_cut": ("writes_cut", drop_fed, restore,
                           dict(full, recipients=0, recipients_nostatus=nrcpt)),
            "writes_nofold": ("writes_nofold", None, None, dict(full, recipients=0)),
            "writes_nofold_cut": ("writes_nofold", drop_fed, restore, dict(full, recipients=0)),
            "frame": ("frame", None, None, {"head": n}),
            "events": ("events", None, None, {"events": n}),
            "messages": ("messages", None, None, {"messages": nmsg}),
            "messages_returning": ("messages_returning", None, None, {"messages": nmsg}),
            "messages_5ix": ("messages", drop_fed, restore, {"messages": nmsg}),
            "messages_4ix": ("messages", drop_fed + "; " + drop_owner, restore,
                             {"messages": nmsg}),
            "recipients": ("recipients", None, None, {"recipients": nrcpt}),
            "recipients_unnest": ("recipients_unnest", None, None, {"recipients": nrcpt}),
            "recipients_nostatus": ("recipients_nostatus", None, None,
                                    {"recipients_nostatus": nrcpt}),
            "recipients_ff70": ("recipients_ff70", None, None, {"recipients_ff70": nrcpt}),
            "prototype": ("prototype", None, None, full),
            "prototype_cut": ("prototype", drop_fed, restore, full),
            "statusd": (lambda: run_statusd(pg, sd, ndjson, n), None, None,
                        {"events": n, "messages": nmsg, "head": n}),
        }
        names = list(configs)
        if args.only:
            names = ["copy"] + [x for x in args.only.split(",") if x != "copy"]

        def check(want):
            for table, count in (want or {}).items():
                got = int(pg.scalar("SELECT head FROM log_head") if table == "head"
                          else pg.scalar(f"SELECT count(*) FROM {table}"))
                assert got == count, f"{table}: {got} rows, not {count}"

        ingest.empty = lambda pg, db=None: None  # run() empties the tables first
        time.sleep(1)
        keep = {p for p in client_backends(pg) if not zombie(p)}  # statusd's connections

        def run(name):
            """One run on emptied tables: events/s and PostgreSQL CPU seconds."""
            how, before, after, want = configs[name]
            empty(pg)
            if before:
                pg.psql(before)
            t0 = settled_cpu(pg, keep)
            if callable(how):
                rate = how()  # bench/ingest.py's run_statusd(): it times itself
            else:
                start = time.monotonic()
                psql_file(pg, files[how])
                rate = n / (time.monotonic() - start)
            cpu = settled_cpu(pg, keep) - t0
            check(want)
            if after:
                pg.psql(after)
            return rate, cpu

        for name in names:  # warm up: each configuration once
            run(name)
        results = {name: [] for name in names}
        print(f"{n} events, {nmsg} messages, {nrcpt} recipients, batches of {args.batch}",
              flush=True)
        for r in range(args.rounds):
            for name in names:
                rate, cpu = run(name)
                results[name].append((rate, 1e6 * cpu / n))
                print(f"round {r + 1} {name}: {rate:,.0f} events/s, {1e6 * cpu / n:.2f} µs/event",
                      flush=True)
        if args.statements:
            pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            empty(pg)
            pg.psql("SELECT pg_stat_statements_reset()")
            psql_file(pg, files[configs[args.statements][0]])
            nb = len(batches)
            print(f"\n{args.statements}: mean time per call and calls per batch "
                  f"(pg_stat_statements, track = all; nested statements inside their callers)")
            for ms, calls, query in pg.psql(
                    "SELECT round(mean_exec_time::numeric, 3), calls, "
                    "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements "
                    f"WHERE calls >= {nb} ORDER BY total_exec_time DESC LIMIT 14"):
                print(f"  {ms:>8} ms  {int(calls) / nb:4.1f}  {query}")
            print()
        base = results["copy"]
        print()
        print("| configuration | events/s (range) | ratio to copy | PostgreSQL CPU µs/event "
              "(range) | ratio to copy |")
        print("|---|---|---|---|---|")
        for name in names:
            rs = results[name]
            rates, cpus = [x[0] for x in rs], [x[1] for x in rs]
            rr = statistics.median(x[0] / b[0] for x, b in zip(rs, base))
            cr = statistics.median(x[1] / b[1] for x, b in zip(rs, base))
            print(f"| {name} | {statistics.median(rates):,.0f} ({min(rates):,.0f}–"
                  f"{max(rates):,.0f}) | {rr:.2f} | {statistics.median(cpus):.2f} "
                  f"({min(cpus):.2f}–{max(cpus):.2f}) | {cr:.2f} |")


if __name__ == "__main__":
    main()
