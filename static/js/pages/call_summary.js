// The summary of a call that has ended (call.js shows it): why it ended, in words; the
// figures; the chat, still readable and reportable; and, for a call that had live time, the
// buyer's rating, dispute and tips (a call that never connected offers none: the server
// refuses them too). Also the tips' list and form, which the live call uses as well.

import { get, post } from "../api.js";
import * as money from "../money.js";
import { clear, field, formatDate, formatDuration, h, newIdempotencyKey, onSubmit, toast } from "../ui.js";
import { chatPanel } from "./call_room.js";

const TIP_WINDOW_MS = 24 * 3600 * 1000;

/** Why a call ended, in words for the buyer and for the seller. */
export function endReason(call, role) {
  const r = String(call.end_reason || call.state || "");
  const buyer = role === "buyer";
  const map = {
    declined: buyer ? "The seller declined the call. You were not charged." : "You declined the call.",
    missed: buyer ? "The seller did not answer in time. You were not charged." : "You missed this call.",
    cancelled: buyer ? "You cancelled the call before it was answered. You were not charged." : "The buyer cancelled before you answered.",
    buyer_hangup: buyer ? "You ended the call." : "The buyer ended the call.",
    seller_hangup: buyer ? "The seller ended the call." : "You ended the call.",
    spend_cap: buyer ? "Your spending cap for this call was reached." : "The buyer's spending cap for this call was reached.",
    insufficient_funds: buyer ? "Your balance ran out. Top up to call again." : "The buyer's balance ran out.",
    connection_lost: "The connection was lost and did not come back in time.",
    too_many_pauses: "The call was interrupted too often and was ended. You paid only for the live time.",
    failed: "The video connection could not be set up.",
    seller_offline: buyer ? "The seller went offline." : "You went offline.",
    banned: "The call was ended by the operator.",
    server_shutdown: "The call ended because the server restarted. You paid only for the time recorded.",
  };
  let text = map[r] || (r ? `The call ended (${r.replace(/_/g, " ")}).` : "The call ended.");
  if (money.isPositive(call.refunded ?? "0", 4)) {
    text += buyer ? ` It was too short to count: ${money.tokens(call.refunded)} tokens were refunded to you.` : " It was too short to count, so the buyer was refunded.";
  }
  return text;
}

/** A call's tips as lines, each once: a tip can arrive both as the POST's answer and as
 * the `tip` WebSocket message, and the record is read again after a reload. */
export function tipList(isBuyer, otherName) {
  const seen = new Set();
  const list = h("ul.tip-lines", { "data-testid": "tip-lines" });
  const box = h("div.tips", { hidden: true }, h("h2.small-head", "Tips"), list);
  // Announced to screen readers: the seller learns of a tip without looking.
  list.setAttribute("aria-live", "polite");
  return {
    box,
    add(tip) {
      if (!tip || seen.has(String(tip.id))) return;
      seen.add(String(tip.id));
      const text = isBuyer
        ? `You tipped ${money.tokens(tip.tokens)} tokens`
        : `${otherName} tipped ${money.tokens(tip.tokens)} tokens (you receive ${money.tokens(tip.seller_receives)})`;
      list.append(h("li", { "data-tip-id": tip.id }, text, h("span.muted.small", ` · ${formatDate(tip.at)}`)));
      box.hidden = false;
    },
  };
}

/** The buyer's tip form. Each tip gets its own Idempotency-Key; a tip whose request got no
 * clear answer (network error, 5xx) keeps its key, so pressing Tip again for the same amount
 * cannot tip twice even if the first request did reach the server. */
export function tipForm(call, otherName, onTip) {
  let pending = null; // {tokens, key}
  const amount = h("input", { type: "number", name: "tip_tokens", min: 1, step: 1, inputmode: "numeric", required: true, autocomplete: "off", placeholder: "e.g. 50" });
  const form = h("form.inline-form.tip-form",
    field("Tip (whole tokens)", amount),
    h("button.btn.secondary", { type: "submit" }, "Tip"));
  const done = h("div", { role: "status" });
  onSubmit(form, async (fd) => {
    clear(done);
    const text = String(fd.get("tip_tokens") || "").trim();
    if (!/^\d+$/.test(text) || BigInt(text) < 1n) throw new Error("A tip is a whole number of tokens, like 50.");
    const tokens = BigInt(text).toString();
    if (!confirm(`Tip ${money.tokens(tokens)} tokens to ${otherName}?`)) return;
    if (!pending || pending.tokens !== tokens) pending = { tokens, key: newIdempotencyKey() };
    let res;
    try {
      res = await post(`/api/calls/${encodeURIComponent(call.id)}/tip`, { tokens }, { headers: { "Idempotency-Key": pending.key } });
    } catch (err) {
      if (err.status === 0 || err.status >= 500) {
        throw new Error(`${err.message} Press Tip again to retry: the same tip is sent again and can only be paid once.`);
      }
      pending = null; // refused for good: nothing was paid, the next try is a new tip
      throw err;
    }
    pending = null;
    amount.value = "";
    clear(done, h("div.form-ok", res.replayed
      ? `Your tip of ${money.tokens(res.tip.tokens)} tokens had already arrived; it was paid once.`
      : `Thank you: ${otherName} got your tip of ${money.tokens(res.tip.tokens)} tokens.`));
    onTip(res.tip);
  });
  return h("div.stack", form, done);
}

