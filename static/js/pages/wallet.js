// Wallet: balance in tokens and USDT, top-up by USDT TRC20 transfer (exact amount, address,
// QR code, TXID claim with live status; or, with deposits.mode = "address_per_user", the
// buyer's own address and its QR code, any amount from the minimum up). Once its intent is
// credited the top-up card becomes a receipt (amount, TXID, time) with no address left to
// pay again; an expired intent says so and offers a new one. Deposit history and
// ledger entries; for buyers also spending limits, a break (self-exclusion), spending per
// day and seller, and privacy. A call's ledger lines (hold, charges, release, refunds, tips)
// show as one line for the call, with its total and a link to its receipt.

import { get, post, put } from "../api.js";
import * as money from "../money.js";
import { errorText, t } from "../i18n.js";
import { clear, copyButton, errorBox, field, formatDate, h, onSubmit, plural, shortRef, statusBadge, toast } from "../ui.js";

const POLL_MS = 3000;
const INTENT_KEY = "mc_open_intent";

// Every kind the ledger writes has its words here (tests/test_wallet_labels.py fails when
// one is missing); a few older names are kept for entries written before they changed.
const KIND_LABELS = {
  deposit: "kind.deposit",
  deposit_credit: "kind.deposit_credit",
  bonus: "kind.bonus",
  tip: "kind.tip",
  earnings_release: "kind.earnings_release",
  withdrawal_sent: "kind.withdrawal_sent",
  call_hold: "kind.call_hold",
  call_minute: "kind.call_minute",
  call_release: "kind.call_release",
  call_charge: "kind.call_charge",
  call_settle: "kind.call_settle",
  call_earning: "kind.call_earning",
  call_refund: "kind.call_refund",
  refund: "kind.refund",
  withdrawal: "kind.withdrawal",
  withdrawal_fee: "kind.withdrawal_fee",
  withdrawal_return: "kind.withdrawal_return",
  dispute_refund: "kind.dispute_refund",
  commission: "kind.commission",
  adjustment: "kind.adjustment",
};

// What a seller sees for the same kinds: the buyer's charge is the seller's earning.
const SELLER_LABELS = {
  call_minute: "kind.call_earning",
  call_settle: "kind.call_earning",
  call_refund: "kind.seller_call_refund",
  tip: "kind.seller_tip",
  dispute_refund: "kind.seller_dispute_refund",
};

