// Operator page, what the operator finds: a user search with its results, a user's page
// (balance, calls, deposits, withdrawals, reports, audit lines; ban and unban there), the
// open reports queue (dismiss, ban) and the calls list (live now, recent) opening a call's
// record. Every string a user wrote (display names, reasons, chat) goes in as text (h()
// makes text nodes), never as HTML.

import { ApiError, get, post } from "../api.js";
import * as money from "../money.js";
import { clear, errorBox, formatDate, formatDuration, h, statusBadge, toast } from "../ui.js";
import { recordButton as inlineRecord } from "./admin_calls.js";

function section(title, body, extra, testid) {
  return h("section.card", { "data-testid": testid },
    h("div.spread", h("h2", title), extra || null), body);
}

/** A table whose cells carry their column's name: on a phone each row reads as a card. */
function table(testid, head, rows) {
  const names = head.map((t) => t.replace(/^\./, ""));
  for (const row of rows) {
    [...row.children].forEach((td, i) => { if (names[i]) td.dataset.label = names[i]; });
  }
  return h("div.table-wrap", h("table.cards-sm", { "data-testid": testid },
    h("thead", h("tr", head.map((t) => (t.startsWith(".") ? h("th.amount", t.slice(1)) : h("th", t))))),
    h("tbody", rows)));
}

/** An operator write; with two-factor on, asks for a code when the server wants one. */
async function adminWrite(path, body) {
  try {
    return await post(path, body);
  } catch (err) {
    if (!(err instanceof ApiError) || !["otp_required", "otp_invalid"].includes(err.code)) throw err;
    const code = (prompt(err.code === "otp_invalid"
      ? "That code did not work. Code from your authenticator app:"
      : "Code from your authenticator app:") || "").trim();
    if (!code) throw err;
    return post(path, body, { headers: { "X-OTP": code } });
  }
}

function who(p) {
  if (!p) return "";
  return h("span", h("span.who-name", p.display_name), h("span.muted.small", ` #${p.id}`));
}

function tokens(v) {
  return v == null ? "—" : money.tokens(v);
}

function moreNote(page, name) {
  return page.more?.[name] ? h("p.muted.small", `The latest ${page.list_limit} are shown.`) : null;
}

