"""Reconciliation for the chaos suite: what should have been stored, against what was.

The ground truth comes from the mail system itself, never from msgstatus:
- what was submitted: the sender's records (Message-ID, queue id from the 250 reply);
- what arrived: the copies in the local recipient's mailbox (IMAP) and in smtp-sink's
  dump folder, each with its Msgstatus-Id header if the milter tagged it;
- what Postfix did: every `to=<...> ... status=...` line of the maillog, rotated and
  compressed files included;
- what was read: the \\Seen flags of the mailbox copies.

From these follow the events each message must have, counted per (recipient, type,
source): one `queued` per recipient from the milter; one Postfix event per delivery line
(sent to LMTP: delivered, sent over SMTP: relayed, deferred, bounced); one `delivered` per
mailbox copy and one `read` per seen copy from the Dovecot plugin. Fewer stored is
missing, more is duplicated.
"""
import glob
import gzip
import imaplib
import re

from traffic import LOCAL, REMOTE

QUEUED, DEFERRED, RELAYED, DELIVERED, BOUNCED, READ = 1, 2, 3, 4, 5, 7
SOURCE_MILTER, SOURCE_POSTFIX, SOURCE_DOVECOT = "milter", "postfix", "dovecot"

_DELIVERY = re.compile(r"postfix/\w+\[\d+\]: ([0-9A-Za-z]+): to=<([^>]*)>,.* status=(\w+)")
_HEADER = re.compile(rb"^(Message-ID|Msgstatus-Id):[ \t]*(\S+)", re.I | re.M)


def _headers(raw):
    """{message-id: ..., msgstatus-id: ...} of a message's header block (bytes)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    out = {}
    for name, value in _HEADER.findall(head):
        out.setdefault(name.decode().lower(), value.decode(errors="replace"))
    return out


def mailbox_copies(dovecot, user):
    """[(message-id, tracking id or None, seen)] for every message in user's INBOX."""
    c = dovecot.imap(user)
    try:
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1:*",
                          "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID MSGSTATUS-ID)])")
        out = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, raw = item
            h = _headers(raw)
            out.append((h.get("message-id"), h.get("msgstatus-id"), b"\\Seen" in meta))
        return out
    except imaplib.IMAP4.error:
        return []
    finally:
        c.logout()


def sink_copies(sink):
    """[(message-id, tracking id or None)] for every message smtp-sink received."""
    out = []
    for raw in sink.messages():
        # smtp-sink's own X-* and Received: lines come first, then the message's header
        h = _headers(raw)
        if "message-id" in h:
            out.append((h["message-id"], h.get("msgstatus-id")))
    return out


def maillog_results(postfix):
    """{queue id: [(recipient, status), ...]} from all of the maillog's files."""
    results = {}
    for path in sorted(glob.glob(postfix.maillog_path + "*")):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", errors="replace") as f:
            for line in f:
                m = _DELIVERY.search(line)
                if m:
                    results.setdefault(m.group(1), []).append((m.group(2).lower(), m.group(3)))
    return results


def _postfix_type(recipient, status):
    if status == "sent":
        return DELIVERED if recipient == LOCAL else RELAYED
    return {"deferred": DEFERRED, "bounced": BOUNCED}.get(status)


class Store:
    """What PostgreSQL holds, read once."""

    def __init__(self, pg):
        self.by_tid, self.by_mid = {}, {}
        for mid_, tid, msgid, qid in pg.psql(
                "SELECT id, coalesce(tracking_id, ''), coalesce(message_id, ''), "
                "coalesce(queue_id, '') FROM messages"):
            row = {"id": int(mid_), "tid": tid, "queue_id": qid}
            if tid:
                self.by_tid[tid] = row
            if msgid:
                self.by_mid.setdefault(msgid, row)
        self.events = {}
        for msg, rcpt, typ, source, t in pg.psql(
                "SELECT message, recipient, type, source, "
                "extract(epoch FROM event_time) FROM events WHERE message IS NOT NULL"):
            self.events.setdefault(int(msg), []).append((rcpt, int(typ), source, float(t)))
        self.status = {(int(m), r): int(s) for m, r, s in
                       pg.psql("SELECT message, recipient, status FROM recipients")}
        n, distinct, lo, hi = pg.psql(
            "SELECT count(*), count(DISTINCT log_offset), coalesce(min(log_offset), 0), "
            "coalesce(max(log_offset), -1) FROM events WHERE log_offset IS NOT NULL")[0]
        self.log = {"events": int(n), "distinct": int(distinct), "first": int(lo),
                    "last": int(hi)}
        self.unjoined = int(pg.scalar("SELECT count(*) FROM events WHERE message IS NULL"))
        self.pg = pg

    def log_offsets_of(self, owner):
        """The log offsets of the events of owner's messages, in order: what owner's feed
        must deliver."""
        return [int(r[0]) for r in self.pg.psql(
            "SELECT e.log_offset FROM events e JOIN messages m ON m.id = e.message "
            f"WHERE m.owner = '{owner}' AND e.log_offset IS NOT NULL ORDER BY e.log_offset")]


class Tally:
    """Counters for one phase (or the total)."""

    FIELDS = ("sent", "accepted", "rejected", "delivered", "lost", "tracked", "untracked",
              "recorded_untagged", "tagged_unrecorded", "expected", "stored", "missing",
              "duplicated", "out_of_order", "wrong_status")

    def __init__(self):
        for f in self.FIELDS:
            setattr(self, f, 0)
        self.problems = []

    def add(self, other):
        for f in self.FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.problems.extend(other.problems)


