// Sign up and log in.

import { post } from "../api.js";
import { t } from "../i18n.js";
import { clear, field, h, onSubmit } from "../ui.js";

function trustNote() {
  return h("p.trust", lockIcon(), h("span",
    t("auth.trust")));
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
  const otpField = field(t("auth.otp"), otp);
  otpField.hidden = true;
  const form = h("form", { novalidate: true },
    field(t("auth.email"), email),
    field(t("auth.password"), password),
    otpField,
    h("button.btn.block", { type: "submit" }, t("nav.login")));
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
        throw new Error(t("error.otp_required"));
      }
      throw err;
    }
  });
  clear(main, h("section.auth",
    h("div.card",
      h("h1", t("nav.login")),
      h("p.muted", t("auth.welcome")),
      form,
      h("p.small", h("a", { href: "#/forgot" }, t("auth.forgot"))),
      trustNote()),
    h("p.auth-switch", t("auth.new_here"), " ", h("a", { href: "#/signup" }, t("auth.create_link")))));
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
      h("legend.visually-hidden", t("auth.account_type")),
      h("div.role-pick",
        roleChoice("buyer", t("auth.role_buyer"), t("auth.role_buyer_sub")),
        roleChoice("seller", t("auth.role_seller"), t("auth.role_seller_sub")))),
    field(t("auth.display_name"), name, t("auth.display_name_hint")),
    field(t("auth.email"), email),
    field(t("auth.password"), password, t("auth.password_hint")),
    // Read before the boxes are ticked; in a new tab, so the form keeps what was typed.
    h("p.small.muted.terms-link", t("auth.terms_before"), " ",
      h("a", { href: "#/terms", target: "_blank", rel: "noopener" }, t("auth.terms_link")),
      " ", t("auth.terms_after")),
    confirm("adult", t("auth.adult")),
    confirm("terms", t("auth.accept_terms")),
    h("button.btn.block", { type: "submit" }, t("auth.create")));
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
      h("h1", t("auth.create_title")),
      h("p.muted", t("auth.tagline")),
      form,
      trustNote()),
    h("p.auth-switch", t("auth.have_account"), " ", h("a", { href: "#/login" }, t("nav.login")))));
  name.focus();
}
