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
import { clear, copyButton, errorBox, field, formatDate, h, onSubmit, plural, shortRef, statusBadge, toast } from "../ui.js";

const POLL_MS = 3000;
const INTENT_KEY = "mc_open_intent";

// Every kind the ledger writes has its words here (tests/test_wallet_labels.py fails when
// one is missing); a few older names are kept for entries written before they changed.
const KIND_LABELS = {
  deposit: "Top-up",
  deposit_credit: "Top-up",
  bonus: "Top-up bonus",
  tip: "Tip sent",
  earnings_release: "Earnings released to your balance",
  withdrawal_sent: "Withdrawal sent",
  call_hold: "Held for call",
  call_minute: "Call minute",
  call_release: "Hold released",
  call_charge: "Call charge",
  call_settle: "Call charge",
  call_earning: "Call earnings",
  call_refund: "Call refund",
  refund: "Refund",
  withdrawal: "Withdrawal requested",
  withdrawal_fee: "Withdrawal fee",
  withdrawal_return: "Withdrawal returned",
  dispute_refund: "Dispute refund",
  commission: "Commission",
  adjustment: "Adjustment",
};

// What a seller sees for the same kinds: the buyer's charge is the seller's earning.
const SELLER_LABELS = {
  call_minute: "Call earnings",
  call_settle: "Call earnings",
  call_refund: "Call refunded to the buyer",
  tip: "Tip received",
  dispute_refund: "Dispute refund to the buyer",
};

export function kindLabel(kind, role) {
  if (role === "seller" && SELLER_LABELS[kind]) return SELLER_LABELS[kind];
  if (KIND_LABELS[kind]) return KIND_LABELS[kind];
  const s = String(kind || "").replace(/[._]/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function explorerLink(app, txid) {
  if (!txid) return h("span.muted", "—");
  const tpl = app.config?.explorer_tx_url;
  const text = txid.length > 20 ? `${txid.slice(0, 10)}…${txid.slice(-8)}` : txid;
  if (!tpl) return h("span.mono", { title: txid, "data-txid": txid }, text);
  return h("a.mono", { href: tpl.replace("{txid}", encodeURIComponent(txid)), target: "_blank", rel: "noopener noreferrer", title: txid, "data-txid": txid }, text);
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
    h("div.label", label), h("div.value", { "data-testid": testid }, money.tokens(value), h("span.muted.small", " tokens")),
    h("div.sub", sub ?? `= ${money.tokensToUsdt(value)} USDT`));
  return h("div.stats",
    stat("Available", balance.available, null, "balance-available"),
    role === "buyer" ? stat("Held in calls", balance.held, "Reserved for the minute in progress", "balance-held") : null,
    role === "seller" ? stat("Pending earnings", balance.pending, "Released after the hold period", "balance-pending") : null);
}

// Inside a call's one line: the parts worth naming besides the minutes.
const CALL_PARTS = { tip: "Tip", call_refund: "Call refund", dispute_refund: "Dispute refund" };

function callLine(e, role) {
  const parts = (e.kinds || []).filter((k) => CALL_PARTS[k]).map((k) => (role === "seller" && k === "tip" ? "Tip received" : CALL_PARTS[k]));
  return h("td",
    h("a", { href: `#/calls/${encodeURIComponent(e.call_id)}` }, role === "seller" ? "Call earnings" : "Call charge"),
    parts.length ? h("span.muted.small", ` · incl. ${parts.join(", ")}`) : null,
    h("div.muted.small", `call ${e.call_id} · ${e.line_count} ${e.line_count === 1 ? "entry" : "entries"}`));
}

/** A ledger amount: signed tokens, and what they are worth in USDT beside them. */
function amountCell(amount) {
  const neg = String(amount).startsWith("-");
  return h("td.amount", { class: neg ? "neg" : "pos" }, (neg ? "" : "+") + money.tokens(amount),
    h("span.muted.small.usdt", ` tokens (${neg ? "-" : ""}${money.tokensToUsdt(String(amount).replace(/^-/, ""))} USDT)`));
}

function ledgerTable(entries, role) {
  if (!entries.length) return h("p.empty", "No entries yet.");
  return h("div.table-wrap", h("table",
    h("thead", h("tr", h("th", "When"), h("th", "What"), h("th.amount", "Amount"), h("th.amount", "Balance after"))),
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
        h("td", kindLabel(e.kind, role), e.bucket && e.bucket !== "available" ? h("span.muted.small", ` · ${e.bucket}`) : null,
          e.ref ? h("div.muted.small.mono", shortRef(e.ref)) : null),
        amountCell(e.amount),
        h("td.amount", e.balance_after != null ? money.tokens(e.balance_after) : "—"));
    }))));
}

