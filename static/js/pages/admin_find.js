// Operator page, what the operator finds: a user search with its results, a user's page
// (balance, calls, deposits, withdrawals, reports, audit lines; ban and unban there), the
// open reports queue (dismiss, ban) and the calls list (live now, recent) opening a call's
// record. Every string a user wrote (display names, reasons, chat) goes in as text (h()
// makes text nodes), never as HTML.

import { ApiError, get, post } from "../api.js";
import * as money from "../money.js";
import { errorText, has, t } from "../i18n.js";
import { clear, errorBox, formatDate, formatDuration, h, statusBadge, toast } from "../ui.js";
import { recordButton as inlineRecord } from "./admin_calls.js";

function section(title, body, extra, testid) {
  return h("section.card", { "data-testid": testid },
    h("div.spread", h("h2", title), extra || null), body);
}

/** A table whose cells carry their column's name: on a phone each row reads as a card. */
function table(testid, head, rows) {
  const names = head.map((c) => c.replace(/^\./, ""));
  for (const row of rows) {
    [...row.children].forEach((td, i) => { if (names[i]) td.dataset.label = names[i]; });
  }
  return h("div.table-wrap", h("table.cards-sm", { "data-testid": testid },
    h("thead", h("tr", head.map((c) => (c.startsWith(".") ? h("th.amount", c.slice(1)) : h("th", c))))),
    h("tbody", rows)));
}

/** Column names from catalogue keys; a leading "." (an amount column) is kept. */
function cols(...keys) {
  return keys.map((k) => (k === "" ? "" : k.startsWith(".") ? `.${t(k.slice(1))}` : t(k)));
}

/** A word the server sends (a role, an end reason): the catalogue's when it has one. */
function word(prefix, value) {
  const v = String(value ?? "");
  return has(`${prefix}.${v}`) ? t(`${prefix}.${v}`) : v.replace(/_/g, " ");
}

/** An operator write; with two-factor on, asks for a code when the server wants one. */
async function adminWrite(path, body) {
  try {
    return await post(path, body);
  } catch (err) {
    if (!(err instanceof ApiError) || !["otp_required", "otp_invalid"].includes(err.code)) throw err;
    const code = (prompt(err.code === "otp_invalid"
      ? t("admin.otp_again") : t("admin.otp_prompt")) || "").trim();
    if (!code) throw err;
    return post(path, body, { headers: { "X-OTP": code } });
  }
}

function who(p) {
  if (!p) return "";
  return h("span", h("span.who-name", { "data-i18n-skip": true }, p.display_name), h("span.muted.small", ` #${p.id}`));
}

function tokens(v) {
  return v == null ? "—" : money.tokens(v);
}

function moreNote(page, name) {
  return page.more?.[name] ? h("p.muted.small", t("admin.latest_shown", { n: page.list_limit })) : null;
}

