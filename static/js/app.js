// The single-page shell: who is logged in, the header, hash routes, the socket, and the
// incoming-call dialog that a seller sees on any page.

import { get, onUnauthorized, post, setCsrf } from "./api.js";
import * as money from "./money.js";
import { installUnlock, Ringer } from "./sound.js";
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
  login: { page: auth.login, anon: true, title: "Log in" },
  signup: { page: auth.signup, anon: true, title: "Sign up" },
  forgot: { page: account.forgot, anon: true, title: "Forgot password" },
  // Links from mails: opened logged in or not.
  reset: { page: account.reset, public: true, title: "New password" },
  verify: { page: account.verify, public: true, title: "Verify email" },
  terms: { page: terms.render, public: true, title: "Terms of service" },
  account: { page: account.account, title: "Account" },
  sellers: { page: sellers.render, title: "Sellers" },
  wallet: { page: wallet.render, title: "Wallet" },
  call: { page: call.render, title: "Call" },
  calls: { page: history.render, roles: ["buyer", "seller"], title: "Calls" },
  dashboard: { page: dashboard.render, roles: ["seller"], title: "Dashboard" },
  admin: { page: admin.render, roles: ["admin"], title: "Operator" },
};

const NAV = {
  buyer: [["sellers", "Sellers"], ["calls", "Calls"], ["wallet", "Wallet"], ["account", "Account"]],
  seller: [["dashboard", "Dashboard"], ["calls", "Calls"], ["wallet", "Wallet"], ["sellers", "Sellers"], ["account", "Account"]],
  admin: [["admin", "Operator"], ["sellers", "Sellers"], ["account", "Account"]],
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
    await this.loadMe();
    this.go(`#/${this.home()}`);
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
    clear(nav, (NAV[this.me?.role] || []).map(([name, label]) =>
      h("a", { href: `#/${name}`, "aria-current": name === current ? "page" : null }, label)));
    if (!this.me) {
      clear(account,
        current === "login" ? null : h("a.btn.secondary.small", { href: "#/login" }, "Log in"),
        current === "signup" ? null : h("a.btn.small", { href: "#/signup" }, "Sign up"));
      return;
    }
    const pill = this.balance && this.me.role !== "admin"
      ? h("a.balance-pill", { href: "#/wallet", title: "Available balance", "data-testid": "header-balance" },
        money.tokens(this.balance.available), h("small", "tokens"))
      : null;
    clear(account, pill, h("span.who", { title: this.me.email }, this.me.display_name),
      h("button.btn.secondary.small", { type: "button", onclick: () => this.logout() }, "Log out"));
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
  const main = document.getElementById("main");
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
  document.title = `${def.title} · meterchat`;
  app.renderHeader();
  clear(main, h("div.loading", "Loading…"));
  try {
    const cleanup = await def.page(main, r, app);
    if (seq !== app.renderSeq) {
      if (typeof cleanup === "function") cleanup();
      return;
    }
    app.cleanup = cleanup;
  } catch (err) {
    if (seq !== app.renderSeq) return;
    clear(main, h("div.card", h("h1", "Something went wrong"), h("p", err?.message || String(err)),
      h("button.btn", { type: "button", onclick: () => route() }, "Try again")));
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
  const who = msg.buyer?.display_name || "A buyer";
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
      toast(err.message, "error");
    }
  };
  clear(dlg,
    h("div.ring-icon", { "aria-hidden": "true" }, svgPhone()),
    h("h2", { id: "incoming-title" }, "Incoming call"),
    h("p", h("strong", who), " wants to talk"),
    h("p.muted", `at your rate of ${c.rate} tokens per minute`),
    h("div.actions",
      h("button.btn.danger", { type: "button", onclick: () => answer("decline") }, "Decline"),
      h("button.btn.ok", { type: "button", onclick: () => answer("accept"), autofocus: true }, "Accept")));
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
    toast(`${msg.seller.display_name} is online now`, "ok");
    app.onSellerOnline?.(msg.seller);
  });
  s.on("meter", (msg) => {
    if (app.me?.role === "buyer" && msg.balance != null) app.setBalance(msg.balance);
  });
  document.getElementById("incoming").addEventListener("cancel", (ev) => ev.preventDefault());
}

async function boot() {
  installUnlock();
  keyboardScrollRegions();
  onUnauthorized(() => {
    if (app.me) {
      app.me = null;
      app.socket.stop();
      toast("Your session ended. Log in again.", "error");
      app.go("#/login");
    }
  });
  try {
    app.config = await get("/api/client-config");
  } catch {
    app.config = {};
  }
  if (app.config.network && app.config.network !== "mainnet") {
    const banner = document.getElementById("banner");
    banner.textContent = app.config.network === "devnet"
      ? "Test network (devnet): balances here are test money, not real USDT."
      : `Test network (${app.config.network}): balances here are test USDT, not real money.`;
    banner.hidden = false;
  }
  watchCallsEverywhere();
  await app.loadMe();
  window.addEventListener("hashchange", route);
  await route();
  document.documentElement.dataset.ready = "1";
}

boot();
