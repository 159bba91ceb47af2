// The single-page shell: who is logged in, the header, hash routes, the socket, and the
// incoming-call dialog that a seller sees on any page.

import { get, onUnauthorized, post, setCsrf } from "./api.js";
import * as money from "./money.js";
import { installUnlock, Ringer } from "./sound.js";
import { currentLanguage, errorText, initI18n, LANGUAGES, onLanguageChange, setLanguage, t } from "./i18n.js";
import { clear, h, keyboardScrollRegions, toast } from "./ui.js";
import { Socket } from "./ws.js";
import * as account from "./pages/account.js";
import * as admin from "./pages/admin.js";
import * as auth from "./pages/auth.js";
import * as call from "./pages/call.js";
import * as dashboard from "./pages/dashboard.js";
import * as history from "./pages/history.js";
import * as sellers from "./pages/sellers.js";
import * as terms from "./pages/terms.js";
import * as wallet from "./pages/wallet.js";

const ROUTES = {
  login: { page: auth.login, anon: true, title: "nav.login" },
  signup: { page: auth.signup, anon: true, title: "nav.signup" },
  forgot: { page: account.forgot, anon: true, title: "title.forgot" },
  // Links from mails: opened logged in or not.
  reset: { page: account.reset, public: true, title: "title.reset" },
  verify: { page: account.verify, public: true, title: "title.verify" },
  terms: { page: terms.render, public: true, title: "title.terms" },
  account: { page: account.account, title: "nav.account" },
  sellers: { page: sellers.render, title: "nav.sellers" },
  wallet: { page: wallet.render, title: "nav.wallet" },
  call: { page: call.render, title: "title.call" },
  calls: { page: history.render, roles: ["buyer", "seller"], title: "nav.calls" },
  dashboard: { page: dashboard.render, roles: ["seller"], title: "nav.dashboard" },
  admin: { page: admin.render, roles: ["admin"], title: "nav.admin" },
};

const NAV = {
  buyer: ["sellers", "calls", "wallet", "account"],
  seller: ["dashboard", "calls", "wallet", "sellers", "account"],
  admin: ["admin", "sellers", "account"],
};

export const app = {
  me: null,
  balance: null,
  config: null,
  socket: new Socket(),
  cleanup: null,
  renderSeq: 0,

  home() {
    const role = this.me?.role;
    return role === "seller" ? "dashboard" : role === "admin" ? "admin" : role ? "sellers" : "login";
  },

  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },

  async loadMe() {
    // The readable CSRF cookie comes and goes with the session cookie: without it nobody is
    // logged in, and asking /api/me would only log a 401 in the console.
    if (!document.cookie.split(/;\s*/).some((c) => c.startsWith("mc_csrf="))) {
      this.me = null;
      this.balance = null;
      this.renderHeader();
      this.socket.stop();
      return null;
    }
    try {
      const data = await get("/api/me", { quiet401: true });
      this.me = data.user;
      this.balance = data.balance;
    } catch {
      this.me = null;
      this.balance = null;
    }
    this.renderHeader();
    if (this.me) this.socket.start();
    else this.socket.stop();
    return this.me;
  },

  async refreshBalance() {
    if (!this.me) return;
    try {
      const data = await get("/api/me");
      this.balance = data.balance;
      this.renderHeader();
    } catch {
      // The header keeps the last known balance.
    }
  },

  setBalance(available) {
    if (!this.balance || available == null) return;
    this.balance = { ...this.balance, available: String(available) };
    this.renderHeader();
  },

  async loggedIn(data) {
    if (data?.csrf_token) setCsrf(data.csrf_token);
    // The header (and its links) appears while the home page is still to come: a link the user
    // clicked in between wins over the home page.
    const from = location.hash;
    await this.loadMe();
    if (location.hash === from) this.go(`#/${this.home()}`);
  },

  async logout() {
    try {
      await post("/api/auth/logout");
    } catch {
      // The session is forgotten on this side either way.
    }
    this.socket.stop();
    this.me = null;
    this.balance = null;
    setCsrf(null);
    this.renderHeader();
    this.go("#/login");
  },

  renderHeader() {
    const nav = document.getElementById("nav");
    const account = document.getElementById("account");
    const current = currentRoute().name;
    clear(nav, (NAV[this.me?.role] || []).map((name) =>
      h("a", { href: `#/${name}`, "aria-current": name === current ? "page" : null }, t(`nav.${name}`))));
    const switcher = languageSwitcher();
    if (!this.me) {
      clear(account,
        current === "login" ? null : h("a.btn.secondary.small", { href: "#/login" }, t("nav.login")),
        current === "signup" ? null : h("a.btn.small", { href: "#/signup" }, t("nav.signup")), switcher);
      return;
    }
    const pill = this.balance && this.me.role !== "admin"
      ? h("a.balance-pill", { href: "#/wallet", title: t("header.available"), "data-testid": "header-balance" },
        money.tokens(this.balance.available), h("small", t("header.tokens")))
      : null;
    clear(account, pill, h("span.who", { title: this.me.email, "data-i18n-skip": true }, this.me.display_name),
      h("button.btn.secondary.small", { type: "button", onclick: () => this.logout() }, t("header.logout")), switcher);
  },
};

function currentRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [name = "", ...rest] = path.split("/").filter(Boolean);
  return { name, rest, query: new URLSearchParams(query) };
}

async function route() {
  const seq = ++app.renderSeq;
  const r = currentRoute();
  const def = ROUTES[r.name];
  if (!def) {
    location.replace(`#/${app.home()}`);
    return;
  }
  if (!def.anon && !def.public && !app.me) {
    location.replace("#/login");
    return;
  }
  if (def.anon && app.me) {
    location.replace(`#/${app.home()}`);
    return;
  }
  if (def.roles && !def.roles.includes(app.me.role)) {
    location.replace(`#/${app.home()}`);
    return;
  }
  if (typeof app.cleanup === "function") {
    try {
      app.cleanup();
    } catch (err) {
      console.warn("page cleanup failed", err);
    }
  }
  app.cleanup = null;
  document.title = `${t(def.title)} · meterchat`;
  app.renderHeader();
  // Each render gets a <main> of its own: a slower page still loading for an earlier route
  // paints into the one it was given, which is no longer in the document, and cannot cover
  // the page asked for since.
  const shown = document.getElementById("main");
  const main = shown.cloneNode(false);
  main.append(h("div.loading", t("common.loading")));
  shown.replaceWith(main);
  try {
    const cleanup = await def.page(main, r, app);
    if (seq !== app.renderSeq) {
      if (typeof cleanup === "function") cleanup();
      return;
    }
    app.cleanup = cleanup;
  } catch (err) {
    if (seq !== app.renderSeq) return;
    clear(main, h("div.card", h("h1", t("app.failed")), h("p", errorText(err)),
      h("button.btn", { type: "button", onclick: () => route() }, t("app.retry"))));
  }
  if (document.activeElement === document.body) main.focus({ preventScroll: true });
}

// ---- Incoming calls (sellers), shown on whatever page is open.
const ringer = new Ringer();
let ringingCallId = null;

function closeIncoming() {
  const dlg = document.getElementById("incoming");
  ringer.stop();
  ringingCallId = null;
  if (dlg.open) dlg.close();
}

function showIncoming(msg) {
  const c = msg.call || msg;
  if (!c?.id) return;
  // On the call page for this call already (e.g. after a reload): nothing to ask.
  if (currentRoute().name === "call" && currentRoute().rest[0] === String(c.id)) return;
  const dlg = document.getElementById("incoming");
  ringingCallId = String(c.id);
  const who = msg.buyer?.display_name || t("incoming.a_buyer");
  // The call page (after accept, or a reload) shows the same name.
  if (msg.buyer?.display_name) {
    try { sessionStorage.setItem(`call-name:${c.id}`, msg.buyer.display_name); } catch { /* private mode */ }
  }
  const answer = async (action) => {
    const buttons = dlg.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await post(`/api/calls/${encodeURIComponent(c.id)}/${action}`);
      closeIncoming();
      if (action === "accept") app.go(`#/call/${encodeURIComponent(c.id)}`);
    } catch (err) {
      closeIncoming();
      toast(errorText(err), "error");
    }
  };
  clear(dlg,
    h("div.ring-icon", { "aria-hidden": "true" }, svgPhone()),
    h("h2", { id: "incoming-title" }, t("incoming.title")),
    h("p", h("strong", { "data-i18n-skip": true }, who), " ", t("incoming.wants")),
    h("p.muted", t("incoming.rate", { rate: c.rate })),
    h("div.actions",
      h("button.btn.danger", { type: "button", onclick: () => answer("decline") }, t("incoming.decline")),
      h("button.btn.ok", { type: "button", onclick: () => answer("accept"), autofocus: true }, t("incoming.accept"))));
  if (!dlg.open) dlg.showModal();
  dlg.querySelector(".btn.ok").focus();
  ringer.start();
  dlg.dataset.ringing = ringer.ringing ? "sound" : "silent";
}

