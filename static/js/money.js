// Money in the page is decimal strings turned into BigInt units, never floats.
// 1 token = 0.01 USDT; tokens have up to 4 decimals, USDT up to 6, so the smallest token
// unit (0.0001 token) is exactly 1 µUSDT. Shown figures (grouped) take the current
// language's group and decimal marks (i18n.js); ungrouped text (inputs, API bodies) keeps ".".

import { separators } from "./i18n.js";

export function toUnits(text, places) {
  const s = String(text ?? "").trim();
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) throw new Error(`not a number: ${s}`);
  const frac = (m[3] || "");
  if (frac.length > places) throw new Error(`at most ${places} decimals`);
  const v = BigInt((m[2] || "0") + frac.padEnd(places, "0"));
  return m[1] ? -v : v;
}

function group(intText, mark) {
  return intText.replace(/\B(?=(\d{3})+(?!\d))/g, mark);
}

export function fromUnits(units, places, { minDecimals = 0, grouped = true } = {}) {
  const neg = units < 0n;
  const abs = neg ? -units : units;
  const base = 10n ** BigInt(places);
  const whole = (abs / base).toString();
  let frac = (abs % base).toString().padStart(places, "0").replace(/0+$/, "");
  if (frac.length < minDecimals) frac = frac.padEnd(minDecimals, "0");
  if (!grouped) return (neg ? "-" : "") + whole + (frac ? `.${frac}` : "");
  const marks = separators();
  return (neg ? "-" : "") + group(whole, marks.group) + (frac ? `${marks.decimal}${frac}` : "");
}

/** "1012.3456" -> "1,012.3456" (at least 2 decimals shown when there is a fraction). */
export function tokens(text) {
  try {
    const u = toUnits(text, 4);
    return fromUnits(u, 4, { minDecimals: u % 10000n === 0n ? 0 : 2 });
  } catch {
    return String(text ?? "—");
  }
}

/** tokens "1012.3456" -> USDT "10.123456" exactly (100 tokens = 1 USDT). */
export function tokensToUsdt(text, { minDecimals = 2 } = {}) {
  try {
    return fromUnits(toUnits(text, 4), 6, { minDecimals });
  } catch {
    return "—";
  }
}

export function usdt(text, { minDecimals = 2 } = {}) {
  try {
    return fromUnits(toUnits(text, 6), 6, { minDecimals });
  } catch {
    return String(text ?? "—");
  }
}

/** µUSDT integer -> "2.5" USDT text (no grouping, for inputs and APIs). */
export function musdtToUsdt(musdt) {
  return fromUnits(BigInt(musdt), 6, { grouped: false });
}

export function tokensToMusdt(text) {
  return toUnits(text, 4);
}

/** USDT "10.000317" -> tokens "1000.0317". */
export function usdtToTokens(text) {
  return fromUnits(toUnits(text, 6), 4);
}

export function isPositive(text, places) {
  try {
    return toUnits(text, places) > 0n;
  } catch {
    return false;
  }
}
