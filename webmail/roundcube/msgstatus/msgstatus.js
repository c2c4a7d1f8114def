/**
 * msgstatus for Roundcube, the page side: marks in the Sent list and the status panel of
 * an open message, kept live by msgstatus.js (the client statusd serves, loaded from it).
 * Addresses and SMTP replies come from the mail system: they go into the page as text only.
 *
 * @license GNU GPLv3+
 */
(function () {
  "use strict";
  if (!window.rcmail || !rcmail.env.msgstatus_url) return;

  var label = function (k) { return rcmail.gettext(k, "msgstatus"); };
  var clientPromise = null;
  var tokenWaiters = [];
  var rows = new Map(); // Message-ID -> the mark elements showing it
  var looked = new Set(); // Message-IDs asked about already
  var listLoaded = null;
  var mod = null;

  function freshToken() {
    return new Promise(function (resolve) {
      tokenWaiters.push(resolve);
      if (tokenWaiters.length === 1) rcmail.http_post("plugin.msgstatus-token", {}, false);
    });
  }
  rcmail.addEventListener("plugin.msgstatus_token", function (d) {
    var waiters = tokenWaiters;
    tokenWaiters = [];
    if (d && d.token) rcmail.env.msgstatus_token = d.token;
    waiters.forEach(function (w) { w(rcmail.env.msgstatus_token); });
  });

  function client() {
    if (!clientPromise) {
      clientPromise = import(rcmail.env.msgstatus_url + "/msgstatus.js").then(function (m) {
        mod = m;
        var c = new m.MsgStatusClient({
          url: rcmail.env.msgstatus_url,
          token: function (fresh) { return fresh ? freshToken() : rcmail.env.msgstatus_token; },
        });
        c.addEventListener("change", function (e) { update(e.detail.message); });
        c.addEventListener("state", function (e) {
          document.documentElement.dataset.msgstatus = e.detail.state;
        });
        return c.start().then(function () { return c; }, function () { return c; });
      });
    }
    return clientPromise;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function setMark(span, status) {
    span.dataset.status = status;
    span.className = "msgstatus-mark msgstatus-" + status;
    span.textContent = mod.MARKS[status] || "";
    span.title = label(status);
    span.setAttribute("aria-label", label("status") + ": " + label(status));
  }

  // --- the Sent list ------------------------------------------------------------------

  rcmail.addEventListener("insertrow", function (e) {
    var mid = e.row && e.row.flags && e.row.flags.msgstatus;
    if (!mid || !e.row.obj) return;
    var span = el("span", "msgstatus-mark");
    span.setAttribute("role", "img");
    var cell = $(e.row.obj).find("td.subject span.subject").get(0) || $(e.row.obj).find("td.subject").get(0);
    if (!cell) return;
    cell.insertBefore(span, cell.firstChild);
    if (!rows.has(mid)) rows.set(mid, new Set());
    rows.get(mid).add(span);
    client().then(function (c) { lookup(c, mid); });
  });

  function lookup(c, mid) {
    // the newest messages in one request, then one by one for older rows
    if (!listLoaded) listLoaded = c.load({ limit: 200 }).catch(function () {});
    listLoaded.then(function () {
      var m = c.get(mid);
      if (m) return update(m);
      if (looked.has(mid)) return;
      looked.add(mid);
      c.fetchStatus(mid).then(update, function () { /* not tracked: no mark */ });
    });
  }

  function update(m) {
    if (m.messageId && rows.has(m.messageId)) {
      var status = m.summary.status;
      rows.get(m.messageId).forEach(function (span) {
        if (!span.isConnected) rows.get(m.messageId).delete(span);
        else setMark(span, status);
      });
    }
    if (panel && m.messageId === rcmail.env.msgstatus_message) renderPanel(m);
  }

  // --- the message view ---------------------------------------------------------------

  var panel = null;

  function renderPanel(m) {
    panel.replaceChildren();
    panel.append(el("h2", "msgstatus-title", label("status")));
    var list = el("ul", "msgstatus-recipients");
    list.setAttribute("aria-label", label("recipients"));
    m.recipients.forEach(function (r) {
      var li = el("li", "msgstatus-rcpt");
      li.dataset.recipient = r.recipient;
      li.dataset.status = r.status || "";
      var mark = el("span");
      setMark(mark, r.status || "queued");
      li.append(mark, " ", el("strong", null, r.recipient), " ",
        el("span", "msgstatus-state", label(r.status || "queued")), " ",
        el("time", "msgstatus-time", r.timestamp ? new Date(r.timestamp).toLocaleString() : ""));
      var reply = r.smtpReply || (r.details && r.details.postfix_reply);
      if (reply && /^(deferred|bounced|expired)$/.test(r.status)) li.append(el("div", "msgstatus-reply", reply));
      // a status another msgstatus site reported (docs/federation.md)
      if (r.details && r.details.reporter)
        li.append(" ", el("span", "msgstatus-reporter", label("reportedby") + " " + r.details.reporter));
      list.append(li);
    });
    panel.append(list);
    if (m.events.length) {
      var details = el("details", "msgstatus-timeline");
      details.append(el("summary", null, label("timeline")));
      var ol = el("ol");
      var q = m.queuedAt ? Date.parse(m.queuedAt) : NaN;
      m.events.forEach(function (ev) {
        var t = Date.parse(ev.timestamp);
        var li = el("li", null, new Date(ev.timestamp).toLocaleTimeString() +
          (isFinite(q) && t >= q ? " (+" + ((t - q) / 1000).toFixed(1) + " s)" : "") + " " +
          label(ev.status) + " — " + (ev.recipient || "") +
          (ev.details && ev.details.reporter ? " (" + label("reportedby") + " " + ev.details.reporter + ")" : ""));
        li.dataset.offset = ev.offset;
        ol.append(li);
      });
      details.append(ol);
      panel.append(details);
    }
  }

  if (rcmail.env.msgstatus_message && (rcmail.env.action === "show" || rcmail.env.action === "preview")) {
    client().then(function (c) {
      return c.timeline(rcmail.env.msgstatus_message).then(function (m) {
        panel = el("section", "msgstatus-panel");
        panel.setAttribute("aria-live", "polite");
        var anchor = document.getElementById("message-header") || document.getElementById("messagebody");
        if (!anchor) return;
        if (anchor.id === "message-header") anchor.after(panel);
        else anchor.before(panel);
        renderPanel(m);
      });
    }).catch(function () { /* not the user's message, or statusd away: no panel */ });
  }
})();
