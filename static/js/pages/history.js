// Call history for buyers and sellers (#/calls): newest first, a page at a time, each call
// with whom, its live time and what it cost (buyer) or earned (seller, after commission),
// tips and refunds; and a receipt per call (#/calls/<id>) with its ledger lines.

import { get } from "../api.js";
import * as money from "../money.js";
import { t } from "../i18n.js";
import { clear, errorBox, formatDate, formatDuration, h } from "../ui.js";
import { kindLabel } from "./wallet.js";

const STATES = ["ended", "declined", "missed", "cancelled", "ringing", "connecting", "live", "paused"];
const stateWord = (state) => (STATES.includes(state) ? t(`call_state.${state}`) : state);

function amountCell(text, { sign = "" } = {}) {
  return h("td.amount", money.isPositive(text, 4) ? `${sign}${money.tokens(text)}` : "—");
}

function callRow(c) {
  const buyer = c.role === "buyer";
  const a = c.amounts;
  return h("tr", { "data-call-id": c.id },
    h("td.small", h("a", { href: `#/calls/${encodeURIComponent(c.id)}` }, formatDate(c.created_at))),
    h("td", h("span", { "data-i18n-skip": true }, c.with.display_name), h("div.muted.small", stateWord(c.state))),
    h("td.amount", formatDuration(c.live_seconds)),
    // The total first: on a phone the columns after it scroll.
    h("td.amount", { "data-testid": "call-total" }, h("strong", money.tokens(a.total))),
    amountCell(buyer ? a.cost : a.earned),
    amountCell(a.tips),
    amountCell(a.refunds, { sign: buyer ? "+" : "−" }));
}

async function list(main, app) {
  const buyer = app.me.role === "buyer";
  const body = h("tbody");
  const more = h("button.btn.secondary", { type: "button", hidden: true }, t("history.older"));
  const box = h("div");
  let before = null;
  async function load() {
    more.disabled = true;
    try {
      const page = await get(`/api/calls${before ? `?before=${encodeURIComponent(before)}` : ""}`);
      body.append(...(page.calls || []).map(callRow));
      before = page.next_before;
      more.hidden = !before;
      if (!body.children.length) clear(box, h("p.empty", t(buyer ? "history.none_buyer" : "history.none")));
    } catch (err) {
      box.prepend(errorBox(err));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", load);
  clear(box, h("div.table-wrap", h("table", { "data-testid": "call-history" },
    h("thead", h("tr", h("th", t("history.when")), h("th", t(buyer ? "history.seller" : "history.buyer")), h("th.amount", t("history.live")),
      h("th.amount", t(buyer ? "history.you_paid" : "history.you_got")),
      h("th.amount", t(buyer ? "history.minutes" : "history.earned")), h("th.amount", t("history.tips")), h("th.amount", t("history.refunds")))),
    body)), more);
  clear(main,
    h("div.page-head", h("div", h("h1", t("nav.calls")),
      h("p.muted", t(buyer ? "history.sub_buyer" : "history.sub_seller")))),
    h("section.card", box));
  await load();
}

async function receipt(main, id, app) {
  const c = (await get(`/api/calls/${encodeURIComponent(id)}/receipt`)).call;
  const buyer = c.role === "buyer";
  const a = c.amounts;
  const fig = (label, value, testid) => h("div.stat", h("div.label", label),
    h("div.value.small-value", testid ? { "data-testid": testid } : {}, t("common.tokens_amount", { tokens: money.tokens(value) })));
  clear(main,
    h("div.page-head", h("div", h("h1", t("history.call_with"), " ", h("span", { "data-i18n-skip": true }, c.with.display_name)),
      h("p.muted", formatDate(c.created_at), " · ", stateWord(c.state), " · ", t("history.rate", { rate: c.rate }))),
    h("a.btn.secondary", { href: "#/calls" }, t("history.all"))),
    h("section.card", { "data-testid": "receipt" },
      h("h2", t("history.receipt")),
      h("div.stats",
        h("div.stat", h("div.label", t("history.live_time")), h("div.value.small-value", formatDuration(c.live_seconds))),
        fig(t(buyer ? "history.minutes" : "history.earned_after"), buyer ? a.cost : a.earned),
        fig(t(buyer ? "history.tips_given" : "history.tips_received"), a.tips),
        fig(t(buyer ? "history.refunded_you" : "history.refunded_buyer"), a.refunds),
        fig(t(buyer ? "history.you_paid" : "history.you_got"), a.total, "receipt-total")),
      h("h3", t("history.lines")),
      c.lines.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", t("history.when")), h("th", t("history.what")), h("th.amount", t("history.amount")))),
        h("tbody", c.lines.map((l) => h("tr",
          h("td.small", formatDate(l.at)),
          h("td", kindLabel(l.kind, app.me.role), l.bucket !== "available" ? h("span.muted.small", " · ", t(`bucket.${l.bucket}`)) : null),
          h("td.amount", money.tokens(l.amount)))))))
        : h("p.empty", t("history.nothing_charged"))));
}

export async function render(main, route, app) {
  const id = route.rest[0];
  if (id) await receipt(main, id, app);
  else await list(main, app);
}