export function showSummary(main, call, app, isBuyer, otherName) {
  const reason = endReason(call, isBuyer ? "buyer" : "seller");
  // A call with no live time (declined, missed, cancelled, or one whose video never came
  // up, "0:00") cost nothing and offers no tip, rating or dispute: the server refuses them.
  const notTaken = ["declined", "missed", "cancelled"].includes(call.state) || ["declined", "missed", "cancelled"].includes(call.end_reason);
  const neverLive = notTaken || !(Number(call.live_seconds) > 0);
  const rows = [
    ["Live time", formatDuration(call.live_seconds || 0)],
    ["Rate", `${call.rate} tokens/min`],
    [isBuyer ? "Charged" : "Buyer charged", `${money.tokens(call.charged ?? "0")} tokens`],
  ];
  if (money.isPositive(call.refunded ?? "0", 4)) rows.push(["Refunded", `${money.tokens(call.refunded)} tokens`]);
  if (!isBuyer && call.seller_earned != null) rows.push(["You earned", `${money.tokens(call.seller_earned)} tokens`]);
  const actions = h("div.stack");
  if (isBuyer && !neverLive) {
    let chosen = 0;
    const starButtons = [1, 2, 3, 4, 5].map((n) => h("button", {
      type: "button", "aria-label": `${n} star${n > 1 ? "s" : ""}`, "aria-pressed": "false",
      onclick: () => {
        chosen = n;
        starButtons.forEach((b, i) => b.setAttribute("aria-pressed", String(i < n)));
      },
    }, "★"));
    const comment = h("input", { type: "text", name: "comment", maxlength: 500, placeholder: "Optional comment" });
    const rateForm = h("form.stack",
      h("div", h("div.muted.small", `How was your call with ${otherName}?`), h("div.rating", { role: "group", "aria-label": "Rating" }, starButtons)),
      comment,
      h("button.btn.secondary", { type: "submit" }, "Send rating"));
    onSubmit(rateForm, async () => {
      if (!chosen) throw new Error("Pick from 1 to 5 stars first.");
      await post(`/api/calls/${encodeURIComponent(call.id)}/rating`, { stars: chosen, comment: comment.value.trim() || undefined });
      clear(rateForm, h("div.form-ok", "Thank you. Your rating was saved."));
    });
    const disputeReason = h("textarea", { name: "reason", maxlength: 2000, required: true, placeholder: "What went wrong? The operator reviews the call's records." });
    const disputeForm = h("form.stack", { hidden: true }, field("Describe the problem", disputeReason), h("button.btn.secondary", { type: "submit" }, "Open dispute"));
    onSubmit(disputeForm, async (fd) => {
      const text = String(fd.get("reason") || "").trim();
      if (!text) throw new Error("Describe the problem in a few words.");
      await post(`/api/calls/${encodeURIComponent(call.id)}/dispute`, { reason: text });
      clear(disputeForm, h("div.form-ok", "Dispute opened. The operator will review it and refund you if it is justified."));
    });
    const disputeToggle = h("button.linkish", { type: "button", onclick: () => { disputeForm.hidden = false; disputeToggle.hidden = true; disputeReason.focus(); } }, "Something went wrong? Open a dispute");
    // Rating and dispute are for a call that cost something (the server's rule too:
    // nothing_to_rate, nothing_to_dispute); a free one is not offered them.
    const paid = money.isPositive(call.charged ?? "0", 4);
    if (paid) actions.append(rateForm);
    if (paid && app.config?.features?.disputes) actions.append(disputeToggle, disputeForm);
  }
  const tips = tipList(isBuyer, otherName);
  const endedMs = Date.parse(call.ended_at || "");
  // The server's window is 24 h by default; it explains in words if this one is shorter.
  if (isBuyer && !neverLive && !(Date.now() - endedMs > TIP_WINDOW_MS)) {
    actions.append(h("div.stack", h("div.muted.small", `Enjoyed the call? You can tip ${otherName} for up to a day after it.`),
      tipForm(call, otherName, (tip) => tips.add(tip))));
  }
  if (!neverLive) {
    get(`/api/calls/${encodeURIComponent(call.id)}/tips`)
      .then((res) => res.tips.forEach((t) => tips.add(t)))
      .catch(() => {}); // the summary stands without its tips
  }
  if (!isBuyer && !neverLive && call.buyer_id) {
    const block = h("button.linkish", {
      type: "button",
      onclick: async () => {
        try {
          await post(`/api/users/${encodeURIComponent(call.buyer_id)}/block`, {});
          toast("Blocked. This buyer cannot call you again.", "ok");
          block.remove();
        } catch (err) {
          toast(err.message, "error");
        }
      },
    }, "Block this buyer");
    actions.append(block);
  }
  // The chat stays readable (and reportable) after the call; a call that was never
  // accepted has none.
  let transcript = null;
  if (!notTaken) {
    const past = chatPanel({ socket: app.socket, call, myId: app.me.id, otherName, canSend: () => false, readOnly: true });
    transcript = past.box;
    transcript.hidden = true;
    past.load().then(() => { transcript.hidden = !past.count(); });
  }
  clear(main,
    h("section.card.summary", { "data-testid": "call-summary" },
      h("h1", neverLive ? "Call not connected" : "Call ended"),
      h("p", { "data-testid": "end-reason", "data-reason": call.end_reason || call.state }, reason),
      neverLive ? null : h("dl", rows.map(([k, v]) => [h("dt", k), h("dd", v)])),
      tips.box,
      transcript,
      actions,
      h("hr.sep"),
      h("div.row",
        isBuyer ? h("a.btn", { href: "#/sellers" }, "Back to sellers") : h("a.btn", { href: "#/dashboard" }, "Back to dashboard"),
        h("a.btn.secondary", { href: "#/wallet" }, "Wallet"))));
}