def reconcile(sent, mailbox, sink, maillog, store):
    """{phase: Tally} for the sender's records against the ground truth and the store."""
    local = {}
    for mid, tid, seen in mailbox:
        local.setdefault(mid, []).append((tid, seen))
    remote = {}
    for mid, tid in sink:
        remote.setdefault(mid, []).append(tid)
    phases = {}
    for rec in sent:
        t = phases.setdefault(rec.phase, Tally())
        t.sent += 1
        if rec.qid is None:
            t.rejected += 1
            t.problems.append(f"{rec.mid}: submission failed: {rec.error}")
            continue
        t.accepted += 1
        copies, rcopies = local.get(rec.mid, []), remote.get(rec.mid, [])
        if copies and rcopies:
            t.delivered += 1
        else:
            t.lost += 1
            t.problems.append(f"{rec.mid} ({rec.qid}): not delivered "
                              f"(mailbox copies {len(copies)}, remote copies {len(rcopies)})")
            continue
        tids = {tid for tid, _ in copies} | set(rcopies)
        tid = next(iter(tids - {None}), None)
        if len(tids - {None}) > 1 or (tid and None in tids):
            t.problems.append(f"{rec.mid}: copies disagree on the tracking id: {sorted(map(str, tids))}")
        row = store.by_tid.get(tid) if tid else store.by_mid.get(rec.mid)
        recorded = row is not None and row["queue_id"] == rec.qid
        if tid and not recorded:
            t.tagged_unrecorded += 1
            t.problems.append(f"{rec.mid}: tagged {tid} but the milter's record is missing")
        elif not tid and not recorded:
            t.untracked += 1
            continue
        elif not tid:
            t.recorded_untagged += 1
        else:
            t.tracked += 1
        want = {(LOCAL, QUEUED, SOURCE_MILTER): 1, (REMOTE, QUEUED, SOURCE_MILTER): 1}
        for rcpt, status in maillog.get(rec.qid, []):
            typ = _postfix_type(rcpt, status)
            if typ is not None:
                key = (rcpt, typ, SOURCE_POSTFIX)
                want[key] = want.get(key, 0) + 1
        if tid:
            want[(LOCAL, DELIVERED, SOURCE_DOVECOT)] = len(copies)
            want[(LOCAL, READ, SOURCE_DOVECOT)] = sum(1 for _, seen in copies if seen)
        got = {}
        times = {}
        for rcpt, typ, source, when in store.events.get(row["id"], []) if row else []:
            got[(rcpt, typ, source)] = got.get((rcpt, typ, source), 0) + 1
            times.setdefault((rcpt, typ), []).append(when)
        for key in set(want) | set(got):
            w, g = want.get(key, 0), got.get(key, 0)
            t.expected += w
            t.stored += min(w, g)
            if g < w:
                t.missing += w - g
                t.problems.append(f"{rec.mid} ({tid or rec.qid}): {key}: {g} stored, want {w}")
            elif g > w:
                t.duplicated += g - w
                t.problems.append(f"{rec.mid} ({tid or rec.qid}): {key}: {g} stored, want {w}")
        t.out_of_order += _order_faults(rec, times, t.problems)
        if row is not None:
            t.wrong_status += _status_faults(rec, row, store, copies, t.problems)
    return phases


def _order_faults(rec, times, problems):
    """Count causal order violations: queued before the delivery result (Postfix logs whole
    seconds, hence the second of slack, and its seconds come from time(), which glibc reads
    from the coarse clock, a kernel tick behind the milter's: 50 ms more), delivered before
    read."""
    faults = 0
    for rcpt, result in ((LOCAL, DELIVERED), (REMOTE, RELAYED)):
        q = times.get((rcpt, QUEUED))
        d = times.get((rcpt, result))
        if q and d and min(d) < min(q) - 1.05:
            faults += 1
            problems.append(f"{rec.mid}: {rcpt} {result} at {min(d)} before queued {min(q)}")
    d, r = times.get((LOCAL, DELIVERED)), times.get((LOCAL, READ))
    if d and r and min(r) < min(d) - 1.0:
        faults += 1
        problems.append(f"{rec.mid}: read at {min(r)} before delivered {min(d)}")
    return faults


def _status_faults(rec, row, store, copies, problems):
    """The derived status: read where a copy was seen (delivered where not), relayed for
    the remote recipient."""
    tagged = any(tid for tid, _ in copies)
    want_local = (READ if any(seen for _, seen in copies) else DELIVERED) if tagged else DELIVERED
    faults = 0
    for rcpt, want in ((LOCAL, want_local), (REMOTE, RELAYED)):
        got = store.status.get((row["id"], rcpt))
        if got != want:
            faults += 1
            problems.append(f"{rec.mid}: {rcpt} status {got}, want {want}")
    return faults


def milter_unrecorded(milter_log):
    """Messages the milter said it could not record (and so did not tag)."""
    return len(re.findall(r"events NOT recorded, message not tagged", milter_log))


def plugin_lost(dovecot_log):
    """Events the Dovecot plugin said it lost."""
    return sum(int(n) for n in re.findall(r"msgstatus: (\d+) events lost", dovecot_log))
