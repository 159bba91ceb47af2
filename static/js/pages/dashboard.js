// Seller dashboard: online toggle, rate and profile, earnings, withdrawals to a TRON address.

import { get, post, put } from "../api.js";
import * as money from "../money.js";
import { errorText, formatNumber, t } from "../i18n.js";
import { clear, errorBox, field, formatDate, h, newIdempotencyKey, onSubmit, plural, statusBadge, toast } from "../ui.js";
import { unlock } from "../sound.js";
import { explorerLink } from "./wallet.js";

const FINAL = new Set(["confirmed", "failed", "rejected"]);
const POLL_MS = 4000;

function list(v) {
  if (Array.isArray(v)) return v.join(", ");
  return v || "";
}

function splitList(text) {
  return String(text || "").split(",").map((s) => s.trim()).filter(Boolean);
}

async function loadProfile() {
  return (await get("/api/seller/profile")).seller; // null before the first save
}

/** What a minute at `rate` earns after a commission of `percent` (a decimal string), in
 * tokens: the split the billing makes of each minute (the platform's part rounds down). */
export function earnsPerMinute(rate, percent) {
  const price = BigInt(rate) * 10000n; // µUSDT a minute
  const ppm = money.toUnits(String(percent ?? "0"), 4); // percent with 4 decimals = ppm
  return money.fromUnits(price - (price * ppm) / 1000000n, 4, { minDecimals: 0, grouped: false });
}

