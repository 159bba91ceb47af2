// Browse sellers: who is online, their rate, rating, languages and tags.

import { get } from "../api.js";
import * as money from "../money.js";
import { clear, errorBox, field, h, initials, plural, stars } from "../ui.js";

const REFRESH_MS = 10000;

function list(v) {
  if (Array.isArray(v)) return v.filter(Boolean).map(String);
  if (typeof v === "string" && v.trim()) return v.split(",").map((s) => s.trim()).filter(Boolean);
  return [];
}

function sellerCard(s, app) {
  const status = s.busy ? h("span.badge.warn", h("span.dot.busy"), "In a call")
    : s.online ? h("span.badge.ok", h("span.dot.on"), "Online") : h("span.badge", h("span.dot"), "Offline");
  const canCall = app.me?.role === "buyer" && s.online && !s.busy;
  const langs = list(s.languages);
  const tags = list(s.tags);
  return h("article.card.seller", { "data-seller-id": s.id },
    h("div.seller-top",
      h("div.avatar", { "aria-hidden": "true" }, initials(s.display_name)),
      h("div",
        h("div.seller-name", s.display_name),
        h("div.row", status, s.calls != null ? h("span.muted.small", plural(s.calls, "call")) : null))),
    h("div.spread",
      h("div.rate", s.rate, h("small", " tokens/min")),
      h("div.muted.small", `= ${money.tokensToUsdt(String(s.rate))} USDT/min`)),
    h("div", stars(s.rating)),
    s.bio ? h("p.bio", s.bio) : null,
    langs.length ? h("div.small", h("span.muted", "Speaks "), langs.join(", ")) : null,
    tags.length ? h("div.tags", tags.map((t) => h("span.tag", t))) : null,
    h("div.actions",
      canCall
        ? h("a.btn.block", { href: `#/call?seller=${encodeURIComponent(s.id)}`, "aria-label": `Call ${s.display_name}` }, "Call")
        : h("button.btn.secondary.block", { type: "button", disabled: true },
          app.me?.role !== "buyer" ? "Buyers can call" : s.busy ? "In a call" : "Offline")));
}

export async function render(main, _route, app) {
  const online = h("input", { type: "checkbox", name: "online", checked: true });
  const maxRate = h("input", { type: "number", name: "max_rate", min: 1, step: 1, inputmode: "numeric", placeholder: "Any" });
  const tag = h("input", { type: "search", name: "tag", placeholder: "e.g. english, tutoring" });
  const lang = h("input", { type: "search", name: "language", placeholder: "Any" });
  const resultBox = h("div", { "aria-live": "polite" });
  const form = h("form.filters", { role: "search" },
    field("Max rate (tokens/min)", maxRate),
    field("Tag", tag),
    field("Language", lang),
    h("div.field", h("label.check", online, "Online now only")));

  let timer = null;
  let seq = 0;
  async function load() {
    const mine = ++seq;
    const q = new URLSearchParams();
    if (online.checked) q.set("online", "true");
    if (/^\d+$/.test(maxRate.value)) q.set("max_rate", maxRate.value);
    if (tag.value.trim()) q.set("tag", tag.value.trim());
    if (lang.value.trim()) q.set("language", lang.value.trim());
    let sellers;
    try {
      sellers = (await get(`/api/sellers?${q}`)).sellers || [];
    } catch (err) {
      if (mine === seq) clear(resultBox, errorBox(err));
      return;
    }
    if (mine !== seq) return;
    clear(resultBox,
      h("p.muted.small", plural(sellers.length, "seller")),
      sellers.length
        ? h("div.seller-list", sellers.map((s) => sellerCard(s, app)))
        : h("div.card.empty", online.checked ? "Nobody matching is online right now. Try fewer filters, or check back soon." : "No sellers match these filters."));
  }
  let debounce = null;
  form.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(load, 250);
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });

  clear(main,
    h("div.page-head",
      h("div", h("h1", "Sellers"), h("p.muted", "Pay by the minute of live video. You see the rate before every call.")),
      app.me?.role === "buyer" && app.balance
        ? h("a.btn.secondary", { href: "#/wallet" }, `Balance ${money.tokens(app.balance.available)} tokens`) : null),
    h("div.card", form),
    resultBox);
  await load();
  timer = setInterval(load, REFRESH_MS);
  return () => {
    clearInterval(timer);
    clearTimeout(debounce);
  };
}
