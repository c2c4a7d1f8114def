// msgstatus.js - the browser client for statusd: the status of the messages a user sent,
// kept live over statusd's WebSocket feed (or Server-Sent Events where WebSocket does not
// get through), resumed from the last offset after every break.
//
// A plain ES module: no build step, no dependencies. Types are in msgstatus.d.ts; the
// protocol is docs/api.md. Usage:
//
//   import { MsgStatusClient } from "./msgstatus.js";
//   const client = new MsgStatusClient({ url: "https://mail.example.org:8025",
//                                        token: () => fetchTokenFromMyBackend() });
//   client.addEventListener("change", (e) => render(e.detail.message));
//   await client.start();          // feed open, then the newest messages loaded
//
// A recipient's status is folded the way statusd folds it (lib/status.h): the furthest
// delivery step, and the latest of read / unread / deleted, whichever order events arrive
// in, so an event seen twice (the list and the feed overlap) changes nothing. Whether a
// message is deleted depends on how many copies the recipient has left, which the feed's
// copied and expunged events change but do not carry: after one, the client asks statusd
// for the message's status again.

/** Every status a recipient can have, in the order a list shows progress. */
export const STATUSES = Object.freeze([
  "queued", "deferred", "relayed", "delivered", "read", "unread", "deleted", "bounced", "expired",
]);

/** The chat-style mark of each status (and of a message's "partial" summary). */
export const MARKS = Object.freeze({
  queued: "◷", deferred: "◷", relayed: "✓", delivered: "✓✓", read: "✓✓", unread: "✓✓",
  deleted: "✓✓", bounced: "✕", expired: "✕", partial: "✓✕",
});

// delivery axis: queued < deferred < bounced = expired < relayed < delivered
const DELIVERY_RANK = { queued: 1, deferred: 2, bounced: 3, expired: 3, relayed: 4, delivered: 5 };
// reading axis: the latest wins; in the same millisecond deleted > unread > read
const READING_TIE = { read: 1, unread: 2, deleted: 3 };
// how far a status got, for a message's summary (its least advanced recipient)
const PROGRESS = {
  queued: 1, deferred: 1, relayed: 2, delivered: 3, unread: 4, deleted: 4, read: 4,
  bounced: 0, expired: 0,
};

const FAILED = new Set(["bounced", "expired"]);

function ms(timestamp) {
  const t = Date.parse(timestamp);
  return Number.isFinite(t) ? t : 0;
}

// a bounce that a verified DSN reports (source "dsn") ranks with delivered, as in
// lib/status.h: the far side's failure after our relayed shows bounced
function keyOf(status, t, fromDsn) {
  if (status === "bounced" && fromDsn) return [DELIVERY_RANK.delivered, t, 0];
  if (status in DELIVERY_RANK) return [DELIVERY_RANK[status], t, 0];
  if (status in READING_TIE) return [0, t, READING_TIE[status]];
  return null;
}

function greater(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return false;
}

// the steps of a recipient's journey, for ordering a timeline
const PHASE = {
  queued: 0, deferred: 1, relayed: 2, delivered: 2, bounced: 2, expired: 2, read: 3, unread: 3,
  deleted: 3, copied: 3, expunged: 3,
};

// events about the recipient's copies: they change a status only statusd can count
const MAILBOX_EVENTS = new Set(["copied", "expunged"]);

/**
 * Events in the order they happened. Times come from different clocks and precisions
 * (Postfix's log has whole seconds, the milter and Dovecot milliseconds), so a delivery can
 * carry a time just before its own queueing: for each recipient a step is placed no
 * earlier than the steps that must have come before it.
 */
export function timelineOrder(events) {
  const byPhase = new Map(); // recipient -> latest time seen per phase
  const eff = new Map();
  const sorted = [...events].sort((a, b) => (PHASE[a.status] ?? 9) - (PHASE[b.status] ?? 9) ||
    ms(a.timestamp) - ms(b.timestamp) || (a.offset ?? 0) - (b.offset ?? 0));
  for (const ev of sorted) {
    const phase = PHASE[ev.status] ?? 9;
    const seen = byPhase.get(ev.recipient) || [];
    let t = ms(ev.timestamp);
    for (let p = 0; p < phase; p++) if (seen[p] !== undefined && seen[p] > t) t = seen[p];
    seen[phase] = Math.max(seen[phase] ?? t, t);
    byPhase.set(ev.recipient, seen);
    eff.set(ev, t);
  }
  return sorted.sort((a, b) => eff.get(a) - eff.get(b) || (PHASE[a.status] ?? 9) - (PHASE[b.status] ?? 9) ||
    (a.offset ?? 0) - (b.offset ?? 0));
}

