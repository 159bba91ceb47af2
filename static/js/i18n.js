// The pages' words: one message catalogue per language (static/i18n/<lang>.json, the same
// keys in each), the current language, and dates and numbers formatted for it.
//
// t("key", {name: value}) looks the key up in the current catalogue, then in English, and
// fills its {name} placeholders. A value that is an object holds plural forms chosen by
// Intl.PluralRules from params.count ({"one": "…", "other": "…"}). The language is the
// one the switcher stored (localStorage "mc_lang"), else the first of navigator.languages
// that has a catalogue, else English.

export const LANGUAGES = { en: "English", es: "Español" };
const STORE = "mc_lang";

const catalogues = {};
let lang = "en";
const listeners = new Set();

function pick() {
  let stored = null;
  try { stored = localStorage.getItem(STORE); } catch { /* private mode */ }
  if (stored && stored in LANGUAGES) return stored;
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const base = String(l).toLowerCase().split("-")[0];
    if (base in LANGUAGES) return base;
  }
  return "en";
}

async function load(code) {
  if (catalogues[code]) return;
  const resp = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`catalogue ${code}: ${resp.status}`);
  catalogues[code] = await resp.json();
}

/** Loads English and the chosen language; called once before the first page renders. */
export async function initI18n() {
  const want = pick();
  const [, chosen] = await Promise.allSettled([load("en"), want === "en" ? null : load(want)]);
  lang = chosen.status === "fulfilled" ? want : "en";
  document.documentElement.lang = lang;
}

export function currentLanguage() {
  return lang;
}

/** The switcher: loads the catalogue, stores the choice, and tells the app to redraw. */
export async function setLanguage(code) {
  if (!(code in LANGUAGES)) return;
  await load(code);
  lang = code;
  try { localStorage.setItem(STORE, code); } catch { /* private mode */ }
  document.documentElement.lang = code;
  for (const fn of listeners) fn(code);
}

export function onLanguageChange(fn) {
  listeners.add(fn);
}

export function has(key) {
  return key in (catalogues[lang] || {}) || key in (catalogues.en || {});
}

function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function t(key, params = {}) {
  let v = catalogues[lang]?.[key] ?? catalogues.en?.[key];
  if (v == null) return key;
  if (typeof v === "object") {
    const n = Number(params.count);
    const form = new Intl.PluralRules(locale()).select(Number.isFinite(n) ? n : 0);
    v = v[form] ?? v.other;
  }
  const shown = { ...params };
  if (typeof params.count === "number") shown.count = formatNumber(params.count);
  return fill(v, shown);
}

/** A message for an API error. In English the server's own message (it is English and the
 * most precise); in another language the catalogue's words for its code ({detail} is the
 * server's message, for the generic codes), else the server's English message. */
export function errorText(err) {
  const code = err?.code;
  const message = err?.message || String(err);
  if (lang === "en" || !code) return message;
  if (has(`error.${code}`)) return t(`error.${code}`, { detail: message });
  // An answer without the JSON error shape (a proxy's 502): api.js names it http_<status>.
  if (/^http_\d+$/.test(code)) return t("error.http_error");
  return message;
}

/** The BCP 47 locale for Intl: the language with the browser's region when they agree. */
export function locale() {
  for (const l of navigator.languages || []) {
    if (String(l).toLowerCase().split("-")[0] === lang) return l;
  }
  return lang === "en" ? "en-US" : lang;
}

export function formatNumber(n, opts) {
  return new Intl.NumberFormat(locale(), opts).format(n);
}

/** The locale's group and decimal separators, for decimal strings never made floats. */
export function separators() {
  const parts = new Intl.NumberFormat(locale()).formatToParts(12345.6);
  return {
    group: parts.find((p) => p.type === "group")?.value ?? ",",
    decimal: parts.find((p) => p.type === "decimal")?.value ?? ".",
  };
}

export function formatDateTime(d, opts) {
  return d.toLocaleString(locale(), opts);
}