/** The sections and their first load; `refreshFigures` updates the page's audit figures. */
export function findSections({ refreshFigures = async () => {} } = {}) {
  const resultsBox = h("div", { "data-testid": "user-results" });
  const userBox = h("div", { "data-testid": "user-page" }, h("p.empty", "Search for a user and open them."));
  const reportsBox = h("div");
  const callsBox = h("div");
  const recordBox = h("div", { "data-testid": "call-record" });
  let openUserId = null;
  let lastQuery = "";

  // -- search
  const q = h("input", { type: "search", name: "q", maxlength: 254, "aria-label": "Search users",
    placeholder: "Email, part of a name, or a user id", autocomplete: "off" });
  const searchForm = h("form.inline-form", { role: "search", "aria-label": "Find a user" },
    h("div.field", q), h("button.btn", { type: "submit" }, "Search"));

  async function runSearch(query, offset = 0) {
    lastQuery = query;
    try {
      const params = new URLSearchParams({ q: query, offset: String(offset) });
      const r = await get(`/api/admin/users?${params}`);
      const rows = r.users.map((u) => {
        const open = h("button.btn.secondary.small", { type: "button" }, "Open");
        open.addEventListener("click", () => openUser(u.id));
        return h("tr",
          h("td", h("span.who-name", u.display_name), h("div.muted.small", `#${u.id}`)),
          h("td.small", u.email),
          h("td", u.role),
          h("td.amount", tokens(u.balance?.available)),
          h("td", u.banned ? h("span.badge.danger", "banned") : h("span.badge.ok", "active")),
          h("td", open));
      });
      const pager = h("div.row");
      if (offset > 0) pager.append(h("button.btn.secondary.small", { type: "button", onclick: () => runSearch(query, Math.max(0, offset - r.limit)) }, "Previous"));
      if (r.next_offset != null) pager.append(h("button.btn.secondary.small", { type: "button", onclick: () => runSearch(query, r.next_offset) }, "Next"));
      clear(resultsBox, rows.length
        ? [table("user-hits", ["Name", "Email", "Role", ".Available", "Status", ""], rows), pager]
        : h("p.empty", "No user matches."));
    } catch (err) {
      clear(resultsBox, errorBox(err));
    }
  }
  searchForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const query = q.value.trim();
    if (query) runSearch(query);
  });

  // -- a user's page
  async function openUser(id) {
    openUserId = id;
    try {
      renderUser(await get(`/api/admin/users/${encodeURIComponent(id)}`));
      userBox.scrollIntoView?.({ block: "start" });
    } catch (err) {
      clear(userBox, errorBox(err));
    }
  }

  function banControls(u) {
    if (u.role === "admin") return h("p.muted.small", "Operator accounts are not banned here.");
    if (u.banned) {
      const unban = h("button.btn.secondary", { type: "button" }, "Unban");
      unban.addEventListener("click", () => act(unban, async () => {
        if (!confirm(`Lift the ban on ${u.display_name}?`)) return false;
        await adminWrite(`/api/admin/users/${encodeURIComponent(u.id)}/unban`, {});
        return true;
      }));
      return h("div.row", unban);
    }
    const reason = h("input", { type: "text", maxlength: 2000, "aria-label": "Ban reason", placeholder: "Why (kept in the audit log)" });
    const ban = h("button.btn.danger", { type: "button" }, "Ban");
    ban.addEventListener("click", () => act(ban, () => banUser(u, reason.value)));
    return h("div.inline-form", h("div.field", reason), ban);
  }

  async function banUser(u, text) {
    const reason = String(text || "").trim();
    if (!reason) throw new Error("Write why: the reason is kept in the audit log.");
    if (!confirm(`Ban ${u.display_name}? Their calls end and they cannot log in.`)) return false;
    await adminWrite(`/api/admin/users/${encodeURIComponent(u.id)}/ban`, { reason });
    return true;
  }

  async function act(button, fn) {
    button.disabled = true;
    try {
      if ((await fn()) !== false) {
        toast("Done", "ok");
        await Promise.all([openUserId ? openUser(openUserId) : null, loadReports(),
          lastQuery ? runSearch(lastQuery) : null, refreshFigures()]);
      }
    } catch (err) {
      toast(err.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  function reportRows(list, side) {
    return list.map((r) => h("tr",
      h("td.small", formatDate(r.created_at)),
      h("td", who(side === "about" ? r.reporter : r.reported)),
      h("td.reason", r.reason || "—"),
      h("td", r.call_id ? recordButton(r.call_id) : "—"),
      h("td", statusBadge(r.status), r.outcome ? h("div.muted.small", r.outcome) : null)));
  }

  function renderUser(page) {
    const u = page.user;
    const b = u.balance || {};
    const calls = page.calls.map((c) => {
      const other = c.as === "buyer" ? c.seller : c.buyer;
      return h("tr",
        h("td.small", formatDate(c.created_at)),
        h("td", c.as),
        h("td", who(other)),
        h("td", statusBadge(c.state)),
        h("td.amount", formatDuration(c.live_seconds)),
        h("td.amount", tokens(c.charged)),
        h("td", recordButton(c.id)));
    });
    const deposits = page.deposits.map((d) => h("tr",
      h("td.small", formatDate(d.credited_at || d.block_time)),
      h("td.amount", money.usdt(d.amount_usdt)),
      h("td", statusBadge(d.status), h("div.muted.small", d.source || "")),
      h("td.mono.small", d.txid)));
    const withdrawals = page.withdrawals.map((w) => h("tr",
      h("td.small", formatDate(w.created_at)),
      h("td.amount", money.tokens(w.tokens)),
      h("td", statusBadge(w.status), w.reason ? h("div.muted.small", w.reason) : null),
      h("td.mono.small", w.address)));
    const audit = page.audit_log.map((e) => h("tr",
      h("td.small", formatDate(e.at)),
      h("td", e.action),
      h("td.small", e.target || ""),
      h("td.reason", e.reason || ""),
      h("td.small", e.actor_email || "")));
    const list = (title, name, rows, head, empty) => [
      h("h3", title),
      rows.length ? table(`user-${name}`, head, rows) : h("p.empty", empty),
      moreNote(page, name)];
    clear(userBox,
      h("div.spread",
        h("div", h("h3.user-title", u.display_name), h("div.muted.small", `#${u.id} · ${u.email} · ${u.role}`,
          u.two_factor ? " · two-factor on" : "", u.email_verified ? " · email verified" : "")),
        u.banned ? h("span.badge.danger", "banned") : h("span.badge.ok", "active")),
      u.banned ? h("p.warning", "Banned ", formatDate(u.banned_at), ": ", u.ban_reason || "") : null,
      h("div.stats", { "data-testid": "user-balance" },
        h("div.stat", h("div.label", "Available"), h("div.value.small-value", `${tokens(b.available)} tokens`)),
        h("div.stat", h("div.label", "Held in calls"), h("div.value.small-value", `${tokens(b.held)} tokens`)),
        h("div.stat", h("div.label", "Pending earnings"), h("div.value.small-value", `${tokens(b.pending)} tokens`)),
        h("div.stat", h("div.label", "Unspent bonus"), h("div.value.small-value", `${tokens(page.bonus?.unspent)} tokens`))),
      banControls(u),
      list("Calls", "calls", calls, ["When", "As", "With", "State", ".Live", ".Tokens", ""], "No calls."),
      list("Deposits", "deposits", deposits, ["When", ".USDT", "Status", "Transaction"], "No deposits."),
      list("Withdrawals", "withdrawals", withdrawals, ["When", ".Tokens", "Status", "To"], "No withdrawals."),
      list("Reports about them", "reports_about", reportRows(page.reports_about, "about"),
        ["When", "By", "Reason", "Call", "Status"], "Nobody reported them."),
      list("Reports they made", "reports_by", reportRows(page.reports_by, "by"),
        ["When", "About", "Reason", "Call", "Status"], "They reported nobody."),
      list("Audit log", "audit_log", audit, ["When", "Action", "On", "Reason", "By"], "No operator action about them."));
  }

  // -- reports queue
  async function loadReports() {
    try {
      const { reports = [] } = await get("/api/admin/reports?status=open");
      clear(reportsBox, reports.length ? table("reports-queue",
        ["When", "Reporter", "Reported", "Reason", "Call", ""],
        reports.map((r) => {
          const reason = h("input", { type: "text", maxlength: 2000, "aria-label": "Ban reason", placeholder: "Why" });
          const ban = h("button.btn.danger.small", { type: "button" }, "Ban");
          const dismiss = h("button.btn.secondary.small", { type: "button" }, "Dismiss");
          const open = h("button.linkish", { type: "button", onclick: () => openUser(r.reported_id) }, r.reported_display_name);
          const reported = { id: r.reported_id, display_name: r.reported_display_name };
          ban.addEventListener("click", () => act(ban, () => banUser(reported, reason.value)));
          dismiss.addEventListener("click", () => act(dismiss, async () => {
            if (!confirm(`Dismiss this report about ${r.reported_display_name}?`)) return false;
            await adminWrite(`/api/admin/reports/${encodeURIComponent(r.id)}/dismiss`, {});
            return true;
          }));
          return h("tr", { "data-report-id": r.id },
            h("td.small", formatDate(r.created_at)),
            h("td", h("button.linkish", { type: "button", onclick: () => openUser(r.reporter_id) }, r.reporter_display_name),
              h("div.muted.small", `#${r.reporter_id}`)),
            h("td", open, h("div.muted.small", `#${r.reported_id} · ${r.reported_role}`,
              r.reports_about_user > 1 ? ` · reported ${r.reports_about_user} times` : "")),
            // A reported chat message is shown with the report, and its call's record (the
            // chat included) opens under it.
            h("td.reason", r.reason || "—", r.message ? h("div.reported-message",
              h("div.chat-text", r.message.text),
              h("div.muted.small", `message of call #${r.message.call_id}, ${formatDate(r.message.at)}`)) : null),
            h("td", r.call_id ? inlineRecord(r.call_id) : "—"),
            h("td", h("div.report-actions", reason, h("div.row", ban, dismiss))));
        })) : h("p.empty", "No open reports."));
    } catch (err) {
      clear(reportsBox, errorBox(err));
    }
  }

  // -- calls list and a call's record
  const callStatus = h("select.auto", { "aria-label": "Calls" },
    h("option", { value: "live" }, "live now"), h("option", { value: "recent" }, "recent"));

  async function loadCalls(before) {
    try {
      const params = new URLSearchParams({ status: callStatus.value });
      if (before) params.set("before", before);
      const r = await get(`/api/admin/calls?${params}`);
      const older = r.next_before
        ? h("button.btn.secondary.small", { type: "button", onclick: () => loadCalls(r.next_before) }, "Older")
        : null;
      const newest = before ? h("button.btn.secondary.small", { type: "button", onclick: () => loadCalls() }, "Newest") : null;
      clear(callsBox, r.calls.length ? [table("calls-list",
        ["Started", "Buyer", "Seller", "State", ".Live", ".Tokens", ""],
        r.calls.map((c) => h("tr", { "data-call-id": c.id },
          h("td.small", formatDate(c.created_at)),
          h("td", who(c.buyer)),
          h("td", who(c.seller)),
          h("td", statusBadge(c.state), c.end_reason ? h("div.muted.small", c.end_reason.replace(/_/g, " ")) : null),
          h("td.amount", formatDuration(c.live_seconds)),
          h("td.amount", tokens(c.charged)),
          h("td", recordButton(c.id))))), h("div.row", newest, older)]
        : h("p.empty", callStatus.value === "live" ? "No call is under way." : "No calls yet."));
    } catch (err) {
      clear(callsBox, errorBox(err));
    }
  }
  callStatus.addEventListener("change", () => loadCalls());

  function recordButton(callId) {
    return h("button.btn.secondary.small", { type: "button", onclick: () => openRecord(callId) }, `Record #${callId}`);
  }

  async function openRecord(callId) {
    try {
      const rec = await get(`/api/admin/calls/${encodeURIComponent(callId)}/record`);
      const c = rec.call;
      clear(recordBox,
        h("div.spread", h("h3", `Call #${c.id}`),
          h("button.btn.secondary.small", { type: "button", onclick: () => clear(recordBox) }, "Close")),
        h("div.stats",
          h("div.stat", h("div.label", "State"), h("div.value.small-value", c.state)),
          h("div.stat", h("div.label", "Live"), h("div.value.small-value", formatDuration(c.live_seconds))),
          h("div.stat", h("div.label", "Charged"), h("div.value.small-value", `${tokens(c.charged)} tokens`)),
          h("div.stat", h("div.label", "Refunded"), h("div.value.small-value", `${tokens(c.refunded)} tokens`))),
        h("p.small", `Buyer #${c.buyer_id}, seller #${c.seller_id}, ${c.rate} tokens a minute`,
          c.end_reason ? `, ended: ${c.end_reason.replace(/_/g, " ")}` : "",
          `, ${(rec.segments || []).length} segments billed.`),
        h("h4", "What happened"),
        (rec.events || []).length ? h("ol.small", rec.events.map((e) =>
          h("li", formatDate(e.at), " ", e.state, e.detail ? h("span.muted", ` ${e.detail}`) : null))) : h("p.empty", "No events."),
        (rec.messages || []).length ? [h("h4", "Chat"), h("ol.small", rec.messages.map((m) =>
          h("li", formatDate(m.at), " ", h("strong", `#${m.from}`), ": ", m.text)))] : null,
        (rec.disputes || []).length ? [h("h4", "Disputes"), rec.disputes.map((d) =>
          h("p.small", statusBadge(d.status), " ", d.reason || ""))] : null,
        h("h4", "Ledger"),
        (rec.ledger || []).length ? h("ul.small.mono", rec.ledger.map((t) =>
          h("li", `${t.kind}: `, t.postings.map((p) => `${p.account} ${p.amount}`).join(", ")))) : h("p.empty", "Nothing moved."));
      recordBox.scrollIntoView?.({ block: "start" });
    } catch (err) {
      clear(recordBox, errorBox(err));
    }
  }

  const sections = [
    section("Find a user", h("div", searchForm, resultsBox), null, "find-user"),
    section("User", userBox, null, "user-section"),
    section("Reports", reportsBox, h("button.btn.secondary.small", { type: "button", onclick: () => loadReports() }, "Refresh"), "reports-section"),
    section("Calls", h("div", callsBox, recordBox), h("div.row", callStatus,
      h("button.btn.secondary.small", { type: "button", onclick: () => loadCalls() }, "Refresh")), "calls-section"),
  ];
  return { sections, load: () => Promise.all([loadReports(), loadCalls()]) };
}
