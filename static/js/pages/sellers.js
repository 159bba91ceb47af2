// Browse sellers: who is online, their rate, rating, languages and tags; a buyer's
// favourites (a star on each card, a filter, the opt-in mail when one comes online).

import { del, get, put } from "../api.js";
import * as money from "../money.js";
import { clear, errorBox, field, h, initials, plural, stars, toast } from "../ui.js";

const REFRESH_MS = 10000;

function list(v) {
  if (Array.isArray(v)) return v.filter(Boolean).map(String);
  if (typeof v === "string" && v.trim()) return v.split(",").map((s) => s.trim()).filter(Boolean);
  return [];
}

function starButton(s, onChange) {
  const label = (on) => (on ? `Remove ${s.display_name} from favourites` : `Add ${s.display_name} to favourites`);
  const btn = h("button.star", { type: "button", "aria-pressed": String(!!s.favourite), "aria-label": label(s.favourite), title: label(s.favourite) },
    s.favourite ? "\u2605" : "\u2606");
  btn.addEventListener("click", async () => {
    const on = btn.getAttribute("aria-pressed") !== "true";
    btn.disabled = true;
    try {
      if (on) await put(`/api/favourites/${encodeURIComponent(s.id)}`);
      else await del(`/api/favourites/${encodeURIComponent(s.id)}`);
      btn.setAttribute("aria-pressed", String(on));
      btn.setAttribute("aria-label", label(on));
      btn.title = label(on);
      btn.textContent = on ? "\u2605" : "\u2606";
      onChange?.();
    } catch (err) {
      toast(err.message, "error");
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

function sellerCard(s, app, onFavourite) {
  const status = s.busy ? h("span.badge.warn", h("span.dot.busy"), "In a call")
    : s.online ? h("span.badge.ok", h("span.dot.on"), "Online") : h("span.badge", h("span.dot"), "Offline");
  const canCall = app.me?.role === "buyer" && s.online && !s.busy;
  const langs = list(s.languages);
  const tags = list(s.tags);
  return h("article.card.seller", { "data-seller-id": s.id },
    h("div.seller-top",
      s.photo_card_url
        ? h("img.avatar.photo", { src: s.photo_card_url, alt: "", width: 48, height: 48, loading: "lazy" })
        : h("div.avatar", { "aria-hidden": "true" }, initials(s.display_name)),
      h("div",
        h("div.seller-name", s.display_name),
        h("div.row", status, s.calls != null ? h("span.muted.small", plural(s.calls, "call")) : null)),
      app.me?.role === "buyer" ? starButton(s, onFavourite) : null),
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
  const isBuyer = app.me?.role === "buyer";
  const favOnly = h("input", { type: "checkbox", name: "favourites", checked: /favourites=true/.test(location.hash) });
  const mailMe = h("input", { type: "checkbox", name: "favourite_mail" });
  const resultBox = h("div", { "aria-live": "polite" });
  const form = h("form.filters", { role: "search" },
    field("Max rate (tokens/min)", maxRate),
    field("Tag", tag),
    field("Language", lang),
    h("div.field", h("label.check", online, "Online now only")),
    isBuyer ? h("div.field", h("label.check", favOnly, "Favourites only")) : null);
  const mailBox = isBuyer ? h("p.small", h("label.check", mailMe, "Mail me when a favourite comes online")) : null;
  if (isBuyer) {
    get("/api/favourites/mail").then((r) => { mailMe.checked = !!r.mail; }).catch(() => {});
    mailMe.addEventListener("change", async (ev) => {
      ev.stopPropagation();
      try {
        await put("/api/favourites/mail", { mail: mailMe.checked });
        toast(mailMe.checked ? "We will mail you when a favourite comes online." : "No more mails about favourites.", "ok");
      } catch (err) {
        mailMe.checked = !mailMe.checked;
        toast(err.message, "error");
      }
    });
  }

  let timer = null;
  let seq = 0;
  async function load() {
    const mine = ++seq;
    const q = new URLSearchParams();
    if (online.checked) q.set("online", "true");
    if (/^\d+$/.test(maxRate.value)) q.set("max_rate", maxRate.value);
    if (tag.value.trim()) q.set("tag", tag.value.trim());
    if (lang.value.trim()) q.set("language", lang.value.trim());
    if (isBuyer && favOnly.checked) q.set("favourites", "true");
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
        ? h("div.seller-list", sellers.map((s) => sellerCard(s, app, () => { if (favOnly.checked) load(); })))
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
    h("div.card", form, mailBox),
    resultBox);
  await load();
  timer = setInterval(load, REFRESH_MS);
  // A favourite's notice: show them online at once, not at the next refresh.
  app.onSellerOnline = () => load();
  return () => {
    app.onSellerOnline = null;
    clearInterval(timer);
    clearTimeout(debounce);
  };
}
