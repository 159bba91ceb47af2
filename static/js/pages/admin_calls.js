// Operator page, calls: a call's record as a dispute is decided on it (live time, charge,
// states, and the chat between the parties), and the queue of user reports, a reported
// chat message shown with it. Every text a user wrote is shown as text (never as HTML).

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
  const btn = h("button.linkish.small", { type: "button", "aria-expanded": "false" }, "Call record");
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

/** The open reports, newest first; a report of a chat message shows the message. */
export async function loadReports(box) {
  try {
    const { reports = [] } = await get("/api/admin/reports?status=open");
    clear(box, reports.length ? h("div.table-wrap", h("table", { "data-testid": "reports" },
      h("thead", h("tr", h("th", "Reported"), h("th", "Who"), h("th", "Reason"), h("th", "Message"))),
      h("tbody", reports.map((r) => h("tr",
        h("td.small", formatDate(r.created_at)),
        h("td.small", `${r.reported_email} (#${r.reported_id}, ${r.reported_role})`, h("div.muted", `by ${r.reporter_email}`),
          h("div.muted", `${r.reports_about_user} report(s) in all`)),
        h("td", r.reason || "—"),
        h("td", r.message
          ? h("div", h("div.chat-text", r.message.text), h("div.muted.small", `call #${r.message.call_id}, ${formatDate(r.message.at)}`), recordButton(r.message.call_id))
          : "—")))))) : h("p.empty", "No open reports."));
  } catch (err) {
    clear(box, errorBox(err));
  }
}
