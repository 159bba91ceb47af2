// One WebSocket per tab at /ws, authenticated by the session cookie. Reconnects on its own
// (a call survives a short drop: the server pauses it and waits for the grace period).

export class Socket extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.wanted = false;
    this.attempt = 0;
    this.pingTimer = null;
    this.retryTimer = null;
    this.everOpened = false;
    // Signals that arrive before a call page listens (an offer racing the seller's accept)
    // wait here until that call's page claims them.
    this.buffered = new Map();
    this.claimed = new Set();
  }

  claimSignals(callId) {
    const id = String(callId);
    this.claimed.add(id);
    const list = this.buffered.get(id) || [];
    this.buffered.delete(id);
    return list;
  }

  releaseSignals(callId) {
    this.claimed.delete(String(callId));
    this.buffered.delete(String(callId));
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    this.wanted = true;
    if (!this.ws) this.connect();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "logout");
  }

  connect() {
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: "ping" }), 15000);
      this.dispatchEvent(new CustomEvent("open", { detail: { reconnected } }));
    });
    ws.addEventListener("message", (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      if (msg.type === "signal" && !this.claimed.has(String(msg.call_id))) {
        const list = this.buffered.get(String(msg.call_id)) || [];
        if (list.length < 100) list.push(msg);
        this.buffered.set(String(msg.call_id), list);
      }
      if ((msg.type === "call.ended") && msg.call) this.buffered.delete(String(msg.call.id));
      this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
      this.dispatchEvent(new CustomEvent("message", { detail: msg }));
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      this.dispatchEvent(new CustomEvent("close"));
      if (this.wanted) this.scheduleRetry();
    });
    // An error is always followed by close; the close handler reconnects.
    ws.addEventListener("error", () => {});
  }

  scheduleRetry() {
    clearTimeout(this.retryTimer);
    const delay = Math.min(5000, 300 * 2 ** this.attempt) + Math.random() * 200;
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      if (this.wanted && !this.ws) this.connect();
    }, delay);
  }

  /** Sends when open; returns false (message dropped) otherwise. */
  send(msg) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  on(type, fn) {
    const handler = (ev) => fn(ev.detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }
}
