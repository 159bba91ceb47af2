// The account's security: forgot password, reset with the mailed link, verify the email,
// and the Account page (email, change password, two-factor, sessions).

import { del, get, post } from "../api.js";
import { errorText, t } from "../i18n.js";
import { clear, errorBox, field, formatDate, h, onSubmit, toast } from "../ui.js";

function authCard(title, sub, ...body) {
  return h("section.auth", h("div.card", h("h1", title), sub ? h("p.muted", sub) : null, ...body));
}

export function forgot(main) {
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const done = h("p", { "aria-live": "polite", "data-testid": "forgot-done" });
  const form = h("form", { novalidate: true },
    field(t("auth.email"), email),
    h("button.btn.block", { type: "submit" }, t("account.send_reset")));
  onSubmit(form, async (fd) => {
    await post("/api/auth/password-reset", { email: String(fd.get("email") || "").trim() });
    done.textContent = t("account.reset_sent");
    form.reset();
  });
  clear(main, authCard(t("auth.forgot"), t("account.forgot_sub"), form, done,
    h("p.auth-switch", h("a", { href: "#/login" }, t("account.back_login")))));
  email.focus();
}

export function reset(main, route, app) {
  const token = route.query.get("token") || "";
  const password = h("input", { type: "password", name: "password", autocomplete: "new-password", required: true, minlength: 10 });
  const again = h("input", { type: "password", name: "again", autocomplete: "new-password", required: true, minlength: 10 });
  const form = h("form", { novalidate: true },
    field(t("title.reset"), password, t("auth.password_hint")),
    field(t("account.new_again"), again),
    h("button.btn.block", { type: "submit" }, t("account.set_new")));
  onSubmit(form, async (fd) => {
    if (fd.get("password") !== fd.get("again")) throw new Error(t("account.differ"));
    await post("/api/auth/password-reset/confirm", { token, new_password: fd.get("password") });
    if (app.me) await app.loadMe();  // every session was revoked, this one too
    toast(t("account.changed_login"), "ok");
    app.go("#/login");
  });
  clear(main, token
    ? authCard(t("account.choose_new"), t("account.choose_new_sub"), form)
    : authCard(t("account.link_incomplete"), t("account.link_incomplete_sub"),
      h("a.btn", { href: "#/forgot" }, t("account.ask_new_link"))));
  password.focus();
}

export async function verify(main, route, app) {
  const token = route.query.get("token") || "";
  try {
    await post("/api/auth/email/verify", { token });
    if (app.me) await app.loadMe();
    clear(main, authCard(t("account.verified_title"), t("account.verified_sub"),
      h("p", { "data-testid": "verified" }, t("account.verified_text")),
      h("a.btn", { href: app.me ? `#/${app.home()}` : "#/login" }, t("account.continue"))));
  } catch (err) {
    clear(main, authCard(t("account.link_broken"), null, errorBox(err),
      h("p.muted", t("account.link_broken_sub"))));
  }
}