export async function render(main, _route, app) {
  let seller = await loadProfile();
  const statusBox = h("div");
  const profileBox = h("div");
  const earningsBox = h("div");
  const withdrawBox = h("div");
  const historyBox = h("div");
  const statsBox = h("div");
  let timer = null;

  // Analytics from GET /api/seller/stats; the chart is an SVG drawn by the server.
  async function renderStats() {
    const s = (await get("/api/seller/stats")).stats;
    const busiest = [...s.busiest_hours].sort((a, b) => Number(b.minutes) - Number(a.minutes))[0];
    const hasBusy = busiest && Number(busiest.minutes) > 0;
    clear(statsBox,
      h("img.chart", { src: `/api/seller/stats/chart.svg?t=${Date.now()}`, alt: t("dash.chart_alt"), width: 640, height: 220 }),
      h("div.stats",
        h("div.stat", h("div.label", t("dash.minutes_billed")), h("div.value", { "data-testid": "minutes-billed" }, s.minutes_billed), h("div.sub", { "data-testid": "calls-count" }, plural(s.calls, "count.calls"))),
        h("div.stat", h("div.label", t("dash.average_call")), h("div.value", t("dash.minutes_short", { min: formatNumber(Math.round(s.average_call_seconds / 60 * 10) / 10) })), h("div.sub", t("dash.seconds_short", { s: s.average_call_seconds }))),
        h("div.stat", h("div.label", t("history.tips")), h("div.value", money.tokens(s.tips_total)), h("div.sub", t("dash.tokens_earned"))),
        h("div.stat", h("div.label", t("dash.busiest_hour")), h("div.value", hasBusy ? `${String(busiest.hour_utc).padStart(2, "0")}:00` : "—"), h("div.sub", "UTC"))),
      // Named only when they opted in (as the buyers are told), never with amounts.
      h("div", { "data-testid": "supporters" }, h("h3", t("dash.top_supporters")),
        s.top_supporters.length
          ? h("ol", { "data-testid": "top-supporters" }, s.top_supporters.map((sup) => h("li", { "data-i18n-skip": true }, sup.display_name)))
          : null,
        s.supporters_not_shown
          ? h("p.small.muted", { "data-testid": "supporters-not-shown" },
            plural(s.supporters_not_shown, s.top_supporters.length ? "dash.and_private" : "dash.private"))
          : null,
        !s.top_supporters.length && !s.supporters_not_shown ? h("p.empty", t("dash.no_supporters")) : null,
        h("p.small.muted", t("dash.supporters_rule"))));
  }

  function renderStatus() {
    const online = Boolean(seller?.online);
    const hasRate = seller && Number(seller.rate) > 0;
    const toggle = h("button", { type: "button", role: "switch", "aria-checked": String(online), "aria-labelledby": "online-label", disabled: !hasRate, "data-testid": "online-toggle" });
    toggle.addEventListener("click", async () => {
      unlock(); // the click lets the ring sound play later
      toggle.disabled = true;
      try {
        const res = await put("/api/seller/status", { online: !online });
        seller = { ...seller, ...(res.seller || { online: !online }) };
        toast(t(seller.online ? "dash.now_online" : "dash.now_offline"), "ok");
      } catch (err) {
        toast(errorText(err), "error");
      }
      renderStatus();
    });
    clear(statusBox,
      h("div.spread",
        h("label.switch", toggle, h("span", { id: "online-label" }, t(online ? "dash.online_label" : "sellers.offline"))),
        online ? h("span.badge.ok", h("span.dot.on"), t("dash.visible")) : h("span.badge", t("dash.hidden"))),
      hasRate ? h("p.muted.small", t("dash.ring_hint"))
        : h("p.muted.small", t("dash.set_rate_first")));
  }

  function renderProfile() {
    const min = app.config?.min_rate ?? 1;
    const max = app.config?.max_rate ?? 10000;
    const rate = h("input", { type: "number", name: "rate", min, max, step: 1, required: true, inputmode: "numeric", value: seller?.rate ?? "" });
    const bio = h("textarea", { name: "bio", maxlength: 1000 });
    bio.value = seller?.bio || "";
    const tags = h("input", { type: "text", name: "tags", value: list(seller?.tags), placeholder: t("dash.tags_example") });
    const langs = h("input", { type: "text", name: "languages", value: list(seller?.languages), placeholder: t("dash.langs_example") });
    const usdtHint = h("span");
    const commission = seller?.commission_percent ?? app.config?.commission_percent ?? "0";
    const updateHint = () => {
      if (!/^\d+$/.test(rate.value)) {
        usdtHint.textContent = "";
        return;
      }
      const earns = earnsPerMinute(rate.value, commission);
      usdtHint.textContent = ` ${t("dash.rate_hint", { rate: rate.value, usdt: money.tokensToUsdt(rate.value), percent: commission, earns: money.tokens(earns), earns_usdt: money.tokensToUsdt(earns) })}`;
    };
    rate.addEventListener("input", updateHint);
    updateHint();
    const form = h("form",
      field(t("dash.rate"), rate, h("span", { "data-testid": "rate-hint" }, t("dash.between", { min, max }), usdtHint)),
      field(t("dash.about"), bio, t("dash.about_hint")),
      field(t("dash.tags"), tags, t("dash.comma")),
      field(t("dash.languages"), langs, t("dash.comma")),
      h("button.btn", { type: "submit" }, t("dash.save_profile")));
    onSubmit(form, async (fd) => {
      const r = String(fd.get("rate") || "").trim();
      if (!/^\d+$/.test(r)) throw new Error(t("dash.rate_whole"));
      const res = await put("/api/seller/profile", {
        rate: Number(r), bio: String(fd.get("bio") || ""),
        tags: splitList(fd.get("tags")), languages: splitList(fd.get("languages")),
      });
      seller = { ...seller, ...(res.seller || {}) };
      toast(t("dash.profile_saved"), "ok");
      renderStatus();
    });
    clear(profileBox, form);
  }

  function renderWithdrawForm() {
    // null with an "auto" network fee: only the server's quote knows it (per address).
    const localFees = app.config?.withdrawal_fees_musdt;
    const fees = localFees == null ? null : BigInt(localFees);
    const minUsdt = app.config?.withdrawal_min_usdt ?? "3";
    const tokens = h("input", { type: "text", name: "tokens", inputmode: "decimal", required: true, autocomplete: "off" });
    const address = h("input", { type: "text", name: "address", required: true, autocomplete: "off", spellcheck: "false", placeholder: t("dash.address_placeholder"), maxlength: 34 });
    const preview = h("p.small", { "aria-live": "polite", "data-testid": "withdraw-preview" });
    const otp = app.me.two_factor
      ? field(t("dash.otp"), h("input", { type: "text", name: "otp", inputmode: "numeric", autocomplete: "one-time-code", required: true }))
      : null;
    const validAddress = (a) => /^T[1-9A-HJ-NP-Za-km-z]{33}$/.test(a);
    // The server's quote for (tokens, address): the fee the request confirms (fee_tokens).
    let quoted = null;
    let quoteTimer = null;
    let quoteSeq = 0;
    const describe = (q) => {
      const network = q.network_fee_mode === "auto"
        ? t("dash.fee_auto", {
          usdt: q.network_fee_usdt, energy: formatNumber(Number(q.energy)), energy_price: q.energy_price_sun,
          bytes: q.bandwidth_bytes, bandwidth_price: formatNumber(Number(q.bandwidth_price_sun)),
          trx: q.network_fee_trx, trx_price: q.trx_usdt_price,
        })
        : t("dash.fee_energy", { usdt: q.network_fee_usdt });
      return t("dash.quote", { net: q.net_usdt, fee: q.fee_usdt, platform: q.platform_fee_usdt, network });
    };
    const fetchQuote = async () => {
      const tk = tokens.value.trim();
      const a = address.value.trim();
      const seq = ++quoteSeq;
      try {
        const res = await get(`/api/withdrawals/quote?address=${encodeURIComponent(a)}&tokens=${encodeURIComponent(tk)}`);
        if (seq !== quoteSeq) return null;
        quoted = { key: `${tk}|${a}`, quote: res.quote };
        preview.textContent = describe(res.quote);
        return quoted;
      } catch (err) {
        if (seq === quoteSeq) preview.textContent = errorText(err);
        return null;
      }
    };
    const update = () => {
      quoted = null;
      clearTimeout(quoteTimer);
      if (!money.isPositive(tokens.value, 4)) {
        preview.textContent = "";
        return;
      }
      if (fees != null) {
        const net = money.tokensToMusdt(tokens.value) - fees;
        preview.textContent = net > 0n
          ? t("dash.quote_local", { net: money.fromUnits(net, 6), fee: money.fromUnits(fees, 6) })
          : t("dash.below_fees", { fee: money.fromUnits(fees, 6) });
      } else if (!validAddress(address.value.trim())) {
        preview.textContent = t("dash.enter_address");
      }
      if (validAddress(address.value.trim())) quoteTimer = setTimeout(fetchQuote, 250);
    };
    address.addEventListener("input", update);
    tokens.addEventListener("input", update);
    let key = null;
    let keyFor = "";
    const form = h("form",
      field(t("dash.tokens"), tokens, h("span", t("dash.minimum", { usdt: minUsdt }), " ",
        h("button.linkish", { type: "button", onclick: () => { tokens.value = app.balance?.available || ""; update(); } }, t("dash.withdraw_all")))),
      field(t("dash.address"), address, t("dash.address_hint")),
      otp,
      preview,
      h("button.btn", { type: "submit" }, t("dash.withdraw")));
    onSubmit(form, async (fd) => {
      const tk = String(fd.get("tokens") || "").trim();
      const a = String(fd.get("address") || "").trim();
      if (!money.isPositive(tk, 4)) throw new Error(t("dash.enter_tokens"));
      if (!/^T[1-9A-HJ-NP-Za-km-z]{33}$/.test(a)) throw new Error(t("dash.bad_address"));
      // A retry of the same request (e.g. after a timeout) reuses the key: it cannot pay twice.
      if (keyFor !== `${tk}|${a}`) {
        key = newIdempotencyKey();
        keyFor = `${tk}|${a}`;
      }
      // The fee shown is the fee confirmed: the server refuses another (409 fee_changed).
      let shown = quoted && quoted.key === `${tk}|${a}` ? quoted : null;
      if (!shown) {
        clearTimeout(quoteTimer);
        shown = await fetchQuote();
        if (!shown) throw new Error(preview.textContent || t("dash.fee_unread"));
        if (fees == null) throw new Error(t("dash.check_fee"));
      }
      const body = { tokens: tk, address: a, fee_tokens: shown.quote.fee_tokens };
      if (otp) body.otp = String(fd.get("otp") || "").trim();
      let res;
      try {
        res = await post("/api/withdrawals", body, { headers: { "Idempotency-Key": key } });
      } catch (err) {
        if (err.code === "fee_changed") await fetchQuote();
        throw err;
      }
      keyFor = "";
      const w = res.withdrawal || {};
      toast(t(w.status === "review" ? "dash.requested_review"
        : w.reason === "new_address_hold" ? "dash.requested_hold" : "dash.requested"), "ok");
      form.reset();
      update();
      await refresh();
    });
    clear(withdrawBox, form);
  }

  function historyTable(withdrawals) {
    if (!withdrawals.length) return h("p.empty", t("dash.no_withdrawals"));
    return h("div.table-wrap", h("table", { "data-testid": "withdrawals" },
      h("thead", h("tr", h("th", t("history.when")), h("th.amount", t("dash.tokens")), h("th.amount", t("dash.you_receive")), h("th", t("dash.to")), h("th", t("dash.status")), h("th", t("dash.transaction")))),
      h("tbody", withdrawals.map((w) => h("tr", { "data-withdrawal-id": w.id, "data-status": w.status },
        h("td.small", formatDate(w.created_at || w.at)),
        h("td.amount", money.tokens(w.tokens)),
        h("td.amount", w.net_usdt != null ? `${money.usdt(w.net_usdt)} USDT` : "—"),
        h("td.mono.small", { title: w.address, "data-i18n-skip": true }, w.address ? `${w.address.slice(0, 6)}…${w.address.slice(-4)}` : ""),
        h("td", statusBadge(w.status), w.reason ? h("div.muted.small", w.reason === "new_address_hold" ? t("dash.held_new_address") : w.reason) : null,
          w.status === "queued" || w.status === "review"
            ? h("button.btn.secondary.small", { type: "button", onclick: () => cancelWithdrawal(w.id) }, t("dash.cancel")) : null),
        h("td", explorerLink(app, w.txid)))))));
  }

  async function cancelWithdrawal(id) {
    try {
      await post(`/api/withdrawals/${encodeURIComponent(id)}/cancel`);
      toast(t("dash.cancelled"), "ok");
    } catch (err) {
      toast(errorText(err), "error");
    }
    await refresh();
  }

  async function refresh() {
    const [me, stats, wd] = await Promise.all([
      get("/api/me"),
      get("/api/seller/stats").then((r) => r.stats).catch(() => null),
      get("/api/withdrawals").catch((err) => ({ error: err })),
    ]);
    app.balance = me.balance;
    app.renderHeader();
    // Today, this week and this month count the same things, from the server's stats: call
    // earnings and tips after the commission, less refunds, per UTC day, week and month.
    const last = (rows) => (stats && rows?.length ? rows[rows.length - 1].earned : "0");
    const period = (label, testid, rows) => h("div.stat", h("div.label", label),
      h("div.value", { "data-testid": testid }, money.tokens(last(rows))), h("div.sub", t("dash.tips_included")));
    clear(earningsBox, h("div.stats",
      period(t("dash.today"), "earned-today", stats?.per_day),
      period(t("dash.week"), "earned-week", stats?.per_week),
      period(t("dash.month"), "earned-month", stats?.per_month),
      h("div.stat", h("div.label", t("dash.available")), h("div.value", { "data-testid": "seller-available" }, money.tokens(me.balance.available)), h("div.sub", `= ${money.tokensToUsdt(me.balance.available)} USDT`)),
      money.isPositive(me.balance.pending, 4) ? h("div.stat", h("div.label", t("dash.pending")), h("div.value", money.tokens(me.balance.pending)), h("div.sub", t("dash.released"))) : null),
    h("p.small.muted", { "data-testid": "earnings-rule" }, t("dash.earnings_rule")));
    if (wd.error) clear(historyBox, errorBox(wd.error));
    else clear(historyBox, historyTable(wd.withdrawals || []));
    return wd.withdrawals || [];
  }

  // The photo: what buyers see (once approved), the upload waiting for review, a refusal.
  const photoBox = h("div", { "data-testid": "photo" });
  async function renderPhoto() {
    const mine = await get("/api/seller/photo");
    const input = h("input", { type: "file", name: "photo", accept: "image/jpeg,image/png,image/webp" });
    const form = h("form.stack", field(t("dash.upload_photo"), input, t("dash.photo_hint")),
      h("button.btn", { type: "submit" }, t("dash.upload")));
    onSubmit(form, async () => {
      const file = input.files?.[0];
      if (!file) throw new Error(t("dash.choose_photo"));
      await put("/api/seller/photo", file);
      toast(t("dash.photo_uploaded"), "ok");
      await renderPhoto();
    });
    const shown = mine.approved;
    clear(photoBox,
      h("div.row",
        shown ? h("img.photo-preview", { src: shown.card_url, alt: t("dash.photo_alt") })
          : h("p.muted", t("dash.no_photo")),
        mine.pending ? h("div", { "data-photo-status": "pending" },
          h("img.photo-preview", { src: mine.pending.card_url, alt: t("dash.photo_pending_alt") }),
          h("span.badge.warn", t("dash.waiting_review"))) : null,
        mine.rejected ? h("div", { "data-photo-status": "rejected" },
          h("span.badge", t("dash.not_approved")), mine.rejected.reason ? h("p.small", { "data-i18n-skip": true }, mine.rejected.reason) : null) : null),
      form);
  }

  renderStatus();
  renderProfile();
  renderWithdrawForm();
  clear(main,
    h("div.page-head", h("div", h("h1", t("nav.dashboard")), h("p.muted", t("dash.welcome"), " ", h("span", { "data-i18n-skip": true }, app.me.display_name), "."))),
    h("div.grid-2",
      h("div",
        h("section.card", h("h2", t("dash.availability")), statusBox),
        h("section.card", h("h2", t("dash.profile")), profileBox),
        h("section.card", h("h2", t("dash.photo")), photoBox)),
      h("div",
        h("section.card", h("h2", t("dash.earnings")), earningsBox),
        h("section.card", h("h2", t("dash.withdraw_title")), withdrawBox))),
    h("section.card", h("h2", t("dash.statistics")), statsBox),
    h("section.card", h("h2", t("dash.withdrawals")), historyBox));
  await refresh();
  await renderStats().catch((err) => clear(statsBox, errorBox(err)));
  await renderPhoto().catch((err) => clear(photoBox, errorBox(err)));
  timer = setInterval(() => refresh().catch(() => {}), POLL_MS);
  return () => clearInterval(timer);
}