/** The sections and their first load; `refreshFigures` updates the page's audit figures. */
export function findSections({ refreshFigures = async () => {} } = {}) {
  const resultsBox = h("div", { "data-testid": "user-results" });
  const userBox = h("div", { "data-testid": "user-page" }, h("p.empty", t("admin.search_first")));
  const reportsBox = h("div");
  const callsBox = h("div");
  const recordBox = h("div", { "data-testid": "call-record" });
  let openUserId = null;
  let lastQuery = "";

  // -- search
  const q = h("input", { type: "search", name: "q", maxlength: 254, "aria-label": t("admin.search_users"),
    placeholder: t("admin.search_placeholder"), autocomplete: "off" });
  const searchForm = h("form.inline-form", { role: "search", "aria-label": t("admin.find_user") },
    h("div.field", q), h("button.btn", { type: "submit" }, t("admin.search")));

  async function runSearch(query, offset = 0) {
    lastQuery = query;
    try {
      const params = new URLSearchParams({ q: query, offset: String(offset) });
      const r = await get(`/api/admin/users?${params}`);
      const rows = r.users.map((u) => {
        const open = h("button.btn.secondary.small", { type: "button" }, t("admin.open"));
        open.addEventListener("click", () => openUser(u.id));
        return h("tr",
          h("td", h("span.who-name", { "data-i18n-skip": true }, u.display_name), h("div.muted.small", `#${u.id}`)),
          h("td.small", { "data-i18n-skip": true }, u.email),
          h("td", word("role", u.role)),
          h("td.amount", tokens(u.balance?.available)),
          h("td", u.banned ? h("span.badge.danger", t("admin.banned")) : h("span.badge.ok", t("admin.active"))),
          h("td", open));
      });
      const pager = h("div.row");
      if (offset > 0) pager.append(h("button.btn.secondary.small", { type: "button", onclick: () => runSearch(query, Math.max(0, offset - r.limit)) }, t("admin.previous")));
      if (r.next_offset != null) pager.append(h("button.btn.secondary.small", { type: "button", onclick: () => runSearch(query, r.next_offset) }, t("admin.next")));
      clear(resultsBox, rows.length
        ? [table("user-hits", cols("admin.name", "auth.email", "admin.role", ".dash.available", "dash.status", ""), rows), pager]
        : h("p.empty", t("admin.no_match")));
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
    if (u.role === "admin") return h("p.muted.small", t("admin.no_ban_admin"));
    if (u.banned) {
      const unban = h("button.btn.secondary", { type: "button" }, t("admin.unban"));
      unban.addEventListener("click", () => act(unban, async () => {
        if (!confirm(t("admin.confirm_unban", { name: u.display_name }))) return false;
        await adminWrite(`/api/admin/users/${encodeURIComponent(u.id)}/unban`, {});
        return true;
      }));
      return h("div.row", unban);
    }
    const reason = h("input", { type: "text", maxlength: 2000, "aria-label": t("admin.ban_reason"), placeholder: t("admin.ban_why") });
    const ban = h("button.btn.danger", { type: "button" }, t("admin.ban"));
    ban.addEventListener("click", () => act(ban, () => banUser(u, reason.value)));
    return h("div.inline-form", h("div.field", reason), ban);
  }

  async function banUser(u, text) {
    const reason = String(text || "").trim();
    if (!reason) throw new Error(t("admin.write_why"));
    if (!confirm(t("admin.confirm_ban", { name: u.display_name }))) return false;
    await adminWrite(`/api/admin/users/${encodeURIComponent(u.id)}/ban`, { reason });
    return true;
  }

  async function act(button, fn) {
    button.disabled = true;
    try {
      if ((await fn()) !== false) {
        toast(t("admin.done"), "ok");
        await Promise.all([openUserId ? openUser(openUserId) : null, loadReports(),
          lastQuery ? runSearch(lastQuery) : null, refreshFigures()]);
      }
    } catch (err) {
      toast(errorText(err), "error");
    } finally {
      button.disabled = false;
    }
  }

  function reportRows(list, side) {
    return list.map((r) => h("tr",
      h("td.small", formatDate(r.created_at)),
      h("td", who(side === "about" ? r.reporter : r.reported)),
      h("td.reason", { "data-i18n-skip": true }, r.reason || "—"),
      h("td", r.call_id ? recordButton(r.call_id) : "—"),
      h("td", statusBadge(r.status), r.outcome ? h("div.muted.small", word("outcome", r.outcome)) : null)));
  }

  function renderUser(page) {
    const u = page.user;
    const b = u.balance || {};
    const calls = page.calls.map((c) => {
      const other = c.as === "buyer" ? c.seller : c.buyer;
      return h("tr",
        h("td.small", formatDate(c.created_at)),
        h("td", word("role", c.as)),
        h("td", who(other)),
        h("td", statusBadge(c.state)),
        h("td.amount", formatDuration(c.live_seconds)),
        h("td.amount", tokens(c.charged)),
        h("td", recordButton(c.id)));
    });
    const deposits = page.deposits.map((d) => h("tr",
      h("td.small", formatDate(d.credited_at || d.block_time)),
      h("td.amount", money.usdt(d.amount_usdt)),
      h("td", statusBadge(d.status), h("div.muted.small", word("source", d.source || ""))),
      h("td.mono.small", { "data-i18n-skip": true }, d.txid)));
    const withdrawals = page.withdrawals.map((w) => h("tr",
      h("td.small", formatDate(w.created_at)),
      h("td.amount", money.tokens(w.tokens)),
      h("td", statusBadge(w.status), w.reason ? h("div.muted.small", word("reason", w.reason)) : null),
      h("td.mono.small", { "data-i18n-skip": true }, w.address)));
    const audit = page.audit_log.map((e) => h("tr",
      h("td.small", formatDate(e.at)),
      h("td", { "data-i18n-skip": true }, e.action),
      h("td.small", { "data-i18n-skip": true }, e.target || ""),
      h("td.reason", { "data-i18n-skip": true }, e.reason || ""),
      h("td.small", { "data-i18n-skip": true }, e.actor_email || "")));
    const list = (title, name, rows, head, empty) => [
      h("h3", title),
      rows.length ? table(`user-${name}`, head, rows) : h("p.empty", empty),
      moreNote(page, name)];
    clear(userBox,
      h("div.spread",
        h("div", h("h3.user-title", { "data-i18n-skip": true }, u.display_name), h("div.muted.small", `#${u.id} · `,
          h("span", { "data-i18n-skip": true }, u.email), " · ", word("role", u.role),
          u.two_factor ? [" · ", t("admin.two_factor_on")] : "", u.email_verified ? [" · ", t("admin.email_verified")] : "")),
        u.banned ? h("span.badge.danger", t("admin.banned")) : h("span.badge.ok", t("admin.active"))),
      u.banned ? h("p.warning", t("admin.banned_at", { at: formatDate(u.banned_at) }), " ", h("span", { "data-i18n-skip": true }, u.ban_reason || "")) : null,
      h("div.stats", { "data-testid": "user-balance" },
        h("div.stat", h("div.label", t("dash.available")), h("div.value.small-value", t("common.tokens_amount", { tokens: tokens(b.available) }))),
        h("div.stat", h("div.label", t("admin.held")), h("div.value.small-value", t("common.tokens_amount", { tokens: tokens(b.held) }))),
        h("div.stat", h("div.label", t("admin.pending_earnings")), h("div.value.small-value", t("common.tokens_amount", { tokens: tokens(b.pending) }))),
        h("div.stat", h("div.label", t("admin.unspent_bonus")), h("div.value.small-value", t("common.tokens_amount", { tokens: tokens(page.bonus?.unspent) })))),
      banControls(u),
      list(t("nav.calls"), "calls", calls, cols("history.when", "admin.as", "admin.with", "admin.state", ".history.live", ".dash.tokens", ""), t("admin.no_calls")),
      list(t("admin.deposits"), "deposits", deposits, [t("history.when"), ".USDT", t("dash.status"), t("dash.transaction")], t("admin.no_deposits")),
      list(t("dash.withdrawals"), "withdrawals", withdrawals, cols("history.when", ".dash.tokens", "dash.status", "dash.to"), t("admin.no_withdrawals")),
      list(t("admin.reports_about"), "reports_about", reportRows(page.reports_about, "about"),
        cols("history.when", "admin.by", "admin.reason", "title.call", "dash.status"), t("admin.nobody_reported")),
      list(t("admin.reports_by"), "reports_by", reportRows(page.reports_by, "by"),
        cols("history.when", "admin.about", "admin.reason", "title.call", "dash.status"), t("admin.reported_nobody")),
      list(t("admin.audit_log"), "audit_log", audit, cols("history.when", "admin.action", "admin.on", "admin.reason", "admin.by"), t("admin.no_audit")));
  }

  // -- reports queue
  async function loadReports() {
    try {
      const { reports = [] } = await get("/api/admin/reports?status=open");
      clear(reportsBox, reports.length ? table("reports-queue",
        cols("history.when", "admin.reporter", "admin.reported", "admin.reason", "title.call", ""),
        reports.map((r) => {
          const reason = h("input", { type: "text", maxlength: 2000, "aria-label": t("admin.ban_reason"), placeholder: t("admin.why") });
          const ban = h("button.btn.danger.small", { type: "button" }, t("admin.ban"));
          const dismiss = h("button.btn.secondary.small", { type: "button" }, t("admin.dismiss"));
          const open = h("button.linkish", { type: "button", onclick: () => openUser(r.reported_id), "data-i18n-skip": true }, r.reported_display_name);
          const reported = { id: r.reported_id, display_name: r.reported_display_name };
          ban.addEventListener("click", () => act(ban, () => banUser(reported, reason.value)));
          dismiss.addEventListener("click", () => act(dismiss, async () => {
            if (!confirm(t("admin.confirm_dismiss", { name: r.reported_display_name }))) return false;
            await adminWrite(`/api/admin/reports/${encodeURIComponent(r.id)}/dismiss`, {});
            return true;
          }));
          return h("tr", { "data-report-id": r.id },
            h("td.small", formatDate(r.created_at)),
            h("td", h("button.linkish", { type: "button", onclick: () => openUser(r.reporter_id), "data-i18n-skip": true }, r.reporter_display_name),
              h("div.muted.small", `#${r.reporter_id}`)),
            h("td", open, h("div.muted.small", `#${r.reported_id} · `, word("role", r.reported_role),
              r.reports_about_user > 1 ? [" · ", t("admin.reported_times", { n: r.reports_about_user })] : "")),
            // A reported chat message is shown with the report, and its call's record (the
            // chat included) opens under it.
            h("td.reason", h("span", { "data-i18n-skip": true }, r.reason || "—"), r.message ? h("div.reported-message",
              h("div.chat-text", { "data-i18n-skip": true }, r.message.text),
              h("div.muted.small", t("admin.message_of_call", { id: r.message.call_id, at: formatDate(r.message.at) }))) : null),
            h("td", r.call_id ? inlineRecord(r.call_id) : "—"),
            h("td", h("div.report-actions", reason, h("div.row", ban, dismiss))));
        })) : h("p.empty", t("admin.no_reports")));
    } catch (err) {
      clear(reportsBox, errorBox(err));
    }
  }

  // -- calls list and a call's record
  const callStatus = h("select.auto", { "aria-label": t("nav.calls") },
    h("option", { value: "live" }, t("admin.live_now")), h("option", { value: "recent" }, t("admin.recent")));

  async function loadCalls(before) {
    try {
      const params = new URLSearchParams({ status: callStatus.value });
      if (before) params.set("before", before);
      const r = await get(`/api/admin/calls?${params}`);
      const older = r.next_before
        ? h("button.btn.secondary.small", { type: "button", onclick: () => loadCalls(r.next_before) }, t("events.older"))
        : null;
      const newest = before ? h("button.btn.secondary.small", { type: "button", onclick: () => loadCalls() }, t("admin.newest")) : null;
      clear(callsBox, r.calls.length ? [table("calls-list",
        cols("admin.started", "history.buyer", "history.seller", "admin.state", ".history.live", ".dash.tokens", ""),
        r.calls.map((c) => h("tr", { "data-call-id": c.id },
          h("td.small", formatDate(c.created_at)),
          h("td", who(c.buyer)),
          h("td", who(c.seller)),
          h("td", statusBadge(c.state), c.end_reason ? h("div.muted.small", word("end_reason", c.end_reason)) : null),
          h("td.amount", formatDuration(c.live_seconds)),
          h("td.amount", tokens(c.charged)),
          h("td", recordButton(c.id))))), h("div.row", newest, older)]
        : h("p.empty", t(callStatus.value === "live" ? "admin.no_live" : "history.none")));
    } catch (err) {
      clear(callsBox, errorBox(err));
    }
  }
  callStatus.addEventListener("change", () => loadCalls());

  function recordButton(callId) {
    return h("button.btn.secondary.small", { type: "button", onclick: () => openRecord(callId) }, t("admin.record_n", { id: callId }));
  }

  async function openRecord(callId) {
    try {
      const rec = await get(`/api/admin/calls/${encodeURIComponent(callId)}/record`);
      const c = rec.call;
      clear(recordBox,
        h("div.spread", h("h3", t("admin.call_n", { id: c.id })),
          h("button.btn.secondary.small", { type: "button", onclick: () => clear(recordBox) }, t("admin.close"))),
        h("div.stats",
          h("div.stat", h("div.label", t("admin.state")), h("div.value.small-value", word("call_state", c.state))),
          h("div.stat", h("div.label", t("history.live")), h("div.value.small-value", formatDuration(c.live_seconds))),
          h("div.stat", h("div.label", t("admin.charged")), h("div.value.small-value", t("common.tokens_amount", { tokens: tokens(c.charged) }))),
          h("div.stat", h("div.label", t("admin.refunded")), h("div.value.small-value", t("common.tokens_amount", { tokens: tokens(c.refunded) })))),
        h("p.small", t("admin.record_parties", { buyer: c.buyer_id, seller: c.seller_id, rate: c.rate }),
          c.end_reason ? [", ", t("admin.ended"), " ", word("end_reason", c.end_reason)] : "",
          ", ", t("count.segments", { count: (rec.segments || []).length })),
        h("h4", t("admin.what_happened")),
        (rec.events || []).length ? h("ol.small", rec.events.map((e) =>
          h("li", formatDate(e.at), " ", h("span", { "data-i18n-skip": true }, e.state, e.detail ? h("span.muted", ` ${e.detail}`) : null)))) : h("p.empty", t("admin.no_events")),
        (rec.messages || []).length ? [h("h4", t("admin.chat")), h("ol.small", rec.messages.map((m) =>
          h("li", formatDate(m.at), " ", h("strong", `#${m.from}`), ": ", h("span", { "data-i18n-skip": true }, m.text))))] : null,
        (rec.disputes || []).length ? [h("h4", t("admin.disputes")), rec.disputes.map((d) =>
          h("p.small", statusBadge(d.status), " ", h("span", { "data-i18n-skip": true }, d.reason || "")))] : null,
        h("h4", t("admin.ledger")),
        (rec.ledger || []).length ? h("ul.small.mono", { "data-i18n-skip": true }, rec.ledger.map((tx) =>
          h("li", `${tx.kind}: `, tx.postings.map((p) => `${p.account} ${p.amount}`).join(", ")))) : h("p.empty", t("admin.nothing_moved")));
      recordBox.scrollIntoView?.({ block: "start" });
    } catch (err) {
      clear(recordBox, errorBox(err));
    }
  }

  const sections = [
    section(t("admin.find_user"), h("div", searchForm, resultsBox), null, "find-user"),
    section(t("admin.user"), userBox, null, "user-section"),
    section(t("admin.reports"), reportsBox, h("button.btn.secondary.small", { type: "button", onclick: () => loadReports() }, t("events.refresh")), "reports-section"),
    section(t("nav.calls"), h("div", callsBox, recordBox), h("div.row", callStatus,
      h("button.btn.secondary.small", { type: "button", onclick: () => loadCalls() }, t("events.refresh"))), "calls-section"),
  ];
  return { sections, load: () => Promise.all([loadReports(), loadCalls()]) };
}