function svgPhone() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "30");
  svg.setAttribute("height", "30");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("fill", "currentColor");
  p.setAttribute("d", "M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z");
  svg.append(p);
  return svg;
}

function watchCallsEverywhere() {
  const s = app.socket;
  s.on("call.incoming", (msg) => {
    if (app.me?.role === "seller") showIncoming(msg);
  });
  const maybeClose = (msg) => {
    const c = msg.call;
    if (ringingCallId && c && String(c.id) === ringingCallId && c.state !== "ringing") closeIncoming();
  };
  s.on("call.state", maybeClose);
  s.on("call.ended", (msg) => {
    maybeClose(msg);
    app.refreshBalance();
  });
  // A favourite came online (at most once per seller per notice interval, by the server).
  s.on("seller.online", (msg) => {
    if (app.me?.role !== "buyer" || !msg.seller?.display_name) return;
    toast(t("toast.online", { name: msg.seller.display_name }), "ok");
    app.onSellerOnline?.(msg.seller);
  });
  s.on("meter", (msg) => {
    if (app.me?.role === "buyer" && msg.balance != null) app.setBalance(msg.balance);
  });
  document.getElementById("incoming").addEventListener("cancel", (ev) => ev.preventDefault());
}

/** The header's language switcher: a labelled <select>; a change redraws the page in place. */
function languageSwitcher() {
  const id = "lang-switch";
  const select = h("select.lang-select", { id, name: "lang", "data-testid": "lang-switch" },
    Object.entries(LANGUAGES).map(([code, name]) =>
      h("option", { value: code, lang: code, selected: code === currentLanguage(), "data-i18n-skip": true }, name)));
  select.addEventListener("change", () => setLanguage(select.value));
  return h("span.lang", h("label.visually-hidden", { for: id }, t("header.language")), select);
}

async function boot() {
  // The catalogues and the client config load together: the first page waits for both.
  const catalogues = initI18n();
  const config = get("/api/client-config").catch(() => ({}));
  await catalogues;
  translateShell();
  onLanguageChange(async () => {
    // Redraw in place: the header, the banner and the page (no reload, the session stays).
    // A call in progress is not redrawn (its page owns the media): it switches on the next page.
    const focusLang = document.activeElement?.id === "lang-switch";
    translateShell();
    showBanner();
    if (currentRoute().name === "call") app.renderHeader();
    else await route();
    if (focusLang) document.getElementById("lang-switch")?.focus();
  });
  installUnlock();
  keyboardScrollRegions();
  onUnauthorized(() => {
    if (app.me) {
      app.me = null;
      app.socket.stop();
      toast(t("toast.session_ended"), "error");
      app.go("#/login");
    }
  });
  app.config = await config;
  showBanner();
  watchCallsEverywhere();
  await app.loadMe();
  window.addEventListener("hashchange", route);
  await route();
  document.documentElement.dataset.ready = "1";
}

/** The words of index.html itself. */
function translateShell() {
  document.querySelector(".skip-link").textContent = t("shell.skip");
  document.querySelector(".brand").setAttribute("aria-label", t("shell.home"));
  document.getElementById("nav").setAttribute("aria-label", t("shell.nav"));
}

function showBanner() {
  if (app.config?.network && app.config.network !== "mainnet") {
    const banner = document.getElementById("banner");
    banner.textContent = app.config.network === "devnet"
      ? t("banner.devnet") : t("banner.testnet", { network: app.config.network });
    banner.hidden = false;
  }
}

boot();
