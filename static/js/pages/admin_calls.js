// Operator page, calls: a call's record as a dispute is decided on it (live time, charge,
// states, and the chat between the parties), opened under a dispute or a report (the
// reports queue is in admin_find.js). Every text a user wrote is shown as text, never HTML.

import { get } from "../api.js";
import * as money from "../money.js";
import { t } from "../i18n.js";
import { clear, errorBox, formatDate, formatDuration, h } from "../ui.js";

/** The chat of a call's record: who said what, when. */
export function chatLines(record) {
  const call = record.call || {};
  const who = (id) => (String(id) === String(call.buyer_id) ? t("history.buyer") : String(id) === String(call.seller_id) ? t("history.seller") : t("admin.user_n", { id }));
  const messages = record.messages || [];
  if (!messages.length) return h("p.muted.small", t("admin.no_chat"));
  return h("ol.chat-lines", { "data-testid": "record-chat" }, messages.map((m) => h("li", { "data-message-id": m.id },
    h("span.chat-who", `${who(m.from)} (#${m.from})`),
    h("span.chat-time.muted.small", formatDate(m.at)),
    h("div.chat-text", { "data-i18n-skip": true }, m.text))));
}

/** A button that opens a call's whole record under it. */
export function recordButton(callId) {
  const box = h("div.record", { hidden: true });
  const btn = h("button.linkish.small", { type: "button", "aria-expanded": "false" }, t("admin.call_record", { id: callId }));
  btn.addEventListener("click", async () => {
    if (!box.hidden) {
      box.hidden = true;
      btn.setAttribute("aria-expanded", "false");
      return;
    }
    box.hidden = false;
    btn.setAttribute("aria-expanded", "true");
    clear(box, h("p.muted.small", t("common.loading")));
    try {
      const record = await get(`/api/admin/calls/${encodeURIComponent(callId)}/record`);
      const c = record.call || {};
      clear(box,
        h("p.small", t("admin.record_line", { live: formatDuration(c.live_seconds || 0), tokens: money.tokens(c.charged ?? "0") }), " · ",
          h("span", { "data-i18n-skip": true }, String(c.end_reason || c.state || "").replace(/_/g, " "))),
        h("p.small.muted", { "data-i18n-skip": true }, (record.events || []).map((e) => `${e.state}${e.detail ? ` (${e.detail})` : ""}`).join(" → ")),
        h("h4.small-head", t("admin.chat")),
        chatLines(record));
    } catch (err) {
      clear(box, errorBox(err));
    }
  });
  return h("div", btn, box);
}
