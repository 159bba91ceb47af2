// Operator page: audit figures, withdrawals waiting for review, unmatched deposits, sweeps of
// personal deposit addresses (address_per_user: status, USDT, TRX burned, why one waits),
// disputes (each with its call's record, the chat included: admin_calls.js), bans, top-up
// promotions, seller photos waiting for review; user search, a user's page, the reports
// queue and calls (admin_find.js); events (admin_events.js). Every action asks for
// confirmation; every answer is shown.

import { get, post } from "../api.js";
import * as money from "../money.js";
import { clear, errorBox, field, formatDate, h, onSubmit, statusBadge, toast } from "../ui.js";
import { recordButton } from "./admin_calls.js";
import { findSections } from "./admin_find.js";
import { explorerLink } from "./wallet.js";
import { eventsSection } from "./admin_events.js";

function section(title, body, extra) {
  return h("section.card", h("div.spread", h("h2", title), extra || null), body);
}

function figure(key, value) {
  let label = key.replace(/_/g, " ");
  let shown = value;
  let bad = false;
  if (key.endsWith("_musdt") && Number.isInteger(value)) {
    // Ledger figures are integer µUSDT: shown in USDT, exactly.
    label = key.slice(0, -"_musdt".length).replace(/_/g, " ");
    shown = `${money.fromUnits(BigInt(value), 6, { minDecimals: 2 })} USDT`;
  } else if (Array.isArray(value)) {
    shown = value.length ? value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ") : "none";
    bad = value.length > 0;
  } else if (value && typeof value === "object") {
    shown = JSON.stringify(value);
  }
  return h("div.stat", h("div.label", label), h("div.value.small-value", { class: bad ? "neg-figure" : "" }, String(shown)));
}

async function act(button, fn, done) {
  button.disabled = true;
  try {
    await fn();
    toast("Done", "ok");
    // Money moved: the audit and wallet figures change with the list.
    await Promise.all([done(), refreshFigures()]);
  } catch (err) {
    toast(err.message, "error");
    button.disabled = false;
  }
}

