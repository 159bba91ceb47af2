// Operator page, calls: a call's record as a dispute is decided on it (live time, charge,
// states, and the chat between the parties), opened under a dispute or a report (the
// reports queue is in admin_find.js). Every text a user wrote is shown as text, never HTML.

import { get } from "../api.js";
import * as money from "../money.js";
import { clear, errorBox, formatDate, formatDuration, h } from "../ui.js";

/** The chat of a call's record: who said what, when. */
export function chatLines(record) {
  const call = record.call || {};
  const who = (id) => (String(id) === String(call.buyer_id) ? "Buyer" : String(id) === String(call.seller_id) ? "Seller" : `User ${id}`);
  const messages = record.messages || [];
  if (!messages.length) return h("p.muted.small", "No chat messages in this call.");
  return h("ol.chat-lines", { "data-testid": "record-chat" }, messages.map((m) => h("li", { "data-message-id": m.id },
    h("span.chat-who", `${who(m.from)} (#${m.from})`),
    h("span.chat-time.muted.small", formatDate(m.at)),
    h("div.chat-text", m.text))));
}

/** A button that opens a call's whole record under it. */
export function recordButton(callId) {
  const box = h("div.record", { hidden: true });
  const btn = h("button.linkish.small", { type: "button", "aria-expanded": "false" }, `Call record #${callId}`);
  btn.addEventListener("click", async () => {
    if (!box.hidden) {
      box.hidden = true;
      btn.setAttribute("aria-expanded", "false");
      return;
    }
    box.hidden = false;
    btn.setAttribute("aria-expanded", "true");
    clear(box, h("p.muted.small", "Loading…"));
    try {
      const record = await get(`/api/admin/calls/${encodeURIComponent(callId)}/record`);
      const c = record.call || {};
      clear(box,
        h("p.small", `Live ${formatDuration(c.live_seconds || 0)} · charged ${money.tokens(c.charged ?? "0")} tokens · ${String(c.end_reason || c.state || "").replace(/_/g, " ")}`),
        h("p.small.muted", (record.events || []).map((e) => `${e.state}${e.detail ? ` (${e.detail})` : ""}`).join(" → ")),
        h("h4.small-head", "Chat"),
        chatLines(record));
    } catch (err) {
      clear(box, errorBox(err));
    }
  });
  return h("div", btn, box);
}