/** One recipient of a tracked message. */
export class Recipient {
  constructor(address) {
    /** @type {string} */ this.recipient = address;
    /** @type {string|null} */ this.status = null;
    /** @type {string|null} RFC 3339 time of the event that set the status */
    this.timestamp = null;
    /** @type {string|null} */ this.smtpReply = null;
    /** @type {object} */ this.details = {};
    /** @type {boolean} a read was ever seen */ this.displayed = false;
    /** @type {string[]} ids of the DSNs about it (GET /api/v1/reports/{id}), oldest first */
    this.dsnReportIds = [];
    /** @type {string[]} ids of the MDNs about it */
    this.mdnReportIds = [];
    this._d = null; // delivery key [rank, ms, 0]
    this._r = null; // reading key [0, ms, tie]
    this._dinfo = null; // what the delivery step said: {status, timestamp, details, smtpReply}
    this._rinfo = null; // what the reading step said
  }

  /** Fold one event in; true if what is shown changed. */
  _apply(status, timestamp, details, smtpReply, source) {
    // feeds and status documents carry no source: a DSN's event has details.report_id
    const fromDsn = source === "dsn" || (!source && !!details && !!details.report_id);
    const key = keyOf(status, ms(timestamp), fromDsn);
    if (key === null) return false;
    const info = { status, timestamp, details: details || {}, smtpReply: smtpReply ?? null };
    if (key[0] > 0) {
      if (this._d !== null && !greater(key, this._d)) return false;
      this._d = key;
      this._dinfo = info;
    } else {
      if (status === "read") this.displayed = true;
      if (this._r !== null && !greater(key, this._r)) return false;
      this._r = key;
      this._rinfo = info;
    }
    const shown = this._r !== null ? this._rinfo : this._dinfo;
    const before = this.status + "\0" + this.timestamp;
    this.status = shown.status;
    this.timestamp = shown.timestamp;
    // the delivery attempt's reply and details stay visible once the mail was read
    const d = this._dinfo || shown;
    this.smtpReply = d.smtpReply ?? d.details.smtp_reply ?? null;
    this.details = d.details;
    return before !== this.status + "\0" + this.timestamp;
  }

  /** JMAP deliveryStatus.delivered: queued, yes, no or unknown. */
  get delivered() {
    const s = this._dinfo ? this._dinfo.status : this._r ? "delivered" : null;
    if (s === "delivered") return "yes";
    if (s === "bounced" || s === "expired") return "no";
    if (s === "relayed" || s === null) return "unknown";
    return "queued";
  }
}

/** One message the user sent, with its recipients and the events seen for it. */
export class Message {
  constructor(trackingId, messageId) {
    /** @type {string|null} */ this.trackingId = trackingId;
    /** @type {string|null} */ this.messageId = messageId;
    /** @type {string|null} */ this.sender = null;
    /** @type {string|null} */ this.queueId = null;
    /** @type {number|null} */ this.size = null;
    /** @type {string|null} */ this.queuedAt = null;
    /** @type {Map<string, Recipient>} */ this.recipients = new Map();
    /** @type {Array<object>} the timeline: events by offset (see timeline()) */
    this.events = [];
    /** @type {Array<object>} the DSN and MDN entries kept about it, verified or not */
    this.reports = [];
    this._offsets = new Set();
  }

  /** The id to ask statusd about it with. */
  get id() {
    return this.trackingId || this.messageId;
  }

  /**
   * The message as a whole, as a list shows it: the status of its least advanced
   * recipient ("bounced" if any failed), and counts per status.
   */
  get summary() {
    const counts = {};
    let least = null;
    let failed = 0;
    for (const r of this.recipients.values()) {
      if (r.status === null) continue;
      counts[r.status] = (counts[r.status] || 0) + 1;
      if (FAILED.has(r.status)) failed++;
      else if (least === null || PROGRESS[r.status] < PROGRESS[least]) least = r.status;
      else if (PROGRESS[r.status] === PROGRESS[least] && r.status === "deferred") least = r.status;
    }
    const status = failed > 0 ? (least === null ? "bounced" : "partial") : least || "queued";
    return { status, counts, failed, total: this.recipients.size };
  }

  _recipient(address) {
    let r = this.recipients.get(address);
    if (!r) {
      r = new Recipient(address);
      this.recipients.set(address, r);
    }
    return r;
  }

  _addEvent(ev) {
    if (ev.offset != null) {
      if (this._offsets.has(ev.offset)) return false;
      this._offsets.add(ev.offset);
    }
    this.events.push(ev);
    this.events = timelineOrder(this.events);
    return true;
  }
}

