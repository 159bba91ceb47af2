// The account's security: forgot password, reset with the mailed link, verify the email,
// and the Account page (email, change password, two-factor, sessions).

import { del, get, post } from "../api.js";
import { clear, errorBox, field, formatDate, h, onSubmit, toast } from "../ui.js";

function authCard(title, sub, ...body) {
  return h("section.auth", h("div.card", h("h1", title), sub ? h("p.muted", sub) : null, ...body));
}

export function forgot(main) {
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const done = h("p", { "aria-live": "polite", "data-testid": "forgot-done" });
  const form = h("form", { novalidate: true },
    field("Email", email),
    h("button.btn.block", { type: "submit" }, "Send me a reset link"));
  onSubmit(form, async (fd) => {
    await post("/api/auth/password-reset", { email: String(fd.get("email") || "").trim() });
    done.textContent = "If this email has an account, a link to choose a new password is on its way. It works once, for a limited time.";
    form.reset();
  });
  clear(main, authCard("Forgot your password?", "We mail you a link to choose a new one.", form, done,
    h("p.auth-switch", h("a", { href: "#/login" }, "Back to log in"))));
  email.focus();
}

export function reset(main, route, app) {
  const token = route.query.get("token") || "";
  const password = h("input", { type: "password", name: "password", autocomplete: "new-password", required: true, minlength: 10 });
  const again = h("input", { type: "password", name: "again", autocomplete: "new-password", required: true, minlength: 10 });
  const form = h("form", { novalidate: true },
    field("New password", password, "At least 10 characters."),
    field("New password again", again),
    h("button.btn.block", { type: "submit" }, "Set the new password"));
  onSubmit(form, async (fd) => {
    if (fd.get("password") !== fd.get("again")) throw new Error("The two passwords differ.");
    await post("/api/auth/password-reset/confirm", { token, new_password: fd.get("password") });
    if (app.me) await app.loadMe();  // every session was revoked, this one too
    toast("Password changed. Log in with the new one.", "ok");
    app.go("#/login");
  });
  clear(main, token
    ? authCard("Choose a new password", "Every session of your account is logged out.", form)
    : authCard("This link is incomplete", "Open the link from the mail again, or ask for a new one.",
      h("a.btn", { href: "#/forgot" }, "Ask for a new link")));
  password.focus();
}

