// Seller dashboard: online toggle, rate and profile, earnings, withdrawals to a TRON address.

import { get, post, put } from "../api.js";
import * as money from "../money.js";
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
      h("img.chart", { src: `/api/seller/stats/chart.svg?t=${Date.now()}`, alt: "Earnings per day over the last 30 days", width: 640, height: 220 }),
      h("div.stats",
        h("div.stat", h("div.label", "Minutes billed"), h("div.value", { "data-testid": "minutes-billed" }, s.minutes_billed), h("div.sub", { "data-testid": "calls-count" }, plural(s.calls, "call"))),
        h("div.stat", h("div.label", "Average call"), h("div.value", `${Math.round(s.average_call_seconds / 60 * 10) / 10} min`), h("div.sub", `${s.average_call_seconds} s`)),
        h("div.stat", h("div.label", "Tips"), h("div.value", money.tokens(s.tips_total)), h("div.sub", "tokens earned")),
        h("div.stat", h("div.label", "Busiest hour"), h("div.value", hasBusy ? `${String(busiest.hour_utc).padStart(2, "0")}:00` : "—"), h("div.sub", "UTC"))),
      // Named only when they opted in (as the buyers are told), never with amounts.
      h("div", { "data-testid": "supporters" }, h("h3", "Top supporters"),
        s.top_supporters.length
          ? h("ol", { "data-testid": "top-supporters" }, s.top_supporters.map((t) => h("li", t.display_name)))
          : null,
        s.supporters_not_shown
          ? h("p.small.muted", { "data-testid": "supporters-not-shown" },
            `${s.top_supporters.length ? "And " : ""}${plural(s.supporters_not_shown, "supporter")} who keep${s.supporters_not_shown === 1 ? "s" : ""} their name private.`)
          : null,
        !s.top_supporters.length && !s.supporters_not_shown ? h("p.empty", "No supporters yet.") : null,
        h("p.small.muted", "Buyers choose in their wallet whether their name may be shown; amounts are never shown per buyer.")));
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
        toast(seller.online ? "You are online. Keep this tab open to receive calls." : "You are offline.", "ok");
      } catch (err) {
        toast(err.message, "error");
      }
      renderStatus();
    });
    clear(statusBox,
      h("div.spread",
        h("label.switch", toggle, h("span", { id: "online-label" }, online ? "Online: buyers can call you" : "Offline")),
        online ? h("span.badge.ok", h("span.dot.on"), "Visible in the list") : h("span.badge", "Hidden from buyers")),
      hasRate ? h("p.muted.small", "Incoming calls ring on any page of meterchat while this tab is open.")
        : h("p.muted.small", "Set your rate below before you go online."));
  }

  function renderProfile() {
    const min = app.config?.min_rate ?? 1;
    const max = app.config?.max_rate ?? 10000;
    const rate = h("input", { type: "number", name: "rate", min, max, step: 1, required: true, inputmode: "numeric", value: seller?.rate ?? "" });
    const bio = h("textarea", { name: "bio", maxlength: 1000 });
    bio.value = seller?.bio || "";
    const tags = h("input", { type: "text", name: "tags", value: list(seller?.tags), placeholder: "e.g. english, tutoring, music" });
    const langs = h("input", { type: "text", name: "languages", value: list(seller?.languages), placeholder: "e.g. English, Spanish" });
    const usdtHint = h("span");
    const commission = seller?.commission_percent ?? app.config?.commission_percent ?? "0";
    const updateHint = () => {
      if (!/^\d+$/.test(rate.value)) {
        usdtHint.textContent = "";
        return;
      }
      const earns = earnsPerMinute(rate.value, commission);
      usdtHint.textContent = ` ${rate.value} tokens = ${money.tokensToUsdt(rate.value)} USDT per minute. The platform keeps ${commission} %: you earn ${money.tokens(earns)} tokens (${money.tokensToUsdt(earns)} USDT) per minute of live video.`;
    };
    rate.addEventListener("input", updateHint);
    updateHint();
    const form = h("form",
      field("Rate (tokens per minute)", rate, h("span", { "data-testid": "rate-hint" }, `Between ${min} and ${max}.`, usdtHint)),
      field("About you", bio, "What buyers can expect from a call with you."),
      field("Tags", tags, "Comma-separated."),
      field("Languages", langs, "Comma-separated."),
      h("button.btn", { type: "submit" }, "Save profile"));
    onSubmit(form, async (fd) => {
      const r = String(fd.get("rate") || "").trim();
      if (!/^\d+$/.test(r)) throw new Error("The rate is a whole number of tokens per minute.");
      const res = await put("/api/seller/profile", {
        rate: Number(r), bio: String(fd.get("bio") || ""),
        tags: splitList(fd.get("tags")), languages: splitList(fd.get("languages")),
      });
      seller = { ...seller, ...(res.seller || {}) };
      toast("Profile saved", "ok");
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
    const address = h("input", { type: "text", name: "address", required: true, autocomplete: "off", spellcheck: "false", placeholder: "T…", maxlength: 34 });
    const preview = h("p.small", { "aria-live": "polite", "data-testid": "withdraw-preview" });
    const otp = app.me.two_factor
      ? field("Code from your authenticator app", h("input", { type: "text", name: "otp", inputmode: "numeric", autocomplete: "one-time-code", required: true }))
      : null;
    const validAddress = (a) => /^T[1-9A-HJ-NP-Za-km-z]{33}$/.test(a);
    // The server's quote for (tokens, address): the fee the request confirms (fee_tokens).
    let quoted = null;
    let quoteTimer = null;
    let quoteSeq = 0;
    const describe = (q) => {
      const network = q.network_fee_mode === "auto"
        ? `network ${q.network_fee_usdt} USDT: ${Number(q.energy).toLocaleString()} energy × ${q.energy_price_sun} sun + ${q.bandwidth_bytes} bytes × ${Number(q.bandwidth_price_sun).toLocaleString()} sun = ${q.network_fee_trx} TRX at ${q.trx_usdt_price} USDT per TRX`
        : `network energy ${q.network_fee_usdt} USDT`;
      return `You receive ${q.net_usdt} USDT after fees of ${q.fee_usdt} USDT (platform fee ${q.platform_fee_usdt} USDT, ${network}).`;
    };
    const fetchQuote = async () => {
      const t = tokens.value.trim();
      const a = address.value.trim();
      const seq = ++quoteSeq;
      try {
        const res = await get(`/api/withdrawals/quote?address=${encodeURIComponent(a)}&tokens=${encodeURIComponent(t)}`);
        if (seq !== quoteSeq) return null;
        quoted = { key: `${t}|${a}`, quote: res.quote };
        preview.textContent = describe(res.quote);
        return quoted;
      } catch (err) {
        if (seq === quoteSeq) preview.textContent = err.message;
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
          ? `You receive ${money.fromUnits(net, 6)} USDT after fees of ${money.fromUnits(fees, 6)} USDT (platform fee and network energy).`
          : `That does not cover the fees of ${money.fromUnits(fees, 6)} USDT.`;
      } else if (!validAddress(address.value.trim())) {
        preview.textContent = "Enter your address to see the network fee (it depends on whether the address already holds USDT).";
      }
      if (validAddress(address.value.trim())) quoteTimer = setTimeout(fetchQuote, 250);
    };
    address.addEventListener("input", update);
    tokens.addEventListener("input", update);
    let key = null;
    let keyFor = "";
    const form = h("form",
      field("Tokens", tokens, h("span", `Minimum ${minUsdt} USDT worth. `,
        h("button.linkish", { type: "button", onclick: () => { tokens.value = app.balance?.available || ""; update(); } }, "Withdraw all"))),
      field("TRON address (TRC20)", address, "Your own wallet's address, starting with T. Double-check it: transfers cannot be reversed."),
      otp,
      preview,
      h("button.btn", { type: "submit" }, "Withdraw"));
    onSubmit(form, async (fd) => {
      const t = String(fd.get("tokens") || "").trim();
      const a = String(fd.get("address") || "").trim();
      if (!money.isPositive(t, 4)) throw new Error("Enter how many tokens to withdraw, like 400.");
      if (!/^T[1-9A-HJ-NP-Za-km-z]{33}$/.test(a)) throw new Error("A TRON address has 34 characters and starts with T.");
      // A retry of the same request (e.g. after a timeout) reuses the key: it cannot pay twice.
      if (keyFor !== `${t}|${a}`) {
        key = newIdempotencyKey();
        keyFor = `${t}|${a}`;
      }
      // The fee shown is the fee confirmed: the server refuses another (409 fee_changed).
      let shown = quoted && quoted.key === `${t}|${a}` ? quoted : null;
      if (!shown) {
        clearTimeout(quoteTimer);
        shown = await fetchQuote();
        if (!shown) throw new Error(preview.textContent || "The fee could not be read; try again.");
        if (fees == null) throw new Error("Check the fee shown below, then press Withdraw again.");
      }
      const body = { tokens: t, address: a, fee_tokens: shown.quote.fee_tokens };
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
      toast(w.status === "review" ? "Withdrawal requested. An operator reviews large withdrawals first."
        : w.reason === "new_address_hold" ? "Withdrawal requested. A first withdrawal to a new address waits a while; we mailed you the details."
          : "Withdrawal requested.", "ok");
      form.reset();
      update();
      await refresh();
    });
    clear(withdrawBox, form);
  }

  function historyTable(withdrawals) {
    if (!withdrawals.length) return h("p.empty", "No withdrawals yet.");
    return h("div.table-wrap", h("table", { "data-testid": "withdrawals" },
      h("thead", h("tr", h("th", "When"), h("th.amount", "Tokens"), h("th.amount", "You receive"), h("th", "To"), h("th", "Status"), h("th", "Transaction"))),
      h("tbody", withdrawals.map((w) => h("tr", { "data-withdrawal-id": w.id, "data-status": w.status },
        h("td.small", formatDate(w.created_at || w.at)),
        h("td.amount", money.tokens(w.tokens)),
        h("td.amount", w.net_usdt != null ? `${money.usdt(w.net_usdt)} USDT` : "—"),
        h("td.mono.small", { title: w.address }, w.address ? `${w.address.slice(0, 6)}…${w.address.slice(-4)}` : ""),
        h("td", statusBadge(w.status), w.reason ? h("div.muted.small", w.reason === "new_address_hold" ? "held: a first withdrawal to a new address" : w.reason) : null,
          w.status === "queued" || w.status === "review"
            ? h("button.btn.secondary.small", { type: "button", onclick: () => cancelWithdrawal(w.id) }, "Cancel") : null),
        h("td", explorerLink(app, w.txid)))))));
  }

  async function cancelWithdrawal(id) {
    try {
      await post(`/api/withdrawals/${encodeURIComponent(id)}/cancel`);
      toast("Withdrawal cancelled; the tokens are back in your balance.", "ok");
    } catch (err) {
      toast(err.message, "error");
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
      h("div.value", { "data-testid": testid }, money.tokens(last(rows))), h("div.sub", "tokens, tips included"));
    clear(earningsBox, h("div.stats",
      period("Today (UTC)", "earned-today", stats?.per_day),
      period("This week", "earned-week", stats?.per_week),
      period("This month", "earned-month", stats?.per_month),
      h("div.stat", h("div.label", "Available"), h("div.value", { "data-testid": "seller-available" }, money.tokens(me.balance.available)), h("div.sub", `= ${money.tokensToUsdt(me.balance.available)} USDT`)),
      money.isPositive(me.balance.pending, 4) ? h("div.stat", h("div.label", "Pending"), h("div.value", money.tokens(me.balance.pending)), h("div.sub", "released after the hold")) : null),
    h("p.small.muted", { "data-testid": "earnings-rule" }, "Earnings after the platform commission: call minutes and tips, less refunds. Days, weeks and months are in UTC."));
    if (wd.error) clear(historyBox, errorBox(wd.error));
    else clear(historyBox, historyTable(wd.withdrawals || []));
    return wd.withdrawals || [];
  }

  // The photo: what buyers see (once approved), the upload waiting for review, a refusal.
  const photoBox = h("div", { "data-testid": "photo" });
  async function renderPhoto() {
    const mine = await get("/api/seller/photo");
    const input = h("input", { type: "file", name: "photo", accept: "image/jpeg,image/png,image/webp" });
    const form = h("form.stack", field("Upload a photo (JPEG, PNG or WebP)", input,
      "Shown after the operator approves it. Location and camera data are removed."),
    h("button.btn", { type: "submit" }, "Upload"));
    onSubmit(form, async () => {
      const file = input.files?.[0];
      if (!file) throw new Error("Choose a photo first.");
      await put("/api/seller/photo", file);
      toast("Photo uploaded; it is shown once the operator approves it.", "ok");
      await renderPhoto();
    });
    const shown = mine.approved;
    clear(photoBox,
      h("div.row",
        shown ? h("img.photo-preview", { src: shown.card_url, alt: "Your photo as buyers see it" })
          : h("p.muted", "No approved photo yet: buyers see your initials."),
        mine.pending ? h("div", { "data-photo-status": "pending" },
          h("img.photo-preview", { src: mine.pending.card_url, alt: "Your new photo, waiting for review" }),
          h("span.badge.warn", "Waiting for review")) : null,
        mine.rejected ? h("div", { "data-photo-status": "rejected" },
          h("span.badge", "Not approved"), mine.rejected.reason ? h("p.small", mine.rejected.reason) : null) : null),
      form);
  }

  renderStatus();
  renderProfile();
  renderWithdrawForm();
  clear(main,
    h("div.page-head", h("div", h("h1", "Dashboard"), h("p.muted", `Welcome, ${app.me.display_name}.`))),
    h("div.grid-2",
      h("div",
        h("section.card", h("h2", "Availability"), statusBox),
        h("section.card", h("h2", "Your profile"), profileBox),
        h("section.card", h("h2", "Your photo"), photoBox)),
      h("div",
        h("section.card", h("h2", "Earnings"), earningsBox),
        h("section.card", h("h2", "Withdraw to your wallet"), withdrawBox))),
    h("section.card", h("h2", "Statistics"), statsBox),
    h("section.card", h("h2", "Withdrawals"), historyBox));
  await refresh();
  await renderStats().catch((err) => clear(statsBox, errorBox(err)));
  await renderPhoto().catch((err) => clear(photoBox, errorBox(err)));
  timer = setInterval(() => refresh().catch(() => {}), POLL_MS);
  return () => clearInterval(timer);
}