class ProblemError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = "ProblemError";
    this.status = status;
    this.problem = problem;
  }
}
export { ProblemError };

/**
 * The client. Events (EventTarget; the payload is in event.detail):
 *  - "state":  {state, attempt, retryIn, transport, reason}: connecting, live, reconnecting,
 *              unauthorized, stopped
 *  - "event":  {event, message}: every feed event the user may see, in offset order
 *  - "change": {message, recipient}: a message's shown status changed (recipient may be null)
 *  - "reset":  {}: the server's log was reset; everything known was dropped and reloaded
 */
export class MsgStatusClient extends EventTarget {
  constructor(options = {}) {
    super();
    const base = options.url || (typeof location !== "undefined" ? location.origin : "");
    this.url = base.replace(/\/+$/, "");
    this._token = options.token;
    this.transport = options.transport || "auto"; // auto | websocket | sse
    this.minDelay = options.minDelay ?? 500;
    this.maxDelay = options.maxDelay ?? 30000;
    this.pingInterval = options.pingInterval ?? 25000;
    this.connectTimeout = options.connectTimeout ?? 10000;
    /** @type {Map<string, Message>} by tracking id (or Message-ID) */
    this.messages = new Map();
    this._byMessageId = new Map();
    this.offset = options.offset ?? null;
    this.epoch = options.epoch ?? null;
    this.head = null;
    this.state = "stopped";
    this._attempt = 0;
    this._conn = null;
    this._running = false;
    this._wsWorked = false;
    this._wsFailures = 0;
    this._hello = null;
  }

  async _tokenValue(fresh) {
    const t = this._token;
    if (typeof t === "function") return await t(fresh);
    return t;
  }