export async function account(main, _route, app) {
  const emailBox = h("div");
  const passwordBox = h("div");
  const twoFactorBox = h("div", { "data-testid": "twofactor" });
  const sessionsBox = h("div");

  function renderEmail() {
    const me = app.me;
    if (me.email_verified) {
      clear(emailBox, h("p", h("span", { "data-i18n-skip": true }, me.email), " ", h("span.badge.ok", t("account.verified"))));
      return;
    }
    clear(emailBox, h("p", h("span", { "data-i18n-skip": true }, me.email), " ", h("span.badge.warn", t("account.not_verified"))),
      h("p.muted.small", t("account.verify_hint")),
      h("button.btn.secondary.small", { type: "button", onclick: async () => {
        try {
          await post("/api/auth/email/resend");
          toast(t("account.link_sent"), "ok");
        } catch (err) {
          toast(errorText(err), "error");
        }
      } }, t("account.send_again")));
  }

  function renderPassword() {
    const current = h("input", { type: "password", name: "current", autocomplete: "current-password", required: true });
    const next = h("input", { type: "password", name: "next", autocomplete: "new-password", required: true, minlength: 10 });
    const form = h("form", { novalidate: true, "data-testid": "change-password" },
      field(t("account.current_password"), current),
      field(t("title.reset"), next, t("account.new_password_hint")),
      h("button.btn", { type: "submit" }, t("account.change_password")));
    onSubmit(form, async (fd) => {
      await post("/api/auth/password", { current_password: fd.get("current"), new_password: fd.get("next") });
      form.reset();
      toast(t("account.changed"), "ok");
      await renderSessions();
    });
    clear(passwordBox, form);
  }

  function renderTwoFactor() {
    if (app.me.two_factor) {
      const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
      const code = h("input", { type: "text", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
      const form = h("form", { novalidate: true },
        field(t("auth.password"), password),
        field(t("account.code_or_recovery"), code),
        h("button.btn.danger", { type: "submit" }, t("account.2fa_off_button")));
      onSubmit(form, async (fd) => {
        await post("/api/auth/2fa/disable", { password: fd.get("password"), code: String(fd.get("code") || "").trim() });
        await app.loadMe();
        toast(t("account.2fa_is_off"), "ok");
        renderTwoFactor();
      });
      clear(twoFactorBox, h("p", h("span.badge.ok", t("account.on")), " ", t("account.2fa_on_text")), form);
      return;
    }
    clear(twoFactorBox, h("p.muted", t("account.2fa_protect")),
      h("button.btn", { type: "button", "data-testid": "2fa-setup", onclick: startSetup }, t("account.2fa_setup")));
  }

  async function startSetup() {
    let setup;
    try {
      setup = await post("/api/auth/2fa/setup");
    } catch (err) {
      toast(errorText(err), "error");
      return;
    }
    const code = h("input", { type: "text", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true, maxlength: 6 });
    const form = h("form", { novalidate: true },
      field(t("account.six_digits"), code),
      h("button.btn", { type: "submit" }, t("account.turn_on")));
    onSubmit(form, async (fd) => {
      const res = await post("/api/auth/2fa/enable", { code: String(fd.get("code") || "").trim() });
      await app.loadMe();
      clear(twoFactorBox, h("p", h("span.badge.ok", t("account.on")), " ", t("account.2fa_is_on")),
        h("p", h("strong", t("account.recovery_title")), " ", t("account.recovery_text")),
        h("ul.mono", { "data-testid": "recovery-codes", "data-i18n-skip": true }, res.recovery_codes.map((c) => h("li", c))),
        h("button.btn.secondary", { type: "button", onclick: renderTwoFactor }, t("account.saved_them")));
    });
    clear(twoFactorBox,
      h("p", t("account.scan")),
      h("img", { src: setup.qr, alt: t("account.qr_alt"), width: 200, height: 200 }),
      h("p.small", t("account.key"), " ", h("code", { "data-testid": "2fa-secret", "data-i18n-skip": true }, setup.secret)),
      form);
    code.focus();
  }

  async function renderSessions() {
    let data;
    try {
      data = await get("/api/me/sessions");
    } catch (err) {
      clear(sessionsBox, errorBox(err));
      return;
    }
    const revoke = async (id) => {
      try {
        await del(`/api/me/sessions/${encodeURIComponent(id)}`);
        await renderSessions();
      } catch (err) {
        toast(errorText(err), "error");
      }
    };
    clear(sessionsBox,
      h("div.table-wrap", h("table", { "data-testid": "sessions" },
        h("thead", h("tr", h("th", t("account.since")), h("th", t("account.last_seen")), h("th", t("account.address")), h("th", t("account.browser")), h("th", h("span.visually-hidden", t("account.action"))))),
        h("tbody", data.sessions.map((s) => h("tr",
          h("td.small", formatDate(s.created_at)),
          h("td.small", formatDate(s.last_seen_at)),
          h("td.mono.small", { "data-i18n-skip": true }, s.client_address || ""),
          h("td.small", { "data-i18n-skip": true }, s.user_agent || ""),
          h("td", s.current ? h("span.badge", t("account.this_one"))
            : h("button.btn.secondary.small", { type: "button", onclick: () => revoke(s.id) }, t("account.revoke")))))))),
      h("button.btn.danger.small", { type: "button", onclick: async () => {
        try {
          await post("/api/auth/logout-everywhere");
        } finally {
          await app.loadMe();
          app.go("#/login");
        }
      } }, t("account.logout_everywhere")));
  }

  renderEmail();
  renderPassword();
  renderTwoFactor();
  clear(main,
    h("div.page-head", h("div", h("h1", t("nav.account")), h("p.muted", t("account.sub")))),
    h("div.grid-2",
      h("div",
        h("section.card", h("h2", t("auth.email")), emailBox),
        h("section.card", h("h2", t("auth.password")), passwordBox)),
      h("div",
        h("section.card", h("h2", t("account.2fa")), twoFactorBox))),
    h("section.card", h("h2", t("account.sessions")), sessionsBox));
  await renderSessions();
}
