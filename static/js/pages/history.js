// Call history for buyers and sellers (#/calls): newest first, a page at a time, each call
// with whom, its live time and what it cost (buyer) or earned (seller, after commission),
// tips and refunds; and a receipt per call (#/calls/<id>) with its ledger lines.

import { get } from "../api.js";
import * as money from "../money.js";
import { clear, errorBox, formatDate, formatDuration, h } from "../ui.js";
import { kindLabel } from "./wallet.js";

const STATE_WORDS = {
  ended: "Ended", declined: "Declined", missed: "Missed", cancelled: "Cancelled",
  ringing: "Ringing", connecting: "Connecting", live: "Live", paused: "Paused",
};

function amountCell(text, { sign = "" } = {}) {
  return h("td.amount", money.isPositive(text, 4) ? `${sign}${money.tokens(text)}` : "—");
}

function callRow(c) {
  const buyer = c.role === "buyer";
  const a = c.amounts;
  return h("tr", { "data-call-id": c.id },
    h("td.small", h("a", { href: `#/calls/${encodeURIComponent(c.id)}` }, formatDate(c.created_at))),
    h("td", c.with.display_name, h("div.muted.small", STATE_WORDS[c.state] || c.state)),
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
  const more = h("button.btn.secondary", { type: "button", hidden: true }, "Older calls");
  const box = h("div");
  let before = null;
  async function load() {
    more.disabled = true;
    try {
      const page = await get(`/api/calls${before ? `?before=${encodeURIComponent(before)}` : ""}`);
      body.append(...(page.calls || []).map(callRow));
      before = page.next_before;
      more.hidden = !before;
      if (!body.children.length) clear(box, h("p.empty", buyer ? "No calls yet. Find someone on the Sellers page." : "No calls yet."));
    } catch (err) {
      box.prepend(errorBox(err));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", load);
  clear(box, h("div.table-wrap", h("table", { "data-testid": "call-history" },
    h("thead", h("tr", h("th", "When"), h("th", buyer ? "Seller" : "Buyer"), h("th.amount", "Live"),
      h("th.amount", buyer ? "You paid" : "You got"),
      h("th.amount", buyer ? "Minutes" : "Earned"), h("th.amount", "Tips"), h("th.amount", "Refunds"))),
    body)), more);
  clear(main,
    h("div.page-head", h("div", h("h1", "Calls"),
      h("p.muted", buyer ? "What each call cost you, tips and refunds included." : "What each call earned you after commission, tips and refunds included."))),
    h("section.card", box));
  await load();
}

async function receipt(main, id, app) {
  const c = (await get(`/api/calls/${encodeURIComponent(id)}/receipt`)).call;
  const buyer = c.role === "buyer";
  const a = c.amounts;
  const fig = (label, value, testid) => h("div.stat", h("div.label", label),
    h("div.value.small-value", testid ? { "data-testid": testid } : {}, `${money.tokens(value)} tokens`));
  clear(main,
    h("div.page-head", h("div", h("h1", `Call with ${c.with.display_name}`),
      h("p.muted", `${formatDate(c.created_at)} · ${STATE_WORDS[c.state] || c.state} · ${c.rate} tokens/min`)),
    h("a.btn.secondary", { href: "#/calls" }, "All calls")),
    h("section.card", { "data-testid": "receipt" },
      h("h2", "Receipt"),
      h("div.stats",
        h("div.stat", h("div.label", "Live time"), h("div.value.small-value", formatDuration(c.live_seconds))),
        fig(buyer ? "Minutes" : "Earned (after commission)", buyer ? a.cost : a.earned),
        fig(buyer ? "Tips given" : "Tips received", a.tips),
        fig(buyer ? "Refunded to you" : "Refunded to the buyer", a.refunds),
        fig(buyer ? "You paid" : "You got", a.total, "receipt-total")),
      h("h3", "Ledger lines"),
      c.lines.length ? h("div.table-wrap", h("table",
        h("thead", h("tr", h("th", "When"), h("th", "What"), h("th.amount", "Amount"))),
        h("tbody", c.lines.map((l) => h("tr",
          h("td.small", formatDate(l.at)),
          h("td", kindLabel(l.kind, app.me.role), l.bucket !== "available" ? h("span.muted.small", ` · ${l.bucket}`) : null),
          h("td.amount", money.tokens(l.amount)))))))
        : h("p.empty", "Nothing was charged for this call.")));
}

export async function render(main, route, app) {
  const id = route.rest[0];
  if (id) await receipt(main, id, app);
  else await list(main, app);
}
