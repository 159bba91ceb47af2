// The HTTP API: JSON in and out, the session cookie, and the CSRF header on writes.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let csrfToken = null;

export function setCsrf(token) {
  csrfToken = token;
}

function csrfFromCookie() {
  const m = document.cookie.split(/;\s*/).find((c) => c.startsWith("mc_csrf="));
  return m ? decodeURIComponent(m.slice("mc_csrf=".length)) : null;
}

const listeners = new Set();
/** Called with the ApiError of any 401, so the app can go back to the login page. */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

export async function api(method, path, body, { headers = {}, quiet401 = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  // A Blob (a photo) goes as it is, with its own type; anything else as JSON.
  const raw = typeof Blob !== "undefined" && body instanceof Blob;
  if (body !== undefined) h["Content-Type"] = raw ? (body.type || "application/octet-stream") : "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const csrf = csrfFromCookie() || csrfToken;
    if (csrf) h["X-CSRF-Token"] = csrf;
  }
  let resp;
  try {
    resp = await fetch(path, {
      method, headers: h, credentials: "same-origin",
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
  }
  if (resp.status === 204) return null;
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const e = data?.error;
    const err = new ApiError(resp.status, e?.code || `http_${resp.status}`,
      e?.message || `The server answered ${resp.status}. Try again in a moment.`);
    if (resp.status === 401 && !quiet401) listeners.forEach((fn) => fn(err));
    throw err;
  }
  // 202 answers carry a body too (e.g. a deposit still confirming).
  if (data && typeof data === "object") data._status = resp.status;
  return data;
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const post = (path, body, opts) => api("POST", path, body ?? {}, opts);
export const put = (path, body, opts) => api("PUT", path, body ?? {}, opts);
export const del = (path, opts) => api("DELETE", path, undefined, opts);
