// Sign up and log in.

import { post } from "../api.js";
import { clear, field, h, onSubmit } from "../ui.js";

function trustNote() {
  return h("p.trust", lockIcon(), h("span",
    "Your balance is kept in a double-entry ledger. You pay only for minutes of live video, measured by the server, and you can end a call at any moment."));
}

function lockIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M7 10V7a5 5 0 0 1 10 0v3h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h1zm2 0h6V7a3 3 0 0 0-6 0v3z");
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

export function login(main, _route, app) {
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  // Shown when the account has two-factor on (the server answers otp_required).
  const otp = h("input", { type: "text", name: "otp", inputmode: "numeric", autocomplete: "one-time-code" });
  const otpField = field("Code from your authenticator app (or a recovery code)", otp);
  otpField.hidden = true;
  const form = h("form", { novalidate: true },
    field("Email", email),
    field("Password", password),
    otpField,
    h("button.btn.block", { type: "submit" }, "Log in"));
  onSubmit(form, async (fd) => {
    const body = { email: fd.get("email"), password: fd.get("password") };
    const code = String(fd.get("otp") || "").trim();
    if (!otpField.hidden && code) body.otp = code;
    try {
      const data = await post("/api/auth/login", body);
      await app.loggedIn(data);
    } catch (err) {
      if (err.code === "otp_required" && otpField.hidden) {
        otpField.hidden = false;
        otp.focus();
        throw new Error("Two-factor authentication is on: enter the code your app shows.");
      }
      throw err;
    }
  });
  clear(main, h("section.auth",
    h("div.card",
      h("h1", "Log in"),
      h("p.muted", "Welcome back. Pick up where you left off."),
      form,
      h("p.small", h("a", { href: "#/forgot" }, "Forgot your password?")),
      trustNote()),
    h("p.auth-switch", "New here? ", h("a", { href: "#/signup" }, "Create an account"))));
  email.focus();
}

export function signup(main, route, app) {
  const role = route.query.get("role") === "seller" ? "seller" : "buyer";
  const roleChoice = (value, title, sub) => h("label",
    h("input", { type: "radio", name: "role", value, checked: value === role }),
    h("span", title, h("small", sub)));
  const name = h("input", { type: "text", name: "display_name", autocomplete: "nickname", required: true, maxlength: 60 });
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "new-password", required: true, minlength: 10 });
  const confirm = (name, text) => h("label.check",
    h("input", { type: "checkbox", name, value: "yes", required: true }), h("span", text));
  const form = h("form", { novalidate: true },
    h("fieldset.field",
      h("legend.visually-hidden", "Account type"),
      h("div.role-pick",
        roleChoice("buyer", "I want to talk", "Top up and call by the minute"),
        roleChoice("seller", "I want to earn", "Set a rate, take calls"))),
    field("Display name", name, "Shown to the people you talk to."),
    field("Email", email),
    field("Password", password, "At least 10 characters."),
    // Read before the boxes are ticked; in a new tab, so the form keeps what was typed.
    h("p.small.muted.terms-link", "Read the ",
      h("a", { href: "#/terms", target: "_blank", rel: "noopener" }, "terms of service"),
      " (18+ only; what a minute costs, refunds, withdrawals, privacy)."),
    confirm("adult", "I am 18 or older"),
    confirm("terms", "I accept the terms of service"),
    h("button.btn.block", { type: "submit" }, "Create account"));
  onSubmit(form, async (fd) => {
    const body = {
      email: fd.get("email"), password: fd.get("password"),
      role: fd.get("role"), display_name: fd.get("display_name"),
      adult: fd.get("adult") === "yes", terms: fd.get("terms") === "yes",
    };
    await post("/api/auth/register", body);
    const data = await post("/api/auth/login", { email: body.email, password: body.password });
    await app.loggedIn(data);
  });
  clear(main, h("section.auth",
    h("div.card",
      h("h1", "Create your account"),
      h("p.muted", "Pay-per-minute video calls, settled in USDT."),
      form,
      trustNote()),
    h("p.auth-switch", "Already have an account? ", h("a", { href: "#/login" }, "Log in"))));
  name.focus();
}
