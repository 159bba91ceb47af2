// Small DOM helpers shared by the pages: an element builder, toasts, copy, dates (in the
// current language, i18n.js).

import { errorText, formatDateTime, formatNumber, has, locale, t } from "./i18n.js";

/** h("button.btn.secondary", {onclick}, "Text", child) -> HTMLElement. */
export function h(spec, attrs, ...children) {
  if (attrs == null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    if (attrs != null) children.unshift(attrs);
    attrs = {};
  }
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = [el.className, v].filter(Boolean).join(" ");
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" || k === "checked" || k === "muted" || k === "srcObject") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function toast(message, kind = "") {
  const box = document.getElementById("toasts");
  const t = h("div.toast", { class: kind }, message);
  box.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 7000 : 4000);
}

/** `what` is the toast's words ("Copied to the clipboard" unless given). */
export async function copyText(text, what = null) {
  try {
    await navigator.clipboard.writeText(text);
    toast(what ?? t("ui.copied"), "ok");
    return true;
  } catch {
    // Clipboard access may be refused (http page, permissions): select the text instead.
    toast(t("ui.copy_failed"), "error");
    return false;
  }
}

/** A copy button: the toast (an aria-live region) says what was copied, and the button
 * itself reads "Copied" for two seconds. */
export function copyButton(text, label = t("ui.copy"), what = null) {
  const btn = h("button.btn.secondary.small", { type: "button" }, label);
  btn.addEventListener("click", async () => {
    if (!(await copyText(text, what))) return;
    btn.textContent = t("ui.copied_button");
    btn.dataset.copied = "";
    setTimeout(() => { btn.textContent = label; delete btn.dataset.copied; }, 2000);
  });
  return btn;
}

export function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  // This year's dates without the year: table columns stay narrow on a phone.
  const opts = { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" };
  if (d.getFullYear() !== new Date().getFullYear()) opts.year = "numeric";
  return formatDateTime(d, opts);
}

/** A long reference (a TXID with its log index) cut to its ends; the whole in the title. */
export function shortRef(ref) {
  const s = String(ref ?? "");
  return s.length > 24 ? h("span", { title: s }, `${s.slice(0, 8)}…${s.slice(-6)}`) : s;
}

export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(Number(totalSeconds) || 0));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

export function initials(name) {
  return (name || "?").trim().split(/\s+/).slice(0, 2).map((p) => p[0]).join("").toUpperCase();
}

export function stars(rating) {
  if (rating == null || rating === "") return h("span.muted.small", t("ui.no_ratings"));
  const r = Math.round(Number(rating));
  const shown = formatNumber(Number(rating), { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  return h("span.stars", { "aria-label": t("ui.rated", { rating: shown }) },
    "★".repeat(r) + "☆".repeat(Math.max(0, 5 - r)), h("span.muted.small", ` ${shown}`));
}

export function errorBox(err) {
  return h("div.form-error", { role: "alert" }, errorText(err));
}

/** A form's submit with its button disabled while the request runs; errors shown above it. */
export function onSubmit(form, fn) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const btn = form.querySelector("button[type=submit]");
    form.querySelector(":scope > .form-error")?.remove();
    if (btn) btn.disabled = true;
    try {
      await fn(new FormData(form));
    } catch (err) {
      form.prepend(errorBox(err));
    } finally {
      if (btn) btn.disabled = false;
    }
  });
  return form;
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div.field", h("label", { for: id }, label), input, hint ? h("div.hint", hint) : null);
}

export function statusBadge(status) {
  const kinds = {
    credited: "ok", confirmed: "ok", sent: "info", signed: "info", queued: "info", confirming: "warn",
    review: "warn", unmatched: "warn", pending: "warn", failed: "danger", rejected: "danger", open: "warn",
    resolved: "ok",
  };
  return h("span.badge", { class: kinds[status] || "" }, has(`status.${status}`) ? t(`status.${status}`) : status);
}

export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Tables wider than a phone scroll sideways inside their `.table-wrap`: each such box is
 * made a named, focusable region so that a keyboard can scroll it (axe:
 * scrollable-region-focusable). Done once for the whole document, for every page. */
export function keyboardScrollRegions(root = document.body) {
  const name = (wrap) => {
    const caption = wrap.querySelector("caption")?.textContent;
    if (caption) return caption.trim();
    const box = wrap.closest("section, .card, form, div.field") || wrap.parentElement;
    const heading = box?.querySelector("h1, h2, h3");
    // "<heading> table": the region of the table is not the section it sits in.
    const title = heading?.textContent?.trim();
    return title ? t("ui.named_table", { title }) : t("ui.table");
  };
  const mark = (el) => {
    for (const wrap of el.querySelectorAll?.(".table-wrap:not([tabindex])") ?? []) {
      wrap.tabIndex = 0;
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", name(wrap));
    }
  };
  mark(root);
  new MutationObserver((changes) => {
    for (const c of changes) for (const n of c.addedNodes) if (n.nodeType === 1) {
      if (n.matches(".table-wrap")) mark(n.parentElement); else mark(n);
    }
  }).observe(root, { childList: true, subtree: true });
}

/** "1 call", "2 calls": a count with its noun, by the catalogue's plural forms of the key
 * `one` ({count} in each form); a word that is no key reads English: noun + "s" unless given. */
export function plural(n, one, many = `${one}s`) {
  const count = Number(n);
  if (has(one)) return t(one, { count: Number.isFinite(count) ? count : String(n) });
  const shown = Number.isFinite(count) ? count.toLocaleString("en-US") : String(n);
  return `${shown} ${count === 1 ? one : many}`;
}

export { locale };