export async function verify(main, route, app) {
  const token = route.query.get("token") || "";
  try {
    await post("/api/auth/email/verify", { token });
    if (app.me) await app.loadMe();
    clear(main, authCard("Email verified", "Thank you. Your address is confirmed.",
      h("p", { "data-testid": "verified" }, "You can now withdraw to your wallet."),
      h("a.btn", { href: app.me ? `#/${app.home()}` : "#/login" }, "Continue")));
  } catch (err) {
    clear(main, authCard("This link does not work", null, errorBox(err),
      h("p.muted", "Links work once and expire. Ask for a new one on the Account page.")));
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
      clear(emailBox, h("p", me.email, " ", h("span.badge.ok", "verified")));
      return;
    }
    clear(emailBox, h("p", me.email, " ", h("span.badge.warn", "not verified")),
      h("p.muted.small", "Open the link we mailed you at sign-up. You need a verified address before your first withdrawal."),
      h("button.btn.secondary.small", { type: "button", onclick: async () => {
        try {
          await post("/api/auth/email/resend");
          toast("A new link is on its way.", "ok");
        } catch (err) {
          toast(err.message, "error");
        }
      } }, "Send the link again"));
  }

  function renderPassword() {
    const current = h("input", { type: "password", name: "current", autocomplete: "current-password", required: true });
    const next = h("input", { type: "password", name: "next", autocomplete: "new-password", required: true, minlength: 10 });
    const form = h("form", { novalidate: true, "data-testid": "change-password" },
      field("Current password", current),
      field("New password", next, "At least 10 characters. Your other sessions are logged out."),
      h("button.btn", { type: "submit" }, "Change password"));
    onSubmit(form, async (fd) => {
      await post("/api/auth/password", { current_password: fd.get("current"), new_password: fd.get("next") });
      form.reset();
      toast("Password changed. Other sessions were logged out.", "ok");
      await renderSessions();
    });
    clear(passwordBox, form);
  }

  function renderTwoFactor() {
    if (app.me.two_factor) {
      const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
      const code = h("input", { type: "text", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
      const form = h("form", { novalidate: true },
        field("Password", password),
        field("Code from your app (or a recovery code)", code),
        h("button.btn.danger", { type: "submit" }, "Turn off two-factor"));
      onSubmit(form, async (fd) => {
        await post("/api/auth/2fa/disable", { password: fd.get("password"), code: String(fd.get("code") || "").trim() });
        await app.loadMe();
        toast("Two-factor authentication is off.", "ok");
        renderTwoFactor();
      });
      clear(twoFactorBox, h("p", h("span.badge.ok", "on"), " Logins and withdrawals ask for a code from your authenticator app."), form);
      return;
    }
    clear(twoFactorBox, h("p.muted", "Protect your balance: logins and withdrawals will need a code from an authenticator app."),
      h("button.btn", { type: "button", "data-testid": "2fa-setup", onclick: startSetup }, "Set up two-factor"));
  }

  async function startSetup() {
    let setup;
    try {
      setup = await post("/api/auth/2fa/setup");
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    const code = h("input", { type: "text", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true, maxlength: 6 });
    const form = h("form", { novalidate: true },
      field("The 6-digit code your app shows", code),
      h("button.btn", { type: "submit" }, "Turn on"));
    onSubmit(form, async (fd) => {
      const res = await post("/api/auth/2fa/enable", { code: String(fd.get("code") || "").trim() });
      await app.loadMe();
      clear(twoFactorBox, h("p", h("span.badge.ok", "on"), " Two-factor authentication is on."),
        h("p", h("strong", "Recovery codes."), " Each works once instead of a code, if you lose your phone. They are shown only now: keep them somewhere safe."),
        h("ul.mono", { "data-testid": "recovery-codes" }, res.recovery_codes.map((c) => h("li", c))),
        h("button.btn.secondary", { type: "button", onclick: renderTwoFactor }, "I have saved them"));
    });
    clear(twoFactorBox,
      h("p", "Scan this with an authenticator app (or type the key), then enter the code it shows."),
      h("img", { src: setup.qr, alt: "QR code of the two-factor secret", width: 200, height: 200 }),
      h("p.small", "Key: ", h("code", { "data-testid": "2fa-secret" }, setup.secret)),
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
        toast(err.message, "error");
      }
    };
    clear(sessionsBox,
      h("div.table-wrap", h("table", { "data-testid": "sessions" },
        h("thead", h("tr", h("th", "Since"), h("th", "Last seen"), h("th", "Address"), h("th", "Browser"), h("th", h("span.visually-hidden", "Action")))),
        h("tbody", data.sessions.map((s) => h("tr",
          h("td.small", formatDate(s.created_at)),
          h("td.small", formatDate(s.last_seen_at)),
          h("td.mono.small", s.client_address || ""),
          h("td.small", s.user_agent || ""),
          h("td", s.current ? h("span.badge", "this one")
            : h("button.btn.secondary.small", { type: "button", onclick: () => revoke(s.id) }, "Revoke"))))))),
      h("button.btn.danger.small", { type: "button", onclick: async () => {
        try {
          await post("/api/auth/logout-everywhere");
        } finally {
          await app.loadMe();
          app.go("#/login");
        }
      } }, "Log out everywhere"));
  }

  renderEmail();
  renderPassword();
  renderTwoFactor();
  clear(main,
    h("div.page-head", h("div", h("h1", "Account"), h("p.muted", "Your email, password, two-factor and sessions."))),
    h("div.grid-2",
      h("div",
        h("section.card", h("h2", "Email"), emailBox),
        h("section.card", h("h2", "Password"), passwordBox)),
      h("div",
        h("section.card", h("h2", "Two-factor authentication"), twoFactorBox))),
    h("section.card", h("h2", "Sessions"), sessionsBox));
  await renderSessions();
}