  _setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, attempt: this._attempt, ...extra } }));
  }

  // --- REST -----------------------------------------------------------------------------

  async _request(method, path, body) {
    for (let tries = 0; ; tries++) {
      const token = await this._tokenValue(tries > 0);
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const res = await fetch(this.url + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status === 401 && tries === 0 && typeof this._token === "function") continue;
      const text = await res.text();
      let doc = null;
      try {
        doc = text ? JSON.parse(text) : null;
      } catch (_) {
        doc = null;
      }
      if (!res.ok) throw new ProblemError(res.status, doc);
      return doc;
    }
  }

  /** GET /api/v1/messages: one page of the user's messages, merged into this.messages. */
  async load(filter = {}) {
    const q = new URLSearchParams();
    for (const k of ["status", "recipient", "since", "until", "limit", "cursor"])
      if (filter[k] != null && filter[k] !== "") q.set(k, String(filter[k]));
    const qs = q.toString();
    const doc = await this._request("GET", "/api/v1/messages" + (qs ? "?" + qs : ""));
    const list = (doc.messages || []).map((m) => this._mergeStatus(m));
    return { messages: list, nextCursor: doc.next_cursor ?? null };
  }

  /** GET …/status: one message, merged. */
  async fetchStatus(id) {
    return this._mergeStatus(await this._request("GET", `/api/v1/messages/${encodeURIComponent(id)}/status`));
  }

  /** GET …/timeline: one message with every event it had, merged; every page (next_cursor). */
  async timeline(id) {
    const path = `/api/v1/messages/${encodeURIComponent(id)}/timeline`;
    let doc = await this._request("GET", path);
    const m = this._mergeStatus(doc);
    for (;;) {
      for (const ev of doc.events || []) this._fold(m, ev, false);
      if (doc.next_cursor == null) break;
      doc = await this._request("GET", `${path}?cursor=${encodeURIComponent(doc.next_cursor)}`);
    }
    this._changed(m, null);
    return m;
  }

  /** GET /api/v1/reports/{id}: a DSN or MDN about one of the user's messages, as it came. */
  report(id) {
    return this._request("GET", `/api/v1/reports/${encodeURIComponent(id)}`);
  }

  /** POST …/receipt: the user, a recipient, says they read it. */
  receipt(id) {
    return this._request("POST", `/api/v1/messages/${encodeURIComponent(id)}/receipt`, {});
  }

  preferences() {
    return this._request("GET", "/api/v1/preferences");
  }

  /** prefs: {read_receipts?: boolean, presence?: boolean, mdn?: "never" | "always" | null} */
  setPreferences(prefs) {
    return this._request("PUT", "/api/v1/preferences", prefs);
  }

  presence(user) {
    return this._request("GET", `/api/v1/presence/${encodeURIComponent(user)}`);
  }

  /** state: "online", "offline" or "typing" (then to: the recipient being written to). */
  setPresence(state, to) {
    return this._request("POST", "/api/v1/presence", to ? { state, to } : { state });
  }

  /** A message known to the client, by tracking id or Message-ID. */
  get(id) {
    return this.messages.get(id) || this._byMessageId.get(id) || null;
  }

  _message(trackingId, messageId) {
    let m = (trackingId && this.messages.get(trackingId)) || (messageId && this._byMessageId.get(messageId));
    if (!m) {
      m = new Message(trackingId || null, messageId || null);
      this.messages.set(trackingId || messageId, m);
    }
    if (trackingId && !m.trackingId) m.trackingId = trackingId;
    if (messageId) {
      m.messageId = messageId;
      this._byMessageId.set(messageId, m);
    }
    return m;
  }

  _mergeStatus(doc) {
    const m = this._message(doc.tracking_id, doc.message_id);
    m.sender = doc.sender ?? m.sender;
    m.queueId = doc.queue_id ?? m.queueId;
    m.size = doc.size ?? m.size;
    m.queuedAt = doc.queued_at ?? m.queuedAt;
    for (const r of doc.recipients || []) {
      const rc = m._recipient(r.recipient);
      if (r.orig_recipient) rc.origRecipient = r.orig_recipient;
      if (r.status) rc._apply(r.status, r.timestamp, r.details, r.smtp_reply);
      if (r.displayed === "yes") rc.displayed = true;
      if (r.dsn_report_ids) rc.dsnReportIds = r.dsn_report_ids;
      if (r.mdn_report_ids) rc.mdnReportIds = r.mdn_report_ids;
    }
    if (doc.reports) m.reports = doc.reports;
    return m;
  }

  /** The status of a message from statusd, replacing what was folded for its recipients. */
  async _refresh(m) {
    const doc = await this._request("GET", `/api/v1/messages/${encodeURIComponent(m.id)}/status`);
    for (const r of doc.recipients || []) m.recipients.delete(r.recipient);
    this._mergeStatus(doc);
    this._changed(m, null);
  }

  _fold(m, ev, notify) {
    const isNew = m._addEvent(ev);
    if (!ev.recipient || !ev.status) return false;
    if (MAILBOX_EVENTS.has(ev.status)) {
      if (notify && isNew && m.id) this._refresh(m).catch(() => {});
      return false;
    }
    const rc = m._recipient(ev.recipient);
    const changed = rc._apply(ev.status, ev.timestamp, ev.details, null, ev.source || null);
    if (notify && (changed || isNew)) this._changed(m, rc);
    return changed;
  }

  _changed(message, recipient) {
    this.dispatchEvent(new CustomEvent("change", { detail: { message, recipient } }));
  }

  // --- the feed -------------------------------------------------------------------------

  /**
   * Open the feed and keep it open. Resolves once the first hello arrived (the client is
   * live), or rejects if the token is refused.
   */
  start() {
    if (this._running) return this._hello || Promise.resolve();
    this._running = true;
    this._hello = new Promise((resolve, reject) => {
      this._helloResolve = resolve;
      this._helloReject = reject;
    });
    this._loop();
    return this._hello;
  }

  /** Close the feed; start() opens it again from where it stopped. */
  stop() {
    this._running = false;
    if (this._conn) this._conn.close();
    this._conn = null;
    if (this._wake) this._wake();
    this._setState("stopped");
  }

  _useSse() {
    if (this.transport === "sse" || typeof WebSocket === "undefined") return true;
    if (this.transport === "websocket") return false;
    // auto: WebSocket, unless it never opened in two tries and SSE exists
    return !this._wsWorked && this._wsFailures >= 2 && typeof EventSource !== "undefined";
  }

  _feedUrl(sse, token) {
    const u = new URL(this.url + (sse ? "/api/v1/messages/events" : "/api/v1/messages/stream"),
      typeof location !== "undefined" ? location.href : undefined);
    if (!sse) u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    if (this.offset !== null && this.epoch !== null) {
      u.searchParams.set("offset", String(this.offset));
      u.searchParams.set("epoch", String(this.epoch));
    }
    if (token) u.searchParams.set("access_token", token);
    return u.toString();
  }

  async _loop() {
    let fresh = false;
    while (this._running) {
      const sse = this._useSse();
      this._setState(this._attempt === 0 ? "connecting" : "reconnecting",
        { transport: sse ? "sse" : "websocket" });
      let token;
      try {
        token = await this._tokenValue(fresh);
      } catch (e) {
        token = null;
      }
      if (!this._running) break;
      const outcome = await this._connect(sse, token);
      if (!this._running) break;
      if (outcome.unauthorized) {
        if (typeof this._token === "function" && !fresh) {
          fresh = true; // one more try with a new token
          continue;
        }
        this._running = false;
        this._setState("unauthorized", { reason: outcome.reason });
        if (this._helloReject) this._helloReject(new ProblemError(401, { detail: outcome.reason }));
        this._helloReject = this._helloResolve = null;
        break;
      }
      fresh = false;
      if (outcome.opened) this._attempt = 0;
      if (!sse && !outcome.opened) this._wsFailures++;
      this._attempt++;
      const base = Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(this._attempt - 1, 16));
      const delay = outcome.opened && this._attempt === 1 ? this.minDelay * Math.random()
        : base / 2 + (Math.random() * base) / 2;
      this._setState("reconnecting", { retryIn: Math.round(delay), reason: outcome.reason });
      await new Promise((resolve) => {
        this._wake = resolve;
        setTimeout(resolve, delay);
      });
      this._wake = null;
    }
  }

  /** One connection; resolves when it ends with {opened, unauthorized, reason}. */
  _connect(sse, token) {
    return new Promise((resolve) => {
      let opened = false;
      let done = false;
      const finish = (unauthorized, reason) => {
        if (done) return;
        done = true;
        if (this._conn === conn) this._conn = null;
        clearInterval(pinger);
        clearTimeout(helloTimer);
        try {
          conn.close();
        } catch (_) { /* already closed */ }
        resolve({ opened, unauthorized, reason });
      };
      const onDoc = (doc) => {
        if (doc.type === "hello") {
          opened = true;
          if (!sse) this._wsWorked = true;
          this._onHello(doc);
        } else if (doc.type === "event") {
          this._onEvent(doc);
        }
      };
      let conn;
      let pinger = null;
      // a connection that neither opens nor fails (a proxy holding it) counts as failed
      const helloTimer = setTimeout(() => {
        if (!opened) finish(false, "no answer from the server");
      }, this.connectTimeout);
      if (sse) {
        conn = new EventSource(this._feedUrl(true, token));
        conn.addEventListener("hello", (e) => onDoc(JSON.parse(e.data)));
        conn.addEventListener("status", (e) => onDoc(JSON.parse(e.data)));
        conn.addEventListener("error", (e) => {
          // a server's "event: error" record carries a reason; a transport error does not
          let reason = "connection lost";
          if (e.data) {
            try {
              reason = JSON.parse(e.data).detail || reason;
            } catch (_) { /* keep the generic reason */ }
          }
          // EventSource hides the HTTP status: a stream refused before it opened is most
          // likely the token; ask the REST API to tell
          if (!opened) {
            this._request("GET", "/api/v1/preferences").then(
              () => finish(false, reason),
              (err) => finish(err.status === 401, err.message));
          } else finish(false, reason);
        });
      } else {
        try {
          conn = new WebSocket(this._feedUrl(false, token), "msgstatus.v1");
        } catch (e) {
          clearTimeout(helloTimer);
          resolve({ opened: false, unauthorized: false, reason: String(e) });
          return;
        }
        conn.onmessage = (e) => {
          try {
            onDoc(JSON.parse(e.data));
          } catch (_) { /* not ours: ignore */ }
        };
        conn.onclose = (e) => finish(e.code === 4401, e.reason || `closed (${e.code})`);
        conn.onerror = () => { /* onclose follows */ };
        pinger = setInterval(() => {
          if (conn.readyState === 1) conn.send('{"type":"ping"}');
        }, this.pingInterval);
      }
      this._conn = conn;
    });
  }

  _onHello(h) {
    const reset = h.reset === true || (this.epoch !== null && h.epoch !== this.epoch);
    this.head = h.head;
    this.epoch = h.epoch;
    if (reset) {
      this.offset = null;
      this.messages.clear();
      this._byMessageId.clear();
      this.dispatchEvent(new CustomEvent("reset", { detail: {} }));
    }
    if (this.offset === null) this.offset = h.from ?? h.head;
    this._setState("live", { head: h.head });
    if (this._helloResolve) this._helloResolve();
    this._helloResolve = this._helloReject = null;
  }

  _onEvent(ev) {
    if (typeof ev.offset === "number") {
      if (this.offset !== null && ev.offset <= this.offset) return; // seen already
      this.offset = ev.offset;
    }
    const m = this._message(ev.tracking_id, ev.message_id);
    this._fold(m, ev, true);
    this.dispatchEvent(new CustomEvent("event", { detail: { event: ev, message: m } }));
  }
}

export default MsgStatusClient;