function depositTable(deposits, app) {
  if (!deposits.length) return h("p.empty", "No top-ups yet.");
  return h("div.table-wrap", h("table",
    h("thead", h("tr", h("th", "When"), h("th.amount", "USDT"), h("th.amount", "Tokens"), h("th", "Status"), h("th", "Transaction"))),
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
  const tpl = app.config?.explorer_tx_url;
  if (!tpl) return h("span.mono.txid", txid);
  return h("a.mono.txid", { href: tpl.replace("{txid}", encodeURIComponent(txid)), target: "_blank", rel: "noopener noreferrer" }, txid);
}

function statusLine(kind, text) {
  return h("div.status-line", { class: kind, role: "status", "data-testid": "deposit-status" },
    kind === "warn" ? h("span.spinner", { "aria-hidden": "true" }) : null, h("span", text));
}

const NO_LIMIT = "No limit";

function limitText(tokens) {
  return tokens == null ? NO_LIMIT : `${money.tokens(tokens)} tokens`;
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
  if (units < 0n) throw new Error(`The ${what} limit is a number of tokens, like 500, or empty for no limit.`);
  return money.fromUnits(units, 4, { grouped: false });
}

function pendingText(period, pending) {
  if (!pending) return null;
  const when = formatDate(pending.from);
  return pending.limit == null
    ? `Your ${period} limit will be removed on ${when}.`
    : `Your ${period} limit rises to ${money.tokens(pending.limit)} tokens on ${when}.`;
}

/** Limits, break and privacy for a buyer: one GET, re-rendered from each write's answer. */
function buyerControls(app) {
  const limitsBox = h("div", h("p.loading", "Loading…"));
  const breakBox = h("div");
  const privacyBox = h("div");
  const spendingBox = h("div", h("p.loading", "Loading…"));
  let note = null; // a message kept across the re-render that follows a save

  function show(limits) {
    const period = (label, limit, spent, left, testid) => h("div.stat",
      h("div.label", label),
      h("div.value", { "data-testid": testid }, limitText(limit)),
      h("div.sub", `Spent ${money.tokens(spent ?? "0")} tokens`, left != null ? `, ${money.tokens(left)} left` : ""));
    const daily = h("input", { type: "text", name: "daily", inputmode: "decimal", autocomplete: "off", placeholder: NO_LIMIT, value: limits.daily ?? "" });
    const monthly = h("input", { type: "text", name: "monthly", inputmode: "decimal", autocomplete: "off", placeholder: NO_LIMIT, value: limits.monthly ?? "" });
    const form = h("form.inline-form",
      field("Daily limit (tokens)", daily),
      field("Monthly limit (tokens)", monthly),
      h("button.btn", { type: "submit" }, "Save limits"));
    onSubmit(form, async (fd) => {
      // Only what was changed: resending an unchanged limit would cancel a waiting raise.
      const body = {};
      const d = limitValue(fd.get("daily"), "daily");
      const m = limitValue(fd.get("monthly"), "monthly");
      if (d !== limitValue(limits.daily ?? "", "daily")) body.daily = d;
      if (m !== limitValue(limits.monthly ?? "", "monthly")) body.monthly = m;
      if (!Object.keys(body).length) throw new Error("Nothing changed. Type a new limit, or empty a box for no limit.");
      const res = await put("/api/me/limits", body);
      note = res.limits.daily_pending || res.limits.monthly_pending
        ? "Saved. A higher limit (or none) takes effect after 24 hours; lower limits apply at once."
        : "Saved. The new limits apply now.";
      show(res.limits);
    });
    const pendings = [pendingText("daily", limits.daily_pending), pendingText("monthly", limits.monthly_pending)].filter(Boolean);
    clear(limitsBox,
      h("div.stats",
        period("Daily limit", limits.daily, limits.spent_today, limits.left_today, "limit-daily"),
        period("Monthly limit", limits.monthly, limits.spent_this_month, limits.left_this_month, "limit-monthly")),
      pendings.length ? h("div.status-line.warn.lines", { role: "status", "data-testid": "limit-pending" }, pendings.map((t) => h("div", t))) : null,
      h("p.small.muted", "Days and months are in UTC. A lower limit applies at once; a higher one, or none, only after 24 hours, so a decision made in the moment can wait."),
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
      field(until ? "Extend by (days)" : "Days", days),
      h("button.btn.secondary", { type: "submit" }, until ? "Extend the break" : "Take a break"));
    onSubmit(form, async (fd) => {
      const text = String(fd.get("days") || "").trim();
      if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error("Type a number of days, like 7.");
      const n = Number(text);
      const ok = confirm(`Take a break for ${plural(n, "day")}? Until it ends you cannot start calls, send tips or ask for new top-ups, and it cannot be shortened.`);
      if (!ok) return;
      const res = await post("/api/me/self-exclusion", { days: n });
      show(res.limits);
      app.refreshBalance();
    });
    clear(breakBox,
      until
        ? h("div.status-line.warn.lines", { role: "status", "data-testid": "break-status" },
          h("span", `You are taking a break until ${formatDate(until)}. Calls, tips and new top-ups are refused until then; transfers that arrive are still credited.`))
        : h("p.muted.small", "Pause yourself for a number of days: no calls, tips or new top-ups until it ends. Transfers already on their way are still credited. A break can be extended, never shortened."),
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
        clear(msg, h("div.form-ok", box.checked ? "Sellers you support can now show your name." : "Your name is no longer shown on supporter boards."));
      } catch (err) {
        box.checked = !want;
        clear(msg, errorBox(err));
      } finally {
        box.disabled = false;
      }
    });
    clear(privacyBox,
      h("label.check", box, h("span", "Show me on sellers' supporter boards")),
      h("p.small.muted", { "data-testid": "privacy-rule" }, "Off by default: sellers' supporter boards and their own stats then count you without your name. When on, your display name (never your amounts) can appear among the top supporters of the sellers you paid. Sellers always see your display name in a call with you."),
      msg);
  }

  function showSpending(sp) {
    const perDay = sp.per_day || [];
    const perSeller = sp.per_seller || [];
    clear(spendingBox,
      h("p", "Last ", String(sp.days), " days: ", h("strong", { "data-testid": "spending-total" }, `${money.tokens(sp.total)} tokens`),
        h("span.muted", ` (${money.tokensToUsdt(sp.total)} USDT)`)),
      h("div.grid-2",
        h("div", h("h3", "Per day (UTC)"), perDay.length ? h("div.table-wrap", h("table", { "data-testid": "spending-per-day" },
          h("thead", h("tr", h("th", "Day"), h("th.amount", "Spent"))),
          h("tbody", perDay.map((d) => h("tr", h("td", d.day), h("td.amount", money.tokens(d.spent)))))))
          : h("p.empty", "Nothing spent in this period.")),
        h("div", h("h3", "Per seller"), perSeller.length ? h("div.table-wrap", h("table", { "data-testid": "spending-per-seller" },
          h("thead", h("tr", h("th", "Seller"), h("th.amount", "Calls"), h("th.amount", "Tips"), h("th.amount", "Total"))),
          h("tbody", perSeller.map((r) => h("tr", h("td", r.display_name || `#${r.seller_id}`),
            h("td.amount", money.tokens(r.calls)), h("td.amount", money.tokens(r.tips)), h("td.amount", money.tokens(r.spent)))))))
          : h("p.empty", "No sellers in this period."))));
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
      h("section.card", h("h2", "Spending limits"), limitsBox),
      h("div",
        h("section.card", h("h2", "Take a break"), breakBox),
        h("section.card", h("h2", "Privacy"), privacyBox))),
    h("section.card", h("h2", "Spending"), spendingBox),
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
      field("Amount in USDT", amount, `At least ${min} USDT. 1 USDT = 100 tokens.`),
      h("button.btn", { type: "submit" }, "Get payment details"));
    const preview = h("p.muted.small", { "aria-live": "polite" });
    const update = () => {
      preview.textContent = money.isPositive(amount.value, 6)
        ? `You will receive ${money.usdtToTokens(amount.value)} tokens, plus a tiny unique amount that identifies your transfer.`
        : "";
    };
    amount.addEventListener("input", update);
    update();
    onSubmit(form, async (fd) => {
      const value = String(fd.get("usdt")).trim();
      if (!money.isPositive(value, 6)) throw new Error("Enter an amount in USDT, like 10 or 25.5");
      const { intent } = await post("/api/deposits/intents", { usdt: value });
      sessionStorage.setItem(INTENT_KEY, JSON.stringify(intent));
      showIntent(intent);
    });
    clear(topupBox, h("h2", "Top up with USDT (TRC20)"),
      h("p.muted", "Send USDT on the TRON network to the platform address. Your tokens are credited once the transfer is final on chain, usually within a minute or two."),
      form, preview);
  }

  async function showPersonalAddress() {
    let mine;
    try {
      mine = await get("/api/deposits/address");
    } catch (err) {
      clear(topupBox, h("h2", "Top up with USDT (TRC20)"), errorBox(err));
      return;
    }
    const pending = mine.pending_usdt && mine.pending_usdt !== "0"
      ? h("p.small", { "data-testid": "deposit-pending" }, `${money.usdt(mine.pending_usdt)} USDT received so far: credited once your transfers reach ${mine.min_usdt} USDT together.`)
      : null;
    clear(topupBox,
      h("h2", "Top up with USDT (TRC20)"),
      h("div.topup-grid",
        qrImage(mine.qr, "QR code of your deposit address") || h("div"),
        h("div.stack",
          h("p", { "data-testid": "deposit-instructions" }, `Send any amount of at least ${mine.min_usdt} USDT (TRC20) to your own address below, from any wallet or exchange.`),
          h("div", h("div.muted.small", "Your deposit address (TRON)"),
            h("div.addr-box", h("span.mono", { "data-testid": "deposit-address" }, mine.address), copyButton(mine.address, "Copy address", "Address copied"))),
          h("p.small.muted", "This address is yours alone and stays the same. Tokens are credited once the transfer is final on chain, usually within a minute or two (1 USDT = 100 tokens). Smaller transfers add up. Only USDT on TRON (TRC20) can be credited."),
          pending)));
  }

  function showIntent(intent) {
    const status = h("div", statusLine("", "Waiting for your transfer. It is detected automatically; pasting the TXID makes it faster."));
    const txid = h("input", { type: "text", name: "txid", required: true, autocomplete: "off", spellcheck: "false", placeholder: "64 hexadecimal characters", pattern: "[0-9a-fA-F]{64}" });
    const claim = h("form.inline-form",
      field("Transaction ID (TXID)", txid, "Find it in your wallet's transaction details after sending."),
      h("button.btn", { type: "submit" }, "Check transfer"));
    const setStatus = (kind, text) => clear(status, statusLine(kind, text));
    let expiredShown = false;
    watching = {
      intentId: intent.id,
      amount_usdt: intent.amount_usdt,
      onStatus: (d) => setStatus("warn", `Confirming on chain (${d.status}). This takes about a minute.`),
      onCredited: (d) => {
        toast(`Top-up credited: ${money.tokens(d.tokens)} tokens`, "ok");
        showReceipt(intent, { txid: d.txid, credited_at: d.credited_at, amount_usdt: d.amount_usdt, tokens: d.tokens });
      },
      onReceipt: (i) => {
        toast(`Top-up credited: ${money.tokens(i.paid.tokens)} tokens`, "ok");
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
            setStatus("warn", "Not on chain yet. We keep checking; this page updates by itself.");
          } else if (err.code === "already_credited") {
            await refresh();
            return;
          } else {
            setStatus("danger", err.message);
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
        if (d) setStatus("warn", "Confirming on chain. The transfer was found; it counts once final, usually within a minute. You can leave this page.");
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    onSubmit(claim, async (fd) => {
      const value = String(fd.get("txid")).trim().replace(/^0x/i, "");
      if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new Error("A TXID is 64 hexadecimal characters (0-9, a-f). Copy it from your wallet.");
      if (!watching) return;
      watching.txid = value.toLowerCase();
      claim.hidden = true;
      setStatus("warn", "Checking the transfer…");
      await claimUntilDone(watching.txid);
    });
    const expires = intent.expires_at ? `Valid until ${formatDate(intent.expires_at)}.` : "";
    clear(topupBox,
      h("div.spread", h("h2", "Send exactly this amount"),
        h("button.linkish", { type: "button", onclick: () => { sessionStorage.removeItem(INTENT_KEY); watching = null; showIntentForm(); } }, "Cancel")),
      h("div.topup-grid",
        qrImage(intent.qr, "QR code of the deposit address") || h("div"),
        h("div.stack",
          h("div", h("div.muted.small", "Amount (USDT, TRC20)"),
            h("div.row", h("span.exact-amount", { "data-testid": "exact-amount" }, intent.amount_usdt), copyButton(intent.amount_usdt, "Copy amount", "Amount copied"))),
          h("p.small.muted", "Send this exact amount, including every decimal: the last digits tell us the top-up is yours. " + expires),
          h("div", h("div.muted.small", "To address (TRON)"),
            h("div.addr-box", h("span.mono", { "data-testid": "deposit-address" }, intent.address), copyButton(intent.address, "Copy address", "Address copied"))),
          h("p.small.muted", "Only USDT on TRON (TRC20). Other tokens or networks cannot be credited."))),
      h("hr", { class: "sep" }),
      status,
      claim);
  }

  /** The top-up paid: what arrived, its TXID and when; no address or QR code to pay again. */
  function showReceipt(intent, paid) {
    const amount = paid.amount_usdt || intent.amount_usdt;
    const tokens = paid.tokens || intent.tokens;
    clear(topupBox,
      h("h2", "Top-up received"),
      h("div.status-line.ok", { role: "status", "data-testid": "deposit-status" },
        h("span", `Credited: ${money.tokens(tokens)} tokens added to your balance.`)),
      h("dl.receipt", { "data-testid": "topup-receipt" },
        h("dt", "Amount"), h("dd", { "data-testid": "receipt-amount" }, `${money.usdt(amount)} USDT`, h("span.muted", ` = ${money.tokens(tokens)} tokens`)),
        h("dt", "Transaction (TXID)"), h("dd", { "data-testid": "receipt-txid" }, receiptTxid(app, paid.txid)),
        h("dt", "Credited"), h("dd", { "data-testid": "receipt-time" }, paid.credited_at ? formatDate(paid.credited_at) : "Just now")),
      h("p.small.muted", "This top-up is complete and its amount is used up: do not send it again. For more tokens, start a new top-up; it gets its own amount."),
      h("button.btn.secondary", { type: "button", onclick: () => showIntentForm() }, "New top-up"));
  }

  /** An intent past its time: said plainly, and a new top-up offered instead of its address. */
  function showExpired(intent) {
    clear(topupBox,
      h("h2", "This top-up has expired"),
      h("div.status-line.danger", { role: "status", "data-testid": "deposit-status" },
        h("span", `The amount ${intent.amount_usdt} USDT was valid until ${formatDate(intent.expires_at)}. Do not send it now.`)),
      h("p.small.muted", "A transfer you already sent is still credited if it arrives within 24 hours of that time; it then shows in Top-ups below. To pay now, start a new top-up: it gets a fresh amount."),
      h("button.btn", { type: "button", onclick: () => { sessionStorage.removeItem(INTENT_KEY); watching = null; showIntentForm(); } }, "New top-up"));
  }

  clear(main,
    h("div.page-head", h("div", h("h1", "Wallet"), h("p.muted", "100 tokens = 1 USDT, always."))),
    h("section.card", h("h2", "Balance"), balanceBox),
    isBuyer ? h("section.card", topupBox) : h("section.card",
      h("h2", "Withdraw earnings"), h("p", "Withdrawals to your TRON address are on your ", h("a", { href: "#/dashboard" }, "dashboard"), ".")),
    controls ? controls.cards : null,
    isBuyer ? h("section.card", h("h2", "Top-ups"), depositsBox) : null,
    h("section.card", h("h2", "Ledger"), h("p.muted.small", "Every movement of your balance, newest first."), ledgerBox));

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
