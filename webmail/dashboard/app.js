// The msgstatus dashboard: the signed-in user's sent mail, live. Served by statusd at "/";
// everything it shows comes from the API through msgstatus.js, with the user's own token.
// Text from the mail system (addresses, SMTP replies) is untrusted: it only ever goes into
// the page as text nodes, never as HTML.
import { MARKS, MsgStatusClient } from "./msgstatus.js";

const LABELS = {
  queued: "Queued",
  deferred: "Deferred",
  relayed: "Relayed",
  delivered: "Delivered",
  read: "Read",
  unread: "Marked unread",
  deleted: "Deleted",
  copied: "Copied to another folder",
  expunged: "A copy expunged",
  bounced: "Bounced",
  expired: "Expired",
  partial: "Some failed",
};
// what each mark means, for screen readers and tooltips
const MEANING = {
  queued: "waiting in the outgoing queue",
  deferred: "delayed: the receiving server asked to try again later",
  relayed: "handed to another mail server, which reports nothing further",
  delivered: "in the recipient's mailbox",
  read: "opened by the recipient",
  unread: "opened, then marked unread",
  deleted: "deleted by the recipient: no copy left in any of their folders",
  copied: "the recipient copied or moved it to another folder",
  expunged: "one of the recipient's copies was expunged",
  bounced: "refused: it will not be delivered",
  expired: "not delivered: the server stopped trying",
  partial: "some recipients got it, some did not",
};
const TOKEN_KEY = "msgstatus.token";

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function mark(status) {
  return h("span", { class: `mark s-${status}`, title: MEANING[status] || status, "aria-hidden": "true" },
    MARKS[status] || "?");
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

function duration(ms) {
  if (ms == null || ms < 0) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${Math.round(ms / 60000)} min`;
  if (ms < 86400000) return `${(ms / 3600000).toFixed(1)} h`;
  return `${(ms / 86400000).toFixed(1)} d`;
}

// --- state ------------------------------------------------------------------------------

let client = null;
let nextCursor = null;
const open = new Set(); // ids of messages shown expanded
let renderQueued = false;

function tokenFromLocation() {
  // a sign-in link: /#token=... (a fragment never reaches a server log)
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
}

function saveToken(token, remember) {
  sessionStorage.setItem(TOKEN_KEY, token);
  if (remember) localStorage.setItem(TOKEN_KEY, token);
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
}

// --- connection indicator ---------------------------------------------------------------

function showState(d) {
  const el = $("conn");
  el.dataset.state = d.state;
  if (d.transport) el.dataset.transport = d.transport;
  let text = "Not connected";
  if (d.state === "live") text = "Live";
  else if (d.state === "connecting") text = "Connecting…";
  else if (d.state === "reconnecting")
    text = d.retryIn != null ? `Connection lost — reconnecting in ${Math.max(1, Math.round(d.retryIn / 1000))} s`
      : "Reconnecting…";
  else if (d.state === "unauthorized") text = "Signed out: the token was refused";
  $("conn-text").textContent = text;
}

// --- rendering --------------------------------------------------------------------------

function summaryText(m) {
  const s = m.summary;
  const parts = [];
  for (const [status, n] of Object.entries(s.counts)) parts.push(`${n} ${LABELS[status].toLowerCase()}`);
  return parts.join(", ");
}

function matches(m, text, filter) {
  if (text) {
    const hay = [m.messageId || "", m.trackingId || "", ...m.recipients.keys()].join(" ").toLowerCase();
    if (!hay.includes(text)) return false;
  }
  if (!filter) return true;
  const st = m.summary.status;
  if (filter === "pending") return st === "queued" || st === "deferred" || st === "relayed";
  if (filter === "delivered") return st === "delivered";
  if (filter === "read") return st === "read" || st === "unread" || st === "deleted";
  if (filter === "failed") return m.summary.failed > 0;
  return true;
}

// The site that reported a status, when another msgstatus site did (docs/federation.md).
function reporter(details) {
  return details && details.reporter ? h("span", { class: "reporter muted" }, ` reported by ${details.reporter}`) : null;
}

function recipientRow(r, queuedAt) {
  const q = queuedAt ? Date.parse(queuedAt) : NaN;
  const t = r.timestamp ? Date.parse(r.timestamp) : NaN;
  const took = Number.isFinite(q) && Number.isFinite(t) ? duration(t - q) : "";
  const reason = r.status === "deferred" || r.status === "bounced" || r.status === "expired"
    ? r.smtpReply ?? (r.details && r.details.postfix_reply) ?? null : null;
  return h("li", { class: `rcpt s-${r.status}`, "data-recipient": r.recipient, "data-status": r.status },
    mark(r.status),
    h("span", { class: "addr" }, r.recipient),
    h("span", { class: "state" }, LABELS[r.status] || r.status,
      h("span", { class: "sr" }, `: ${MEANING[r.status] || ""}`)),
    h("span", { class: "time muted" }, r.timestamp ? when(r.timestamp) : "", took ? ` (after ${took})` : ""),
    reporter(r.details),
    reason ? h("span", { class: "reply" }, reason) : null);
}

function timeline(m) {
  if (!m.events.length) return h("p", { class: "muted" }, m._loading ? "Loading the timeline…" : "No events yet.");
  const q = m.queuedAt ? Date.parse(m.queuedAt) : Date.parse(m.events[0].timestamp);
  return h("ol", { class: "timeline", "aria-label": "Timeline" },
    m.events.map((ev) => {
      const t = Date.parse(ev.timestamp);
      const reply = ev.details && (ev.details.smtp_reply || ev.details.postfix_reply || ev.details.reason);
      return h("li", { class: `s-${ev.status}`, "data-offset": ev.offset, "data-recipient": ev.recipient,
        "data-status": ev.status },
        h("time", { datetime: ev.timestamp }, when(ev.timestamp)),
        // a time before the queueing is a whole-second log time: say so rather than guess
        h("span", { class: "muted" }, !Number.isFinite(q) ? " " : t >= q ? ` +${duration(t - q)} ` : " +<1 s "),
        mark(ev.status), " ",
        h("strong", {}, LABELS[ev.status] || ev.status), " — ", ev.recipient || "", reporter(ev.details),
        reply && ev.status !== "delivered" ? h("span", { class: "reply" }, reply) : null);
    }));
}

function messageItem(m) {
  const id = m.id;
  const s = m.summary;
  const expanded = open.has(id);
  const rcpts = [...m.recipients.keys()];
  const to = rcpts.length ? rcpts.slice(0, 3).join(", ") + (rcpts.length > 3 ? ` and ${rcpts.length - 3} more` : "")
    : "(no recipient known yet)";
  const detailsId = `d-${id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const li = h("li", { class: `msg s-${s.status}`, "data-id": id, "data-status": s.status },
    h("button", {
      type: "button", class: "row", "aria-expanded": expanded ? "true" : "false", "aria-controls": detailsId,
      onclick: () => toggle(m),
    },
    mark(s.status),
    h("span", { class: "to" }, h("span", { class: "sr" }, "To "), to),
    h("span", { class: "state" }, LABELS[s.status] || s.status,
      Object.keys(s.counts).length > 1 ? h("span", { class: "counts" }, ` · ${summaryText(m)}`) : null),
    h("span", { class: "time muted" }, when(m.queuedAt))),
    expanded ? h("div", { class: "details", id: detailsId },
      h("p", { class: "muted small" }, "Message-ID ", h("code", {}, m.messageId || "—"),
        m.queueId ? [" · queue id ", h("code", {}, m.queueId)] : null),
      h("h3", {}, "Recipients"),
      h("ul", { class: "rcpts" }, [...m.recipients.values()].map((r) => recipientRow(r, m.queuedAt))),
      h("h3", {}, "Timeline"),
      timeline(m)) : null);
  return li;
}

function render() {
  renderQueued = false;
  const list = $("messages");
  const text = $("search").value.trim().toLowerCase();
  const filter = $("filter").value;
  // newest first; one whose queue time is not known yet has just been sent
  const t = (m) => (m.queuedAt ? Date.parse(m.queuedAt) : Infinity);
  const all = [...client.messages.values()].sort((a, b) => t(b) - t(a) || (a.id < b.id ? -1 : 1));
  const shown = all.filter((m) => matches(m, text, filter));
  const focused = document.activeElement && document.activeElement.closest("li.msg");
  const focusId = focused ? focused.dataset.id : null;
  list.replaceChildren(...shown.map(messageItem));
  if (focusId) {
    const again = list.querySelector(`li.msg[data-id="${CSS.escape(focusId)}"] > button`);
    if (again) again.focus();
  }
  $("count").textContent = all.length ? `(${shown.length} of ${all.length})` : "";
  $("empty").hidden = all.length > 0;
  $("more").hidden = nextCursor === null;
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(render);
}

async function toggle(m) {
  if (open.has(m.id)) {
    open.delete(m.id);
    render();
    return;
  }
  open.add(m.id);
  m._loading = true;
  render();
  try {
    await client.timeline(m.id);
  } catch (e) {
    console.warn("timeline", e);
  }
  m._loading = false;
  render();
}

async function loadPage(cursor) {
  const page = await client.load({ limit: 50, cursor });
  nextCursor = page.nextCursor;
  scheduleRender();
}

// --- preferences ------------------------------------------------------------------------

async function loadPrefs() {
  const p = await client.preferences();
  $("who").textContent = `Signed in as ${p.user}`;
  $("who").hidden = false;
  $("pref-receipts").checked = p.read_receipts;
  $("pref-presence").checked = p.presence;
  $("pref-mdn").value = p.mdn || "";
}

async function savePref(field, input) {
  input.disabled = true;
  const before = field === "mdn" ? null : !input.checked;
  try {
    // mdn: "" in the list is the server's default, null in the API
    const value = field === "mdn" ? input.value || null : input.checked;
    const p = await client.setPreferences({ [field]: value });
    $("pref-receipts").checked = p.read_receipts;
    $("pref-presence").checked = p.presence;
    $("pref-mdn").value = p.mdn || "";
    $("prefs-status").textContent = "Saved.";
  } catch (e) {
    if (field === "mdn") await loadPrefs().catch(() => {});
    else input.checked = before;
    $("prefs-status").textContent = `Not saved: ${e.message}`;
  }
  input.disabled = false;
}

// --- start ------------------------------------------------------------------------------

function showSignIn(error) {
  $("app").hidden = true;
  $("signout").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = error || "";
  $("token").focus();
}

async function start(token) {
  client = new MsgStatusClient({ token, maxDelay: 15000 });
  client.addEventListener("state", (e) => {
    showState(e.detail);
    if (e.detail.state === "unauthorized") {
      forgetToken();
      showSignIn("That token was refused: it is wrong, revoked or expired.");
    }
  });
  client.addEventListener("change", scheduleRender);
  client.addEventListener("event", (e) => {
    // a message sent since the page was loaded: fetch what the feed does not carry
    const m = e.detail.message;
    if (!m.queuedAt && !m._fetching) {
      m._fetching = true;
      client.fetchStatus(m.id).then(scheduleRender, () => {}).finally(() => { m._fetching = false; });
    }
  });
  client.addEventListener("reset", () => {
    nextCursor = null;
    loadPage(null).catch(() => {});
  });
  // statusd without its database (503), or away: wait for it rather than ask to sign in again
  for (let delay = 1000; ; delay = Math.min(delay * 2, 15000)) {
    try {
      await loadPrefs();
      break;
    } catch (e) {
      if (e.status === 401) {
        forgetToken();
        showSignIn("That token was refused: it is wrong, revoked or expired.");
        return;
      }
      showState({ state: "reconnecting", retryIn: delay });
      $("conn-text").textContent += ` (${e.message})`;
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (client === null) return; // signed out meanwhile
    }
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  await client.start(); // live from here: the list below cannot miss a change
  await loadPage(null);
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  saveToken(token, $("remember").checked);
  $("token").value = "";
  start(token);
});
$("signout").addEventListener("click", () => {
  forgetToken();
  if (client) client.stop();
  client = null;
  $("messages").replaceChildren();
  showState({ state: "stopped" });
  showSignIn("");
});
$("search").addEventListener("input", scheduleRender);
$("filter").addEventListener("change", scheduleRender);
$("more").addEventListener("click", () => loadPage(nextCursor));
$("pref-receipts").addEventListener("change", (e) => savePref("read_receipts", e.target));
$("pref-presence").addEventListener("change", (e) => savePref("presence", e.target));
$("pref-mdn").addEventListener("change", (e) => savePref("mdn", e.target));

const fromLink = tokenFromLocation();
if (fromLink) saveToken(fromLink, false);
const token = fromLink || storedToken();
if (token) start(token);
else showSignIn("");