export function kindLabel(kind, role) {
  if (role === "seller" && SELLER_LABELS[kind]) return t(SELLER_LABELS[kind]);
  if (KIND_LABELS[kind]) return t(KIND_LABELS[kind]);
  const s = String(kind || "").replace(/[._]/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function explorerLink(app, txid) {
  if (!txid) return h("span.muted", "—");
  // A TXID is data, not words: the language test passes over it.
  const tpl = app.config?.explorer_tx_url;
  const text = txid.length > 20 ? `${txid.slice(0, 10)}…${txid.slice(-8)}` : txid;
  if (!tpl) return h("span.mono", { title: txid, "data-txid": txid, "data-i18n-skip": true }, text);
  return h("a.mono", { href: tpl.replace("{txid}", encodeURIComponent(txid)), target: "_blank", rel: "noopener noreferrer", title: txid, "data-txid": txid, "data-i18n-skip": true }, text);
}

export function qrImage(qr, alt) {
  if (!qr) return null;
  let src = qr;
  if (typeof qr === "object") src = qr.data_uri || qr.svg || qr.png || "";
  if (typeof src !== "string" || !src) return null;
  if (src.trimStart().startsWith("<svg") || src.trimStart().startsWith("<?xml")) {
    src = URL.createObjectURL(new Blob([src], { type: "image/svg+xml" }));
  } else if (!src.startsWith("data:")) {
    src = `data:image/png;base64,${src}`;
  }
  return h("img.qr", { src, alt, width: 200, height: 200 });
}

function balanceCards(balance, role) {
  const stat = (label, value, sub, testid) => h("div.stat",
    h("div.label", label), h("div.value", { "data-testid": testid }, money.tokens(value), " ", h("span.muted.small", t("header.tokens"))),
    h("div.sub", sub ?? `= ${money.tokensToUsdt(value)} USDT`));
  return h("div.stats",
    stat(t("dash.available"), balance.available, null, "balance-available"),
    role === "buyer" ? stat(t("admin.held"), balance.held, t("wallet.held_sub"), "balance-held") : null,
    role === "seller" ? stat(t("admin.pending_earnings"), balance.pending, t("wallet.pending_sub"), "balance-pending") : null);
}

// Inside a call's one line: the parts worth naming besides the minutes.
const CALL_PARTS = { tip: "wallet.tip", call_refund: "kind.call_refund", dispute_refund: "kind.dispute_refund" };

function callLine(e, role) {
  const parts = (e.kinds || []).filter((k) => CALL_PARTS[k]).map((k) => t(role === "seller" && k === "tip" ? "wallet.tip_received" : CALL_PARTS[k]));
  return h("td",
    h("a", { href: `#/calls/${encodeURIComponent(e.call_id)}` }, t(role === "seller" ? "kind.call_earning" : "kind.call_charge")),
    parts.length ? h("span.muted.small", " · ", t("wallet.incl", { parts: parts.join(", ") })) : null,
    h("div.muted.small", t("wallet.call_entries", { id: e.call_id, count: e.line_count })));
}

/** A ledger amount: signed tokens, and what they are worth in USDT beside them. */
function amountCell(amount) {
  const neg = String(amount).startsWith("-");
  return h("td.amount", { class: neg ? "neg" : "pos" }, (neg ? "" : "+") + money.tokens(amount),
    h("span.muted.small.usdt", ` ${t("wallet.tokens_usdt", { usdt: `${neg ? "-" : ""}${money.tokensToUsdt(String(amount).replace(/^-/, ""))}` })}`));
}

function ledgerTable(entries, role) {
  if (!entries.length) return h("p.empty", t("wallet.no_entries"));
  return h("div.table-wrap", h("table",
    h("thead", h("tr", h("th", t("history.when")), h("th", t("history.what")), h("th.amount", t("history.amount")), h("th.amount", t("wallet.balance_after")))),
    h("tbody", entries.map((e) => {
      if (e.kind === "call") {
        return h("tr", { "data-call-id": e.call_id },
          h("td.small", formatDate(e.at)),
          callLine(e, role),
          amountCell(e.amount),
          h("td.amount", e.balance_after != null ? money.tokens(e.balance_after) : "—"));
      }
      return h("tr", { "data-kind": e.kind },
        h("td.small", formatDate(e.at)),
        h("td", kindLabel(e.kind, role), e.bucket && e.bucket !== "available" ? h("span.muted.small", " · ", t(`bucket.${e.bucket}`)) : null,
          e.ref ? h("div.muted.small.mono", { "data-i18n-skip": true }, shortRef(e.ref)) : null),
        amountCell(e.amount),
        h("td.amount", e.balance_after != null ? money.tokens(e.balance_after) : "—"));
    }))));
}

function depositTable(deposits, app) {
  if (!deposits.length) return h("p.empty", t("wallet.no_topups"));
  return h("div.table-wrap", h("table",
    h("thead", h("tr", h("th", t("history.when")), h("th.amount", "USDT"), h("th.amount", t("dash.tokens")), h("th", t("dash.status")), h("th", t("dash.transaction")))),
    h("tbody", deposits.map((d) => h("tr", { "data-txid": d.txid || "" },
      h("td.small", formatDate(d.credited_at || d.block_time || d.claimed_at)),
      // A claim still confirming has no amount yet.
      h("td.amount", d.amount_usdt != null ? money.usdt(d.amount_usdt) : "—"),
      h("td.amount", d.tokens != null ? money.tokens(d.tokens) : "—"),
      h("td", statusBadge(d.status)),
      h("td", explorerLink(app, d.txid)))))));
}

function isExpired(intent) {
  return intent.status === "expired" || (!!intent.expires_at && new Date(intent.expires_at) <= new Date());
}

/** A receipt's TXID whole: a link to the explorer, or the text on a chain without one. */
function receiptTxid(app, txid) {
  if (!txid) return h("span.muted", "—");
  // A TXID is data, not words: the language test passes over it.
  const tpl = app.config?.explorer_tx_url;
  if (!tpl) return h("span.mono.txid", { "data-i18n-skip": true }, txid);
  return h("a.mono.txid", { href: tpl.replace("{txid}", encodeURIComponent(txid)), target: "_blank", rel: "noopener noreferrer", "data-i18n-skip": true }, txid);
}

function statusLine(kind, text) {
  return h("div.status-line", { class: kind, role: "status", "data-testid": "deposit-status" },
    kind === "warn" ? h("span.spinner", { "aria-hidden": "true" }) : null, h("span", text));
}

function limitText(tokens) {
  return tokens == null ? t("wallet.no_limit") : t("common.tokens_amount", { tokens: money.tokens(tokens) });
}

/** "" -> null (no limit); else a token amount as the server takes it, or an Error in words. */
function limitValue(text, what) {
  const s = String(text ?? "").trim().replace(/,/g, "");
  if (!s) return null;
  let units;
  try {
    units = money.toUnits(s, 4);
  } catch {
    units = -1n;
  }
  if (units < 0n) throw new Error(t(`wallet.limit_bad_${what}`));
  return money.fromUnits(units, 4, { grouped: false });
}

function pendingText(period, pending) {
  if (!pending) return null;
  const when = formatDate(pending.from);
  return pending.limit == null
    ? t(`wallet.pending_removed_${period}`, { when })
    : t(`wallet.pending_rises_${period}`, { tokens: money.tokens(pending.limit), when });
}

/** Limits, break and privacy for a buyer: one GET, re-rendered from each write's answer. */
function buyerControls(app) {
  const limitsBox = h("div", h("p.loading", t("common.loading")));
  const breakBox = h("div");
  const privacyBox = h("div");
  const spendingBox = h("div", h("p.loading", t("common.loading")));
  let note = null; // a message kept across the re-render that follows a save

  function show(limits) {
    const period = (label, limit, spent, left, testid) => h("div.stat",
      h("div.label", label),
      h("div.value", { "data-testid": testid }, limitText(limit)),
      h("div.sub", t("wallet.spent", { tokens: money.tokens(spent ?? "0") }), left != null ? t("wallet.left", { tokens: money.tokens(left) }) : ""));
    const daily = h("input", { type: "text", name: "daily", inputmode: "decimal", autocomplete: "off", placeholder: t("wallet.no_limit"), value: limits.daily ?? "" });
    const monthly = h("input", { type: "text", name: "monthly", inputmode: "decimal", autocomplete: "off", placeholder: t("wallet.no_limit"), value: limits.monthly ?? "" });
    const form = h("form.inline-form",
      field(t("wallet.daily_tokens"), daily),
      field(t("wallet.monthly_tokens"), monthly),
      h("button.btn", { type: "submit" }, t("wallet.save_limits")));
    onSubmit(form, async (fd) => {
      // Only what was changed: resending an unchanged limit would cancel a waiting raise.
      const body = {};
      const d = limitValue(fd.get("daily"), "daily");
      const m = limitValue(fd.get("monthly"), "monthly");
      if (d !== limitValue(limits.daily ?? "", "daily")) body.daily = d;
      if (m !== limitValue(limits.monthly ?? "", "monthly")) body.monthly = m;
      if (!Object.keys(body).length) throw new Error(t("wallet.nothing_changed"));
      const res = await put("/api/me/limits", body);
      note = res.limits.daily_pending || res.limits.monthly_pending
        ? t("wallet.saved_later") : t("wallet.saved_now");
      show(res.limits);
    });
    const pendings = [pendingText("daily", limits.daily_pending), pendingText("monthly", limits.monthly_pending)].filter(Boolean);
    clear(limitsBox,
      h("div.stats",
        period(t("wallet.daily"), limits.daily, limits.spent_today, limits.left_today, "limit-daily"),
        period(t("wallet.monthly"), limits.monthly, limits.spent_this_month, limits.left_this_month, "limit-monthly")),
      pendings.length ? h("div.status-line.warn.lines", { role: "status", "data-testid": "limit-pending" }, pendings.map((p) => h("div", p))) : null,
      h("p.small.muted", t("wallet.limits_rule")),
      note ? h("div.form-ok", { role: "status" }, note) : null,
      form);
    note = null;
    showBreak(limits);
    showPrivacy(limits);
  }

  function showBreak(limits) {
    const until = limits.self_excluded_until;
    const days = h("input", { type: "number", name: "days", min: 1, max: 3650, step: 1, inputmode: "numeric", required: true, value: until ? "" : "1" });
    const form = h("form.inline-form",
      field(t(until ? "wallet.extend_by" : "wallet.days"), days),
      h("button.btn.secondary", { type: "submit" }, t(until ? "wallet.extend" : "wallet.take_break")));
    onSubmit(form, async (fd) => {
      const text = String(fd.get("days") || "").trim();
      if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(t("wallet.type_days"));
      const n = Number(text);
      const ok = confirm(t("wallet.confirm_break", { days: plural(n, "count.days") }));
      if (!ok) return;
      const res = await post("/api/me/self-exclusion", { days: n });
      show(res.limits);
      app.refreshBalance();
    });
    clear(breakBox,
      until
        ? h("div.status-line.warn.lines", { role: "status", "data-testid": "break-status" },
          h("span", t("wallet.on_break", { until: formatDate(until) })))
        : h("p.muted.small", t("wallet.break_rule")),
      form);
  }

  function showPrivacy(limits) {
    const box = h("input", { type: "checkbox", name: "show_on_leaderboard", checked: !!limits.show_on_leaderboard });
    const msg = h("div", { role: "status" });
    box.addEventListener("change", async () => {
      const want = box.checked;
      box.disabled = true;
      clear(msg);
      try {
        const res = await put("/api/me/privacy", { show_on_leaderboard: want });
        box.checked = !!res.privacy.show_on_leaderboard;
        clear(msg, h("div.form-ok", t(box.checked ? "wallet.privacy_on" : "wallet.privacy_off")));
      } catch (err) {
        box.checked = !want;
        clear(msg, errorBox(err));
      } finally {
        box.disabled = false;
      }
    });
    clear(privacyBox,
      h("label.check", box, h("span", t("wallet.show_me"))),
      h("p.small.muted", { "data-testid": "privacy-rule" }, t("wallet.privacy_rule")),
      msg);
  }

  function showSpending(sp) {
    const perDay = sp.per_day || [];
    const perSeller = sp.per_seller || [];
    clear(spendingBox,
      h("p", t("wallet.last_days", { days: sp.days }), " ", h("strong", { "data-testid": "spending-total" }, t("common.tokens_amount", { tokens: money.tokens(sp.total) })),
        h("span.muted", ` (${money.tokensToUsdt(sp.total)} USDT)`)),
      h("div.grid-2",
        h("div", h("h3", t("wallet.per_day")), perDay.length ? h("div.table-wrap", h("table", { "data-testid": "spending-per-day" },
          h("thead", h("tr", h("th", t("wallet.day")), h("th.amount", t("wallet.spent_head")))),
          h("tbody", perDay.map((d) => h("tr", h("td", d.day), h("td.amount", money.tokens(d.spent)))))))
          : h("p.empty", t("wallet.nothing_spent"))),
        h("div", h("h3", t("wallet.per_seller")), perSeller.length ? h("div.table-wrap", h("table", { "data-testid": "spending-per-seller" },
          h("thead", h("tr", h("th", t("history.seller")), h("th.amount", t("nav.calls")), h("th.amount", t("history.tips")), h("th.amount", t("wallet.total")))),
          h("tbody", perSeller.map((r) => h("tr", h("td", { "data-i18n-skip": true }, r.display_name || `#${r.seller_id}`),
            h("td.amount", money.tokens(r.calls)), h("td.amount", money.tokens(r.tips)), h("td.amount", money.tokens(r.spent)))))))
          : h("p.empty", t("wallet.no_sellers")))));
  }

  async function load() {
    const [limits, spending] = await Promise.all([
      get("/api/me/limits").catch((err) => ({ error: err })),
      get("/api/me/spending?days=30").catch((err) => ({ error: err })),
    ]);
    if (limits.error) {
      clear(limitsBox, errorBox(limits.error));
    } else {
      show(limits.limits);
    }
    clear(spendingBox, spending.error ? errorBox(spending.error) : []);
    if (!spending.error) showSpending(spending.spending);
  }

  const cards = [
    h("div.grid-2",
      h("section.card", h("h2", t("wallet.limits")), limitsBox),
      h("div",
        h("section.card", h("h2", t("wallet.take_break")), breakBox),
        h("section.card", h("h2", t("wallet.privacy")), privacyBox))),
    h("section.card", h("h2", t("wallet.spending")), spendingBox),
  ];
  return { cards, load };
}

export async function render(main, _route, app) {
  const isBuyer = app.me.role === "buyer";
  const balanceBox = h("div");
  const topupBox = h("div");
  const depositsBox = h("div");
  const ledgerBox = h("div");
  let timer = null;
  let watching = null; // {txid?, amount_usdt?} a top-up we wait for
  const controls = isBuyer ? buyerControls(app) : null;

  async function refresh() {
    const [me, ledger, deposits] = await Promise.all([
      get("/api/me"),
      get("/api/ledger?group=calls").catch((err) => ({ error: err })),
      isBuyer ? get("/api/deposits").catch((err) => ({ error: err })) : null,
    ]);
    app.balance = me.balance;
    app.renderHeader();
    clear(balanceBox, balanceCards(me.balance, app.me.role));
    clear(ledgerBox, ledger.error ? errorBox(ledger.error) : ledgerTable(ledger.entries || [], app.me.role));
    if (deposits) {
      clear(depositsBox, deposits.error ? errorBox(deposits.error) : depositTable(deposits.deposits || [], app));
      if (watching && !deposits.error) checkWatched(deposits.deposits || [], deposits.intents || []);
    }
  }

  function checkWatched(deposits, intents) {
    // The intent itself says best: paid (with its receipt) or expired.
    const mine = watching.intentId && intents.find((i) => String(i.id) === String(watching.intentId));
    if (mine?.paid) {
      const { onReceipt } = watching;
      watching = null;
      sessionStorage.removeItem(INTENT_KEY);
      onReceipt?.(mine);
      return;
    }
    if (mine && (mine.status === "expired" || isExpired(mine))) {
      watching.onExpired?.(mine);
      return;
    }
    const match = deposits.find((d) => (watching.txid && String(d.txid).toLowerCase() === watching.txid)
      || (!watching.txid && watching.amount_usdt && d.amount_usdt === watching.amount_usdt));
    if (!match) return;
    if (match.status === "credited") {
      watching.onCredited?.(match);
      watching = null;
      sessionStorage.removeItem(INTENT_KEY);
    } else {
      watching.onStatus?.(match);
    }
  }

  function showIntentForm() {
    const min = app.config?.deposit_min_usdt || "3";
    const amount = h("input", { type: "text", name: "usdt", inputmode: "decimal", required: true, value: "10", autocomplete: "off" });
    const form = h("form.inline-form",
      field(t("wallet.amount_usdt"), amount, t("wallet.at_least", { min })),
      h("button.btn", { type: "submit" }, t("wallet.get_details")));
    const preview = h("p.muted.small", { "aria-live": "polite" });
    const update = () => {
      preview.textContent = money.isPositive(amount.value, 6)
        ? t("wallet.will_receive", { tokens: money.usdtToTokens(amount.value) })
        : "";
    };
    amount.addEventListener("input", update);
    update();
    onSubmit(form, async (fd) => {
      const value = String(fd.get("usdt")).trim();
      if (!money.isPositive(value, 6)) throw new Error(t("wallet.enter_amount"));
      const { intent } = await post("/api/deposits/intents", { usdt: value });
      sessionStorage.setItem(INTENT_KEY, JSON.stringify(intent));
      showIntent(intent);
    });
    clear(topupBox, h("h2", t("wallet.topup_title")),
      h("p.muted", t("wallet.topup_intro")),
      form, preview);
  }

  async function showPersonalAddress() {
    let mine;
    try {
      mine = await get("/api/deposits/address");
    } catch (err) {
      clear(topupBox, h("h2", t("wallet.topup_title")), errorBox(err));
      return;
    }
    const pending = mine.pending_usdt && mine.pending_usdt !== "0"
      ? h("p.small", { "data-testid": "deposit-pending" }, t("wallet.pending_personal", { usdt: money.usdt(mine.pending_usdt), min: mine.min_usdt }))
      : null;
    clear(topupBox,
      h("h2", t("wallet.topup_title")),
      h("div.topup-grid",
        qrImage(mine.qr, t("wallet.qr_yours")) || h("div"),
        h("div.stack",
          h("p", { "data-testid": "deposit-instructions" }, t("wallet.send_any", { min: mine.min_usdt })),
          h("div", h("div.muted.small", t("wallet.your_address")),
            h("div.addr-box", h("span.mono", { "data-testid": "deposit-address", "data-i18n-skip": true }, mine.address), copyButton(mine.address, t("wallet.copy_address"), t("wallet.address_copied")))),
          h("p.small.muted", t("wallet.personal_rule")),
          pending)));
  }

  function showIntent(intent) {
    const status = h("div", statusLine("", t("wallet.waiting")));
    const txid = h("input", { type: "text", name: "txid", required: true, autocomplete: "off", spellcheck: "false", placeholder: t("wallet.txid_placeholder"), pattern: "[0-9a-fA-F]{64}" });
    const claim = h("form.inline-form",
      field(t("wallet.txid"), txid, t("wallet.txid_hint")),
      h("button.btn", { type: "submit" }, t("wallet.check")));
    const setStatus = (kind, text) => clear(status, statusLine(kind, text));
    let expiredShown = false;
    watching = {
      intentId: intent.id,
      amount_usdt: intent.amount_usdt,
      onStatus: (d) => setStatus("warn", t("wallet.confirming_status", { status: t(`status.${d.status}`) })),
      onCredited: (d) => {
        toast(t("wallet.credited_toast", { tokens: money.tokens(d.tokens) }), "ok");
        showReceipt(intent, { txid: d.txid, credited_at: d.credited_at, amount_usdt: d.amount_usdt, tokens: d.tokens });
      },
      onReceipt: (i) => {
        toast(t("wallet.credited_toast", { tokens: money.tokens(i.paid.tokens) }), "ok");
        showReceipt(i, i.paid);
      },
      onExpired: (i) => {
        if (!expiredShown) showExpired(i);
        expiredShown = true;
      },
    };
    if (isExpired(intent)) {
      watching.onExpired(intent);
      return;
    }
    // A TXID pasted right after sending may not be in a block yet, and a found transfer
    // counts only once final: keep asking until it is credited or refused.
    async function claimUntilDone(txid) {
      for (let attempt = 0; attempt < 60 && watching && watching.txid === txid; attempt += 1) {
        let d = null;
        try {
          d = (await post("/api/deposits/claim", { txid })).deposit || {};
        } catch (err) {
          if (err.code === "tx_not_found") {
            setStatus("warn", t("wallet.not_yet"));
          } else if (err.code === "already_credited") {
            await refresh();
            return;
          } else {
            setStatus("danger", errorText(err));
            claim.hidden = false;
            return;
          }
        }
        if (d?.status === "credited") {
          await refresh();
          const w = watching;
          watching = null;
          w?.onCredited?.(d);
          sessionStorage.removeItem(INTENT_KEY);
          return;
        }
        if (d) setStatus("warn", t("wallet.found"));
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    onSubmit(claim, async (fd) => {
      const value = String(fd.get("txid")).trim().replace(/^0x/i, "");
      if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new Error(t("wallet.txid_bad"));
      if (!watching) return;
      watching.txid = value.toLowerCase();
      claim.hidden = true;
      setStatus("warn", t("wallet.checking"));
      await claimUntilDone(watching.txid);
    });
    const expires = intent.expires_at ? t("wallet.valid_until", { until: formatDate(intent.expires_at) }) : "";
    clear(topupBox,
      h("div.spread", h("h2", t("wallet.send_exactly")),
        h("button.linkish", { type: "button", onclick: () => { sessionStorage.removeItem(INTENT_KEY); watching = null; showIntentForm(); } }, t("dash.cancel"))),
      h("div.topup-grid",
        qrImage(intent.qr, t("wallet.qr_platform")) || h("div"),
        h("div.stack",
          h("div", h("div.muted.small", t("wallet.amount_label")),
            h("div.row", h("span.exact-amount", { "data-testid": "exact-amount" }, intent.amount_usdt), copyButton(intent.amount_usdt, t("wallet.copy_amount"), t("wallet.amount_copied")))),
          h("p.small.muted", t("wallet.exact_rule"), expires ? [" ", expires] : null),
          h("div", h("div.muted.small", t("wallet.to_address")),
            h("div.addr-box", h("span.mono", { "data-testid": "deposit-address", "data-i18n-skip": true }, intent.address), copyButton(intent.address, t("wallet.copy_address"), t("wallet.address_copied")))),
          h("p.small.muted", t("wallet.only_usdt")))),
      h("hr", { class: "sep" }),
      status,
      claim);
  }

  /** The top-up paid: what arrived, its TXID and when; no address or QR code to pay again. */
  function showReceipt(intent, paid) {
    const amount = paid.amount_usdt || intent.amount_usdt;
    const tokens = paid.tokens || intent.tokens;
    clear(topupBox,
      h("h2", t("wallet.received")),
      h("div.status-line.ok", { role: "status", "data-testid": "deposit-status" },
        h("span", t("wallet.credited", { tokens: money.tokens(tokens) }))),
      h("dl.receipt", { "data-testid": "topup-receipt" },
        h("dt", t("history.amount")), h("dd", { "data-testid": "receipt-amount" }, `${money.usdt(amount)} USDT`, h("span.muted", ` = ${t("common.tokens_amount", { tokens: money.tokens(tokens) })}`)),
        h("dt", t("wallet.receipt_txid")), h("dd", { "data-testid": "receipt-txid" }, receiptTxid(app, paid.txid)),
        h("dt", t("wallet.credited_at")), h("dd", { "data-testid": "receipt-time" }, paid.credited_at ? formatDate(paid.credited_at) : t("wallet.just_now"))),
      h("p.small.muted", t("wallet.receipt_rule")),
      h("button.btn.secondary", { type: "button", onclick: () => showIntentForm() }, t("wallet.new_topup")));
  }

  /** An intent past its time: said plainly, and a new top-up offered instead of its address. */
  function showExpired(intent) {
    clear(topupBox,
      h("h2", t("wallet.expired_title")),
      h("div.status-line.danger", { role: "status", "data-testid": "deposit-status" },
        h("span", t("wallet.expired_text", { usdt: intent.amount_usdt, until: formatDate(intent.expires_at) }))),
      h("p.small.muted", t("wallet.expired_rule")),
      h("button.btn", { type: "button", onclick: () => { sessionStorage.removeItem(INTENT_KEY); watching = null; showIntentForm(); } }, t("wallet.new_topup")));
  }

  clear(main,
    h("div.page-head", h("div", h("h1", t("nav.wallet")), h("p.muted", t("wallet.sub")))),
    h("section.card", h("h2", t("wallet.balance")), balanceBox),
    isBuyer ? h("section.card", topupBox) : h("section.card",
      h("h2", t("wallet.withdraw_earnings")), h("p", t("wallet.withdraw_where"), " ", h("a", { href: "#/dashboard" }, t("wallet.dashboard_link")), ".")),
    controls ? controls.cards : null,
    isBuyer ? h("section.card", h("h2", t("promo.top_ups")), depositsBox) : null,
    h("section.card", h("h2", t("admin.ledger")), h("p.muted.small", t("wallet.ledger_sub")), ledgerBox));

  const personal = app.config?.deposit_mode === "address_per_user";
  const saved = isBuyer && !personal ? sessionStorage.getItem(INTENT_KEY) : null;
  let savedIntent = null;
  try {
    savedIntent = saved ? JSON.parse(saved) : null;
  } catch {
    savedIntent = null;
  }
  // A saved intent comes back as it stands: open, expired (said so) or, once the list
  // below is read, paid (its receipt).
  if (savedIntent) showIntent(savedIntent);
  else if (isBuyer && personal) await showPersonalAddress();
  else if (isBuyer) showIntentForm();
  await Promise.all([refresh(), controls?.load()]);
  timer = setInterval(() => refresh().catch(() => {}), POLL_MS);
  return () => {
    clearInterval(timer);
    watching = null;
  };
}
