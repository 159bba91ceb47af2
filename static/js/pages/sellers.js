// Browse sellers: who is online, their rate, rating, languages and tags; a buyer's
// favourites (a star on each card, a filter, the opt-in mail when one comes online).

import { del, get, put } from "../api.js";
import * as money from "../money.js";
import { errorText, t } from "../i18n.js";
import { clear, errorBox, field, h, initials, plural, stars, toast } from "../ui.js";

const REFRESH_MS = 10000;

function list(v) {
  if (Array.isArray(v)) return v.filter(Boolean).map(String);
  if (typeof v === "string" && v.trim()) return v.split(",").map((s) => s.trim()).filter(Boolean);
  return [];
}

function starButton(s, onChange) {
  const label = (on) => t(on ? "sellers.fav_remove" : "sellers.fav_add", { name: s.display_name });
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
      toast(errorText(err), "error");
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

function sellerCard(s, app, onFavourite) {
  const status = s.busy ? h("span.badge.warn", h("span.dot.busy"), t("sellers.in_call"))
    : s.online ? h("span.badge.ok", h("span.dot.on"), t("sellers.online")) : h("span.badge", h("span.dot"), t("sellers.offline"));
  const canCall = app.me?.role === "buyer" && s.online && !s.busy;
  const langs = list(s.languages);
  const tags = list(s.tags);
  return h("article.card.seller", { "data-seller-id": s.id },
    h("div.seller-top",
      s.photo_card_url
        ? h("img.avatar.photo", { src: s.photo_card_url, alt: "", width: 48, height: 48, loading: "lazy" })
        : h("div.avatar", { "aria-hidden": "true", "data-i18n-skip": true }, initials(s.display_name)),
      h("div",
        h("div.seller-name", { "data-i18n-skip": true }, s.display_name),
        h("div.row", status, s.calls != null ? h("span.muted.small", plural(s.calls, "count.calls")) : null)),
      app.me?.role === "buyer" ? starButton(s, onFavourite) : null),
    h("div.spread",
      h("div.rate", s.rate, h("small", " ", t("sellers.per_min"))),
      h("div.muted.small", t("sellers.usdt_min", { usdt: money.tokensToUsdt(String(s.rate)) }))),
    h("div", stars(s.rating)),
    s.bio ? h("p.bio", { "data-i18n-skip": true }, s.bio) : null,
    langs.length ? h("div.small", h("span.muted", t("sellers.speaks")), " ", h("span", { "data-i18n-skip": true }, langs.join(", "))) : null,
    tags.length ? h("div.tags", { "data-i18n-skip": true }, tags.map((tag) => h("span.tag", tag))) : null,
    h("div.actions",
      canCall
        ? h("a.btn.block", { href: `#/call?seller=${encodeURIComponent(s.id)}`, "aria-label": t("sellers.call_name", { name: s.display_name }) }, t("sellers.call"))
        : h("button.btn.secondary.block", { type: "button", disabled: true },
          app.me?.role !== "buyer" ? t("sellers.buyers_can_call") : s.busy ? t("sellers.in_call") : t("sellers.offline"))));
}

export async function render(main, _route, app) {
  const online = h("input", { type: "checkbox", name: "online", checked: true });
  const maxRate = h("input", { type: "number", name: "max_rate", min: 1, step: 1, inputmode: "numeric", placeholder: t("sellers.any") });
  const tag = h("input", { type: "search", name: "tag", placeholder: t("sellers.tag_example") });
  const lang = h("input", { type: "search", name: "language", placeholder: t("sellers.any") });
  const isBuyer = app.me?.role === "buyer";
  const favOnly = h("input", { type: "checkbox", name: "favourites", checked: /favourites=true/.test(location.hash) });
  const mailMe = h("input", { type: "checkbox", name: "favourite_mail" });
  const resultBox = h("div", { "aria-live": "polite" });
  const form = h("form.filters", { role: "search" },
    field(t("sellers.max_rate"), maxRate),
    field(t("sellers.tag"), tag),
    field(t("sellers.language"), lang),
    h("div.field", h("label.check", online, t("sellers.online_only"))),
    isBuyer ? h("div.field", h("label.check", favOnly, t("sellers.favourites_only"))) : null);
  const mailBox = isBuyer ? h("p.small", h("label.check", mailMe, t("sellers.mail_me"))) : null;
  if (isBuyer) {
    get("/api/favourites/mail").then((r) => { mailMe.checked = !!r.mail; }).catch(() => {});
    mailMe.addEventListener("change", async (ev) => {
      ev.stopPropagation();
      try {
        await put("/api/favourites/mail", { mail: mailMe.checked });
        toast(t(mailMe.checked ? "sellers.mail_on" : "sellers.mail_off"), "ok");
      } catch (err) {
        mailMe.checked = !mailMe.checked;
        toast(errorText(err), "error");
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
      h("p.muted.small", plural(sellers.length, "count.sellers")),
      sellers.length
        ? h("div.seller-list", sellers.map((s) => sellerCard(s, app, () => { if (favOnly.checked) load(); })))
        : h("div.card.empty", t(online.checked ? "sellers.none_online" : "sellers.none")));
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
      h("div", h("h1", t("nav.sellers")), h("p.muted", t("sellers.sub"))),
      app.me?.role === "buyer" && app.balance
        ? h("a.btn.secondary", { href: "#/wallet" }, t("sellers.balance", { tokens: money.tokens(app.balance.available) })) : null),
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