/** "2026-11-30T14:05" for a datetime-local input: the user's local time, to the minute. */
function localInputValue(date) {
  const p = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}`;
}

/** A datetime-local value is the user's wall-clock time; the API takes an instant in UTC. */
function inputToIso(value, label) {
  const d = new Date(value);
  if (!value || Number.isNaN(d.getTime())) throw new Error(`${label}: pick a date and a time.`);
  return d.toISOString();
}

function promoState(p, now = Date.now()) {
  if (p.active) return "active";
  return Date.parse(p.starts_at) > now ? "upcoming" : "over";
}

// The API's own message names its fields (ends_at); the form's labels are what the operator sees.
const PROMO_ERRORS = {
  invalid_period: "The end must be after the start.",
  promotion_over: "This promotion is already over.",
};

function promoError(err) {
  return PROMO_ERRORS[err?.code] ? Object.assign(new Error(PROMO_ERRORS[err.code]), { code: err.code }) : err;
}

let refreshFigures = async () => {};

export async function render(main, _route, app) {
  const features = app.config?.features || {};
  refreshFigures = () => Promise.all([loadAudit(), features.reconcile ? loadWallet() : null]);
  const walletBox = h("div");
  const auditBox = h("div");
  const wdBox = h("div");
  const depBox = h("div");
  const sweepBox = h("div");
  const personal = app.config?.deposit_mode === "address_per_user";
  const dispBox = h("div");
  const promoBox = h("div");
  const events = eventsSection(); // the operator events and their webhook deliveries
  const photoBox = h("div", { "data-testid": "photo-queue" });
  const wdStatus = h("select.auto", { "aria-label": "Withdrawal status" },
    ["review", "queued", "signed", "sent", "failed", "confirmed", "rejected"].map((s) => h("option", { value: s }, s)));

  async function loadAudit() {
    try {
      const a = await get("/api/admin/audit");
      const entries = Object.entries(a).filter(([k]) => k !== "_status");
      clear(auditBox,
        h("div.row", a.ok ? h("span.badge.ok", "Ledger adds up") : h("span.badge.danger", "Ledger mismatch: run meterchat audit")),
        h("div.stats", { class: "audit-figures" }, entries.filter(([k]) => k !== "ok").map(([k, v]) => figure(k, v))));
    } catch (err) {
      clear(auditBox, errorBox(err));
    }
  }

  async function loadWithdrawals() {
    try {
      const { withdrawals = [] } = await get(`/api/admin/withdrawals?status=${encodeURIComponent(wdStatus.value)}`);
      clear(wdBox, withdrawals.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", "When"), h("th", "User"), h("th.amount", "Tokens"), h("th.amount", "Net USDT"), h("th", "To"), h("th", "Status"), h("th", ""))),
        h("tbody", withdrawals.map((w) => {
          const approve = h("button.btn.ok.small", { type: "button" }, "Approve");
          const reject = h("button.btn.secondary.small", { type: "button" }, "Reject");
          approve.addEventListener("click", () => {
            if (confirm(`Send ${w.net_usdt} USDT to ${w.address}?`)) act(approve, () => post(`/api/admin/withdrawals/${encodeURIComponent(w.id)}/approve`), loadWithdrawals);
          });
          reject.addEventListener("click", () => {
            if (confirm("Reject this withdrawal and return the tokens to the seller?")) act(reject, () => post(`/api/admin/withdrawals/${encodeURIComponent(w.id)}/reject`), loadWithdrawals);
          });
          return h("tr",
            h("td.small", formatDate(w.created_at)),
            h("td", w.user_email || w.user_id || ""),
            h("td.amount", money.tokens(w.tokens)),
            h("td.amount", money.usdt(w.net_usdt)),
            h("td.mono.small", w.address),
            h("td", statusBadge(w.status), w.review_reason ? h("div.muted.small", String(w.review_reason).replace(/_/g, " ")) : null,
              w.txid ? h("div", explorerLink(app, w.txid)) : null),
            h("td", ["review", "failed", "queued"].includes(w.status) ? h("div.row", approve, reject) : null));
        })))) : h("p.empty", `No withdrawals with status ${wdStatus.value}.`));
    } catch (err) {
      clear(wdBox, errorBox(err));
    }
  }

  async function loadDeposits() {
    try {
      const { deposits = [] } = await get("/api/admin/deposits?status=unmatched");
      clear(depBox, deposits.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", "When"), h("th.amount", "USDT"), h("th", "From"), h("th", "Transaction"), h("th", "Assign to user id"))),
        h("tbody", deposits.map((d) => {
          const user = h("input", { type: "text", inputmode: "numeric", "aria-label": "User id", placeholder: "user id" });
          const btn = h("button.btn.small", { type: "button" }, "Assign");
          btn.addEventListener("click", () => {
            const uid = user.value.trim();
            if (!uid) return toast("Enter the user id to credit", "error");
            if (confirm(`Credit ${d.amount_usdt} USDT to user ${uid}?`)) act(btn, () => post(`/api/admin/deposits/${encodeURIComponent(d.txid)}/assign`, { user_id: uid }), loadDeposits);
            return undefined;
          });
          return h("tr",
            h("td.small", formatDate(d.block_time || d.recorded_at)),
            h("td.amount", money.usdt(d.amount_usdt)),
            h("td.mono.small", d.from_address || d.from || ""),
            h("td", explorerLink(app, d.txid)),
            h("td", h("div.row", user, btn)));
        })))) : h("p.empty", "No unmatched deposits. Every transfer found its buyer."));
    } catch (err) {
      clear(depBox, errorBox(err));
    }
  }

  async function loadSweeps() {
    try {
      const { sweeps = [], totals = {}, sweeper_error: nodeError } = await get("/api/admin/sweeps");
      clear(sweepBox,
        h("p.small.muted", { "data-testid": "sweep-totals" },
          `${totals.sweeps || 0} sweep(s), ${money.usdt(totals.usdt_swept || "0")} USDT moved to the hot wallet, ${totals.trx_spent || "0"} TRX burned`,
          totals.waiting ? `, ${totals.waiting} waiting` : ""),
        nodeError ? h("div.warning", `The sweeper cannot reach the node: ${nodeError}`) : null,
        sweeps.length ? h("div.table-wrap", h("table",
          h("thead", h("tr", h("th", "When"), h("th", "Address"), h("th.amount", "USDT"), h("th", "Status"), h("th.amount", "TRX burned"), h("th", "Transaction"))),
          h("tbody", sweeps.map((s) => h("tr", { "data-sweep": s.id },
            h("td.small", formatDate(s.confirmed_at || s.updated_at)),
            h("td.mono.small", s.address, h("div.muted.small", `user ${s.user_id}`)),
            h("td.amount", money.usdt(s.usdt)),
            h("td", statusBadge(s.status), s.wait_reason ? h("div.small.muted", s.wait_reason) : null,
              s.energy === "delegate" ? h("div.small.muted", `energy lent by stake: ${s.delegation || "not yet"}`) : null,
              s.failure_reason ? h("div.small.form-error", s.failure_reason) : null),
            h("td.amount", s.trx_spent),
            h("td", explorerLink(app, s.sweep_txid || s.topup_txid))))))) : h("p.empty", "No sweeps yet."));
    } catch (err) {
      clear(sweepBox, errorBox(err));
    }
  }

  async function loadDisputes() {
    if (!features.admin_disputes) {
      clear(dispBox, h("p.empty", "Disputes are not enabled on this server yet."));
      return;
    }
    try {
      const { disputes = [] } = await get("/api/admin/disputes");
      clear(dispBox, disputes.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", "Opened"), h("th", "Call"), h("th", "Reason"), h("th", "Status"), h("th", "Refund (tokens)"))),
        h("tbody", disputes.map((d) => {
          const amount = h("input", { type: "text", inputmode: "decimal", "aria-label": "Refund tokens", value: "0" });
          const btn = h("button.btn.small", { type: "button" }, "Resolve");
          btn.addEventListener("click", () => {
            const t = amount.value.trim() || "0";
            if (confirm(`Resolve with a refund of ${t} tokens?`)) act(btn, () => post(`/api/admin/disputes/${encodeURIComponent(d.id)}/resolve`, { refund_tokens: t }), loadDisputes);
          });
          const open = !d.status || d.status === "open";
          return h("tr",
            h("td.small", formatDate(d.created_at)),
            h("td.small", `#${d.call_id}`, d.call?.charged != null ? h("div.muted", `charged ${money.tokens(d.call.charged)}`) : null, recordButton(d.call_id)),
            h("td", d.reason),
            h("td", statusBadge(d.status || "open")),
            h("td", open ? h("div.row", amount, btn) : (d.refund != null ? money.tokens(d.refund) : "—")));
        })))) : h("p.empty", "No disputes."));
    } catch (err) {
      clear(dispBox, errorBox(err));
    }
  }

  const banUser = h("input", { type: "text", name: "user_id", required: true, inputmode: "numeric" });
  const banReason = h("input", { type: "text", name: "reason", maxlength: 2000, placeholder: "Kept in the audit log" });
  const banForm = h("form.inline-form",
    field("User id", banUser),
    field("Reason", banReason),
    h("button.btn.danger", { type: "submit", value: "ban" }, "Ban"),
    h("button.btn.secondary", { type: "button" }, "Unban"));
  onSubmit(banForm, async (fd) => {
    const uid = String(fd.get("user_id") || "").trim();
    const reason = String(fd.get("reason") || "").trim();
    if (!reason) throw new Error("Write why: the reason is kept in the audit log.");
    if (!confirm(`Ban user ${uid}? Their calls end and they cannot log in.`)) return;
    await post(`/api/admin/users/${encodeURIComponent(uid)}/ban`, { reason });
    toast(`User ${uid} banned`, "ok");
  });
  banForm.querySelector("button.secondary").addEventListener("click", async () => {
    const uid = banUser.value.trim();
    if (!uid) return;
    try {
      await post(`/api/admin/users/${encodeURIComponent(uid)}/unban`, { reason: banReason.value.trim() || undefined });
      toast(`User ${uid} unbanned`, "ok");
    } catch (err) {
      toast(err.message, "error");
    }
  });

  async function loadPromotions() {
    try {
      const { tiers = [], promotions = [], cost = {} } = await get("/api/admin/promotions");
      const now = Date.now();
      clear(promoBox,
        h("p", { "data-testid": "bonus-tiers" }, tiers.length
          ? ["Standing bonus on every top-up: ", tiers.map((t) => `+${t.percent}% from ${money.usdt(t.from_usdt)} USDT`).join(", "), "."]
          : "No standing bonus tiers (set economy.bonus_tiers in the config)."),
        promotions.length ? h("div.table-wrap", h("table", { "data-testid": "promotions" },
          h("thead", h("tr", h("th", "Name"), h("th.amount", "Bonus"), h("th.amount", "From USDT"), h("th", "Period"),
            h("th", "Status"), h("th.amount", "Top-ups"), h("th.amount", "Cost (tokens)"), h("th", ""))),
          h("tbody", promotions.map((p) => {
            const state = promoState(p, now);
            let endBtn = null;
            if (state !== "over") {
              endBtn = h("button.btn.secondary.small", { type: "button" }, "End now");
              endBtn.addEventListener("click", () => {
                const what = state === "active"
                  ? `End "${p.name}" now? Top-ups from now on get no promotion bonus.`
                  : `Withdraw "${p.name}"? It has not started and never will.`;
                if (confirm(what)) act(endBtn, () => post(`/api/admin/promotions/${encodeURIComponent(p.id)}/end`).catch((e) => { throw promoError(e); }), loadPromotions);
              });
            }
            return h("tr",
              h("td", p.name),
              h("td.amount", `+${p.percent}%`),
              h("td.amount", money.usdt(p.from_usdt)),
              h("td.small", h("time", { datetime: p.starts_at }, formatDate(p.starts_at)), " – ",
                h("time", { datetime: p.ends_at }, formatDate(p.ends_at))),
              h("td", h("span.badge", { class: { active: "ok", upcoming: "info" }[state] || "" }, state)),
              h("td.amount", String(p.top_ups)),
              h("td.amount", money.tokens(p.cost)),
              h("td", endBtn));
          })))) : h("p.empty", "No promotions yet."),
        h("div.stats",
          h("div.stat", h("div.label", "Tier bonuses"), h("div.value.small-value", `${money.tokens(cost.tiers)} tokens`)),
          h("div.stat", h("div.label", "Promotion bonuses"), h("div.value.small-value", `${money.tokens(cost.promotions)} tokens`)),
          h("div.stat", h("div.label", "Bonuses in all"), h("div.value.small-value", { "data-testid": "bonus-total" }, `${money.tokens(cost.total)} tokens`)),
          h("div.stat", h("div.label", "Top-ups with a bonus"), h("div.value.small-value", String(cost.top_ups_with_bonus ?? 0))),
          // The ledger's own figure next to the sum of grants: a difference is worth a look.
          h("div.stat", h("div.label", "Given by promo:bonuses"), h("div.value.small-value", `${money.tokens(cost.promo_account_given)} tokens`))));
    } catch (err) {
      clear(promoBox, errorBox(err));
    }
  }

  const startsAt = h("input", { type: "datetime-local", name: "starts_at", required: true });
  const endsAt = h("input", { type: "datetime-local", name: "ends_at", required: true });
  function resetPeriod() {
    // A promotion that starts now and runs a week: the common case, one field to change.
    const now = new Date();
    startsAt.value = localInputValue(now);
    endsAt.value = localInputValue(new Date(now.getTime() + 7 * 24 * 3600 * 1000));
  }
  resetPeriod();
  const promoForm = h("form.inline-form.promo-form", { "aria-label": "Start a promotion" },
    field("Name", h("input", { type: "text", name: "name", required: true, maxlength: 100, placeholder: "Weekend boost" })),
    field("Bonus percent", h("input", { type: "text", name: "percent", required: true, inputmode: "decimal", placeholder: "10" })),
    field("Minimum top-up (USDT, optional)", h("input", { type: "text", name: "from_usdt", inputmode: "decimal", placeholder: "0" })),
    field("Starts (your time)", startsAt),
    field("Ends (your time)", endsAt),
    h("button.btn", { type: "submit" }, "Start promotion"));
  onSubmit(promoForm, async (fd) => {
    const text = (k) => String(fd.get(k) || "").trim();
    const body = {
      name: text("name"),
      percent: text("percent"),
      starts_at: inputToIso(text("starts_at"), "Starts"),
      ends_at: inputToIso(text("ends_at"), "Ends"),
    };
    if (text("from_usdt")) body.from_usdt = text("from_usdt");
    try {
      const { promotion } = await post("/api/admin/promotions", body);
      toast(`Promotion "${promotion.name}" saved`, "ok");
    } catch (err) {
      throw promoError(err);
    }
    promoForm.reset();
    resetPeriod();
    await loadPromotions();
  });

  // Seller photos: nothing is shown to buyers before it is approved here.
  async function loadPhotos() {
    try {
      const { photos = [] } = await get("/api/admin/photos?status=pending");
      clear(photoBox, photos.length ? h("div.photo-queue", photos.map((p) => {
        const approve = h("button.btn.small", { type: "button" }, "Approve");
        const reject = h("button.btn.secondary.small", { type: "button" }, "Reject");
        approve.addEventListener("click", () => act(approve, () => post(`/api/admin/photos/${encodeURIComponent(p.id)}/approve`), loadPhotos));
        reject.addEventListener("click", () => {
          const reason = window.prompt("Why is this photo refused? The seller reads it.", "Not a clear photo of you");
          if (reason === null) return;
          act(reject, () => post(`/api/admin/photos/${encodeURIComponent(p.id)}/reject`, { reason }), loadPhotos);
        });
        return h("div.card", { "data-photo-id": p.id },
          h("img.photo-preview", { src: p.url, alt: `Photo uploaded by ${p.seller_name}` }),
          h("p.small", p.seller_name, h("span.muted", ` · ${formatDate(new Date(p.created_at_ms).toISOString())}`)),
          h("div.row", approve, reject));
      })) : h("p.empty", "No photos waiting for review."));
    } catch (err) {
      clear(photoBox, errorBox(err));
    }
  }

  async function loadWallet() {
    try {
      const r = await get("/api/admin/reconcile");
      const usdt = (v) => (v == null ? "—" : `${money.usdt(v)} USDT`);
      clear(walletBox,
        h("div.row", r.ok ? h("span.badge.ok", "Wallet covers what users hold") : h("span.badge.danger", "Does not reconcile: see the problems below")),
        h("div.stats",
          h("div.stat", h("div.label", "Hot wallet USDT"), h("div.value.small-value", { "data-testid": "hot-wallet-usdt" }, usdt(r.wallet_usdt))),
          h("div.stat", h("div.label", "Hot wallet TRX"), h("div.value.small-value", r.wallet_trx == null ? "—" : `${r.wallet_trx} TRX`)),
          h("div.stat", h("div.label", "Owed to users"), h("div.value.small-value", usdt(r.liability_usdt)))),
        r.wallet_address ? h("p.small.muted", "Address ", h("span.mono", r.wallet_address)) : null,
        (r.problems || []).map((t) => h("div.form-error", t)),
        (r.warnings || []).map((t) => h("div.warning", t)),
        r.costs ? costsView(r.costs) : null);
    } catch (err) {
      clear(walletBox, errorBox(err));
    }
  }

  // TRX the chain burned for the platform's transactions (their receipts), per day, per USDT
  // moved, and how long the hot wallet's TRX lasts at the last 7 days' pace.
  function costsView(c) {
    const t = c.total;
    const runway = c.runway;
    const days = c.per_day.filter((d) => d.transactions > 0).reverse();
    return h("div", { "data-testid": "costs" },
      h("h3", `TRX costs, last ${c.days} days`),
      h("div.stats",
        h("div.stat", h("div.label", "TRX spent"), h("div.value.small-value", { "data-testid": "trx-spent" }, `${t.trx_spent} TRX`)),
        h("div.stat", h("div.label", "USDT moved"), h("div.value.small-value", `${t.usdt_moved} USDT`)),
        h("div.stat", h("div.label", "TRX per USDT moved"), h("div.value.small-value", t.trx_per_usdt ?? "—")),
        h("div.stat", h("div.label", "TRX runway"), h("div.value.small-value", { "data-testid": "trx-runway" },
          runway.days_left == null ? "no TRX spent lately" : `${runway.days_left} days`))),
      h("p.small.muted", runway.days_left == null
        ? `Nothing was spent in the last ${runway.average_days} days.`
        : `${runway.trx_balance} TRX at ${runway.average_trx_per_day} TRX a day (the average of the last ${runway.average_days} days).`),
      days.length
        ? h("div.table-wrap", h("table", { "data-testid": "costs-table" },
          h("thead", h("tr", h("th", "Day (UTC)"), h("th", "What"), h("th.amount", "TRX spent"), h("th.amount", "USDT moved"), h("th.amount", "TRX per USDT"))),
          h("tbody", days.map((d) => h("tr",
            h("td", d.day),
            h("td", Object.entries(d.by_kind).map(([kind, k]) => `${k.transactions} ${kind}${k.transactions === 1 ? "" : "s"}`).join(", ")),
            h("td.amount", d.trx_spent),
            h("td.amount", d.usdt_moved),
            h("td.amount", d.trx_per_usdt ?? "—"))))))
        : h("p.empty", "No TRX spent in these days."));
  }
  wdStatus.addEventListener("change", loadWithdrawals);
  // Search, a user's page, the reports queue and the calls list.
  const find = findSections({ refreshFigures });

  clear(main,
    h("div.page-head", h("div", h("h1", "Operator"), h("p.muted", "Review money movements and keep the platform healthy."))),
    find.sections,
    section("Audit", auditBox, h("button.btn.secondary.small", { type: "button", onclick: loadAudit }, "Refresh")),
    features.reconcile ? section("Hot wallet", walletBox, h("button.btn.secondary.small", { type: "button", onclick: loadWallet }, "Refresh")) : null,
    section("Withdrawals", wdBox, wdStatus),
    section("Unmatched deposits", depBox),
    personal ? section("Sweeps to the hot wallet", sweepBox, h("button.btn.secondary.small", { type: "button", onclick: loadSweeps }, "Refresh")) : null,
    section("Disputes", dispBox),
    section("Seller photos", photoBox, h("button.btn.secondary.small", { type: "button", onclick: loadPhotos }, "Refresh")),
    section("Promotions", h("div", promoBox, h("h3", "Start a promotion"), promoForm),
      h("button.btn.secondary.small", { type: "button", onclick: loadPromotions }, "Refresh")),
    section("Bans", features.bans ? banForm : h("p.empty", "Bans are not enabled on this server yet.")),
    events.element);
  await Promise.all([events.load(), loadAudit(), loadWithdrawals(), loadDeposits(), personal ? loadSweeps() : null,
    loadDisputes(), loadPromotions(), loadPhotos(), features.reconcile ? loadWallet() : null, find.load()]);
  return undefined;
}
