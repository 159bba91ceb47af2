// Operator page: audit figures, withdrawals waiting for review, unmatched deposits, sweeps of
// personal deposit addresses (address_per_user: status, USDT, TRX burned, why one waits),
// disputes (each with its call's record, the chat included: admin_calls.js), bans, top-up
// promotions, seller photos waiting for review; user search, a user's page, the reports
// queue and calls (admin_find.js); events (admin_events.js). Every action asks for
// confirmation; every answer is shown.

import { get, post } from "../api.js";
import * as money from "../money.js";
import { errorText, t } from "../i18n.js";
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
    shown = value.length ? value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ") : t("admin.none");
    bad = value.length > 0;
  } else if (value && typeof value === "object") {
    shown = JSON.stringify(value);
  }
  // The figures are named by the audit's own keys (ledger identifiers): shown as they are.
  return h("div.stat", h("div.label", { "data-i18n-skip": true }, label),
    h("div.value.small-value", { class: bad ? "neg-figure" : "", "data-i18n-skip": Array.isArray(value) && value.length ? true : null }, String(shown)));
}

async function act(button, fn, done) {
  button.disabled = true;
  try {
    await fn();
    toast(t("admin.done"), "ok");
    // Money moved: the audit and wallet figures change with the list.
    await Promise.all([done(), refreshFigures()]);
  } catch (err) {
    toast(errorText(err), "error");
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
  if (!value || Number.isNaN(d.getTime())) throw new Error(t("admin.pick_date", { label }));
  return d.toISOString();
}

function promoState(p, now = Date.now()) {
  if (p.active) return "active";
  return Date.parse(p.starts_at) > now ? "upcoming" : "over";
}

// The API's own message names its fields (ends_at); the form's labels are what the operator sees.
const PROMO_ERRORS = { invalid_period: "promo.invalid_period", promotion_over: "promo.over_already" };

function promoError(err) {
  return PROMO_ERRORS[err?.code] ? Object.assign(new Error(t(PROMO_ERRORS[err.code])), { code: err.code }) : err;
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
  const wdStatus = h("select.auto", { "aria-label": t("admin.wd_status") },
    ["review", "queued", "signed", "sent", "failed", "confirmed", "rejected"].map((s) => h("option", { value: s }, t(`status.${s}`))));

  async function loadAudit() {
    try {
      const a = await get("/api/admin/audit");
      const entries = Object.entries(a).filter(([k]) => k !== "_status");
      clear(auditBox,
        h("div.row", a.ok ? h("span.badge.ok", t("admin.ledger_ok")) : h("span.badge.danger", t("admin.ledger_bad"))),
        h("div.stats", { class: "audit-figures" }, entries.filter(([k]) => k !== "ok").map(([k, v]) => figure(k, v))));
    } catch (err) {
      clear(auditBox, errorBox(err));
    }
  }

  async function loadWithdrawals() {
    try {
      const { withdrawals = [] } = await get(`/api/admin/withdrawals?status=${encodeURIComponent(wdStatus.value)}`);
      clear(wdBox, withdrawals.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", t("history.when")), h("th", t("admin.user")), h("th.amount", t("dash.tokens")), h("th.amount", t("admin.net_usdt")), h("th", t("dash.to")), h("th", t("dash.status")), h("th", ""))),
        h("tbody", withdrawals.map((w) => {
          const approve = h("button.btn.ok.small", { type: "button" }, t("admin.approve"));
          const reject = h("button.btn.secondary.small", { type: "button" }, t("admin.reject"));
          approve.addEventListener("click", () => {
            if (confirm(t("admin.confirm_send", { usdt: w.net_usdt, address: w.address }))) act(approve, () => post(`/api/admin/withdrawals/${encodeURIComponent(w.id)}/approve`), loadWithdrawals);
          });
          reject.addEventListener("click", () => {
            if (confirm(t("admin.confirm_reject_wd"))) act(reject, () => post(`/api/admin/withdrawals/${encodeURIComponent(w.id)}/reject`), loadWithdrawals);
          });
          return h("tr",
            h("td.small", formatDate(w.created_at)),
            h("td", { "data-i18n-skip": true }, w.user_email || w.user_id || ""),
            h("td.amount", money.tokens(w.tokens)),
            h("td.amount", money.usdt(w.net_usdt)),
            h("td.mono.small", { "data-i18n-skip": true }, w.address),
            h("td", statusBadge(w.status), w.review_reason ? h("div.muted.small", { "data-i18n-skip": true }, String(w.review_reason).replace(/_/g, " ")) : null,
              w.txid ? h("div", { "data-i18n-skip": true }, explorerLink(app, w.txid)) : null),
            h("td", ["review", "failed", "queued"].includes(w.status) ? h("div.row", approve, reject) : null));
        })))) : h("p.empty", t("admin.no_wd_status", { status: t(`status.${wdStatus.value}`) })));
    } catch (err) {
      clear(wdBox, errorBox(err));
    }
  }

  async function loadDeposits() {
    try {
      const { deposits = [] } = await get("/api/admin/deposits?status=unmatched");
      clear(depBox, deposits.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", t("history.when")), h("th.amount", "USDT"), h("th", t("admin.from")), h("th", t("dash.transaction")), h("th", t("admin.assign_to")))),
        h("tbody", deposits.map((d) => {
          const user = h("input", { type: "text", inputmode: "numeric", "aria-label": t("admin.user_id"), placeholder: t("admin.user_id_placeholder") });
          const btn = h("button.btn.small", { type: "button" }, t("admin.assign"));
          btn.addEventListener("click", () => {
            const uid = user.value.trim();
            if (!uid) return toast(t("admin.enter_uid"), "error");
            if (confirm(t("admin.confirm_credit", { usdt: d.amount_usdt, uid }))) act(btn, () => post(`/api/admin/deposits/${encodeURIComponent(d.txid)}/assign`, { user_id: uid }), loadDeposits);
            return undefined;
          });
          return h("tr",
            h("td.small", formatDate(d.block_time || d.recorded_at)),
            h("td.amount", money.usdt(d.amount_usdt)),
            h("td.mono.small", { "data-i18n-skip": true }, d.from_address || d.from || ""),
            h("td", { "data-i18n-skip": true }, explorerLink(app, d.txid)),
            h("td", h("div.row", user, btn)));
        })))) : h("p.empty", t("admin.no_unmatched")));
    } catch (err) {
      clear(depBox, errorBox(err));
    }
  }

  async function loadSweeps() {
    try {
      const { sweeps = [], totals = {}, sweeper_error: nodeError } = await get("/api/admin/sweeps");
      clear(sweepBox,
        h("p.small.muted", { "data-testid": "sweep-totals" },
          t("sweeps.totals", { n: totals.sweeps || 0, usdt: money.usdt(totals.usdt_swept || "0"), trx: totals.trx_spent || "0" }),
          totals.waiting ? `, ${t("sweeps.waiting", { n: totals.waiting })}` : ""),
        nodeError ? h("div.warning", t("sweeps.node_error"), " ", h("span", { "data-i18n-skip": true }, nodeError)) : null,
        sweeps.length ? h("div.table-wrap", h("table",
          h("thead", h("tr", h("th", t("history.when")), h("th", t("account.address")), h("th.amount", "USDT"), h("th", t("dash.status")), h("th.amount", t("sweeps.trx_burned")), h("th", t("dash.transaction")))),
          h("tbody", sweeps.map((s) => h("tr", { "data-sweep": s.id },
            h("td.small", formatDate(s.confirmed_at || s.updated_at)),
            h("td.mono.small", h("span", { "data-i18n-skip": true }, s.address), h("div.muted.small", t("sweeps.user", { id: s.user_id }))),
            h("td.amount", money.usdt(s.usdt)),
            h("td", statusBadge(s.status), s.wait_reason ? h("div.small.muted", { "data-i18n-skip": true }, s.wait_reason) : null,
              s.energy === "delegate" ? h("div.small.muted", t("sweeps.lent"), " ", h("span", { "data-i18n-skip": true }, s.delegation || t("sweeps.not_yet"))) : null,
              s.failure_reason ? h("div.small.form-error", { "data-i18n-skip": true }, s.failure_reason) : null),
            h("td.amount", s.trx_spent),
            h("td", { "data-i18n-skip": true }, explorerLink(app, s.sweep_txid || s.topup_txid))))))) : h("p.empty", t("sweeps.none")));
    } catch (err) {
      clear(sweepBox, errorBox(err));
    }
  }

  async function loadDisputes() {
    if (!features.admin_disputes) {
      clear(dispBox, h("p.empty", t("disputes.off")));
      return;
    }
    try {
      const { disputes = [] } = await get("/api/admin/disputes");
      clear(dispBox, disputes.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", t("disputes.opened")), h("th", t("title.call")), h("th", t("admin.reason")), h("th", t("dash.status")), h("th", t("disputes.refund")))),
        h("tbody", disputes.map((d) => {
          const amount = h("input", { type: "text", inputmode: "decimal", "aria-label": t("disputes.refund_tokens"), value: "0" });
          const btn = h("button.btn.small", { type: "button" }, t("disputes.resolve"));
          btn.addEventListener("click", () => {
            const tk = amount.value.trim() || "0";
            if (confirm(t("disputes.confirm", { tokens: tk }))) act(btn, () => post(`/api/admin/disputes/${encodeURIComponent(d.id)}/resolve`, { refund_tokens: tk }), loadDisputes);
          });
          const open = !d.status || d.status === "open";
          return h("tr",
            h("td.small", formatDate(d.created_at)),
            h("td.small", `#${d.call_id}`, d.call?.charged != null ? h("div.muted", t("disputes.charged", { tokens: money.tokens(d.call.charged) })) : null, recordButton(d.call_id)),
            h("td", { "data-i18n-skip": true }, d.reason),
            h("td", statusBadge(d.status || "open")),
            h("td", open ? h("div.row", amount, btn) : (d.refund != null ? money.tokens(d.refund) : "—")));
        })))) : h("p.empty", t("disputes.none")));
    } catch (err) {
      clear(dispBox, errorBox(err));
    }
  }

  const banUser = h("input", { type: "text", name: "user_id", required: true, inputmode: "numeric" });
  const banReason = h("input", { type: "text", name: "reason", maxlength: 2000, placeholder: t("admin.kept_in_audit") });
  const banForm = h("form.inline-form",
    field(t("admin.user_id"), banUser),
    field(t("admin.reason"), banReason),
    h("button.btn.danger", { type: "submit", value: "ban" }, t("admin.ban")),
    h("button.btn.secondary", { type: "button" }, t("admin.unban")));
  onSubmit(banForm, async (fd) => {
    const uid = String(fd.get("user_id") || "").trim();
    const reason = String(fd.get("reason") || "").trim();
    if (!reason) throw new Error(t("admin.write_why"));
    if (!confirm(t("admin.confirm_ban_uid", { uid }))) return;
    await post(`/api/admin/users/${encodeURIComponent(uid)}/ban`, { reason });
    toast(t("admin.banned_uid", { uid }), "ok");
  });
  banForm.querySelector("button.secondary").addEventListener("click", async () => {
    const uid = banUser.value.trim();
    if (!uid) return;
    try {
      await post(`/api/admin/users/${encodeURIComponent(uid)}/unban`, { reason: banReason.value.trim() || undefined });
      toast(t("admin.unbanned_uid", { uid }), "ok");
    } catch (err) {
      toast(errorText(err), "error");
    }
  });

  async function loadPromotions() {
    try {
      const { tiers = [], promotions = [], cost = {} } = await get("/api/admin/promotions");
      const now = Date.now();
      clear(promoBox,
        h("p", { "data-testid": "bonus-tiers" }, tiers.length
          ? [t("promo.standing"), " ", tiers.map((tier) => t("promo.tier", { percent: tier.percent, usdt: money.usdt(tier.from_usdt) })).join(", "), "."]
          : t("promo.no_tiers")),
        promotions.length ? h("div.table-wrap", h("table", { "data-testid": "promotions" },
          h("thead", h("tr", h("th", t("admin.name")), h("th.amount", t("promo.bonus")), h("th.amount", t("promo.from_usdt")), h("th", t("promo.period")),
            h("th", t("dash.status")), h("th.amount", t("promo.top_ups")), h("th.amount", t("promo.cost")), h("th", ""))),
          h("tbody", promotions.map((p) => {
            const state = promoState(p, now);
            let endBtn = null;
            if (state !== "over") {
              endBtn = h("button.btn.secondary.small", { type: "button" }, t("promo.end_now"));
              endBtn.addEventListener("click", () => {
                const what = state === "active"
                  ? t("promo.confirm_end", { name: p.name })
                  : t("promo.confirm_withdraw", { name: p.name });
                if (confirm(what)) act(endBtn, () => post(`/api/admin/promotions/${encodeURIComponent(p.id)}/end`).catch((e) => { throw promoError(e); }), loadPromotions);
              });
            }
            return h("tr",
              h("td", { "data-i18n-skip": true }, p.name),
              h("td.amount", `+${p.percent}%`),
              h("td.amount", money.usdt(p.from_usdt)),
              h("td.small", h("time", { datetime: p.starts_at }, formatDate(p.starts_at)), " – ",
                h("time", { datetime: p.ends_at }, formatDate(p.ends_at))),
              h("td", h("span.badge", { class: { active: "ok", upcoming: "info" }[state] || "" }, t(`promo.state_${state}`))),
              h("td.amount", String(p.top_ups)),
              h("td.amount", money.tokens(p.cost)),
              h("td", endBtn));
          })))) : h("p.empty", t("promo.none")),
        h("div.stats",
          h("div.stat", h("div.label", t("promo.tier_bonuses")), h("div.value.small-value", t("common.tokens_amount", { tokens: money.tokens(cost.tiers) }))),
          h("div.stat", h("div.label", t("promo.promo_bonuses")), h("div.value.small-value", t("common.tokens_amount", { tokens: money.tokens(cost.promotions) }))),
          h("div.stat", h("div.label", t("promo.all_bonuses")), h("div.value.small-value", { "data-testid": "bonus-total" }, t("common.tokens_amount", { tokens: money.tokens(cost.total) }))),
          h("div.stat", h("div.label", t("promo.with_bonus")), h("div.value.small-value", String(cost.top_ups_with_bonus ?? 0))),
          // The ledger's own figure next to the sum of grants: a difference is worth a look.
          h("div.stat", h("div.label", t("promo.given")), h("div.value.small-value", t("common.tokens_amount", { tokens: money.tokens(cost.promo_account_given) })))));
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
  const promoForm = h("form.inline-form.promo-form", { "aria-label": t("promo.start_title") },
    field(t("admin.name"), h("input", { type: "text", name: "name", required: true, maxlength: 100, placeholder: t("promo.name_example") })),
    field(t("promo.percent"), h("input", { type: "text", name: "percent", required: true, inputmode: "decimal", placeholder: "10" })),
    field(t("promo.minimum"), h("input", { type: "text", name: "from_usdt", inputmode: "decimal", placeholder: "0" })),
    field(t("promo.starts"), startsAt),
    field(t("promo.ends"), endsAt),
    h("button.btn", { type: "submit" }, t("promo.start")));
  onSubmit(promoForm, async (fd) => {
    const text = (k) => String(fd.get(k) || "").trim();
    const body = {
      name: text("name"),
      percent: text("percent"),
      starts_at: inputToIso(text("starts_at"), t("promo.starts")),
      ends_at: inputToIso(text("ends_at"), t("promo.ends")),
    };
    if (text("from_usdt")) body.from_usdt = text("from_usdt");
    try {
      const { promotion } = await post("/api/admin/promotions", body);
      toast(t("promo.saved", { name: promotion.name }), "ok");
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
        const approve = h("button.btn.small", { type: "button" }, t("admin.approve"));
        const reject = h("button.btn.secondary.small", { type: "button" }, t("admin.reject"));
        approve.addEventListener("click", () => act(approve, () => post(`/api/admin/photos/${encodeURIComponent(p.id)}/approve`), loadPhotos));
        reject.addEventListener("click", () => {
          const reason = window.prompt(t("photos.why"), t("photos.default_reason"));
          if (reason === null) return;
          act(reject, () => post(`/api/admin/photos/${encodeURIComponent(p.id)}/reject`, { reason }), loadPhotos);
        });
        return h("div.card", { "data-photo-id": p.id },
          h("img.photo-preview", { src: p.url, alt: t("photos.alt", { name: p.seller_name }) }),
          h("p.small", h("span", { "data-i18n-skip": true }, p.seller_name), h("span.muted", ` · ${formatDate(new Date(p.created_at_ms).toISOString())}`)),
          h("div.row", approve, reject));
      })) : h("p.empty", t("photos.none")));
    } catch (err) {
      clear(photoBox, errorBox(err));
    }
  }

  async function loadWallet() {
    try {
      const r = await get("/api/admin/reconcile");
      const usdt = (v) => (v == null ? "—" : `${money.usdt(v)} USDT`);
      clear(walletBox,
        h("div.row", r.ok ? h("span.badge.ok", t("wallet_admin.ok")) : h("span.badge.danger", t("wallet_admin.bad"))),
        h("div.stats",
          h("div.stat", h("div.label", t("wallet_admin.usdt")), h("div.value.small-value", { "data-testid": "hot-wallet-usdt" }, usdt(r.wallet_usdt))),
          h("div.stat", h("div.label", t("wallet_admin.trx")), h("div.value.small-value", r.wallet_trx == null ? "—" : `${r.wallet_trx} TRX`)),
          h("div.stat", h("div.label", t("wallet_admin.owed")), h("div.value.small-value", usdt(r.liability_usdt)))),
        r.wallet_address ? h("p.small.muted", t("account.address"), " ", h("span.mono", { "data-i18n-skip": true }, r.wallet_address)) : null,
        // The reconciliation's findings are the server's words (out of the catalogue).
        (r.problems || []).map((p) => h("div.form-error", { "data-i18n-skip": true }, p)),
        (r.warnings || []).map((w) => h("div.warning", { "data-i18n-skip": true }, w)),
        r.costs ? costsView(r.costs) : null);
    } catch (err) {
      clear(walletBox, errorBox(err));
    }
  }

  // TRX the chain burned for the platform's transactions (their receipts), per day, per USDT
  // moved, and how long the hot wallet's TRX lasts at the last 7 days' pace.
  function costsView(c) {
    const tot = c.total;
    const runway = c.runway;
    const days = c.per_day.filter((d) => d.transactions > 0).reverse();
    return h("div", { "data-testid": "costs" },
      h("h3", t("costs.title", { days: c.days })),
      h("div.stats",
        h("div.stat", h("div.label", t("costs.trx_spent")), h("div.value.small-value", { "data-testid": "trx-spent" }, `${tot.trx_spent} TRX`)),
        h("div.stat", h("div.label", t("costs.usdt_moved")), h("div.value.small-value", `${tot.usdt_moved} USDT`)),
        h("div.stat", h("div.label", t("costs.per_usdt_moved")), h("div.value.small-value", tot.trx_per_usdt ?? "—")),
        h("div.stat", h("div.label", t("costs.runway")), h("div.value.small-value", { "data-testid": "trx-runway" },
          runway.days_left == null ? t("costs.none_lately") : t("costs.days", { days: runway.days_left })))),
      h("p.small.muted", runway.days_left == null
        ? t("costs.nothing", { days: runway.average_days })
        : t("costs.pace", { trx: runway.trx_balance, per_day: runway.average_trx_per_day, days: runway.average_days })),
      days.length
        ? h("div.table-wrap", h("table", { "data-testid": "costs-table" },
          h("thead", h("tr", h("th", t("costs.day")), h("th", t("history.what")), h("th.amount", t("costs.trx_spent")), h("th.amount", t("costs.usdt_moved")), h("th.amount", t("costs.per_usdt")))),
          h("tbody", days.map((d) => h("tr",
            h("td", d.day),
            h("td", { "data-i18n-skip": true }, Object.entries(d.by_kind).map(([kind, k]) => `${k.transactions} ${kind}${k.transactions === 1 ? "" : "s"}`).join(", ")),
            h("td.amount", d.trx_spent),
            h("td.amount", d.usdt_moved),
            h("td.amount", d.trx_per_usdt ?? "—"))))))
        : h("p.empty", t("costs.none")));
  }
  wdStatus.addEventListener("change", loadWithdrawals);
  // Search, a user's page, the reports queue and the calls list.
  const find = findSections({ refreshFigures });

  clear(main,
    h("div.page-head", h("div", h("h1", t("nav.admin")), h("p.muted", t("admin.sub")))),
    find.sections,
    section(t("admin.audit"), auditBox, h("button.btn.secondary.small", { type: "button", onclick: loadAudit }, t("events.refresh"))),
    features.reconcile ? section(t("admin.hot_wallet"), walletBox, h("button.btn.secondary.small", { type: "button", onclick: loadWallet }, t("events.refresh"))) : null,
    section(t("dash.withdrawals"), wdBox, wdStatus),
    section(t("admin.unmatched"), depBox),
    personal ? section(t("admin.sweeps"), sweepBox, h("button.btn.secondary.small", { type: "button", onclick: loadSweeps }, t("events.refresh"))) : null,
    section(t("admin.disputes"), dispBox),
    section(t("admin.photos"), photoBox, h("button.btn.secondary.small", { type: "button", onclick: loadPhotos }, t("events.refresh"))),
    section(t("admin.promotions"), h("div", promoBox, h("h3", t("promo.start_title")), promoForm),
      h("button.btn.secondary.small", { type: "button", onclick: loadPromotions }, t("events.refresh"))),
    section(t("admin.bans"), features.bans ? banForm : h("p.empty", t("admin.bans_off"))),
    events.element);
  await Promise.all([events.load(), loadAudit(), loadWithdrawals(), loadDeposits(), personal ? loadSweeps() : null,
    loadDisputes(), loadPromotions(), loadPhotos(), features.reconcile ? loadWallet() : null, find.load()]);
  return undefined;
}
