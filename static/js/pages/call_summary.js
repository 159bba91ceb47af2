// The summary of a call that has ended (call.js shows it): why it ended, in words; the
// figures; the chat, still readable and reportable; and, for a call that had live time, the
// buyer's rating, dispute and tips (a call that never connected offers none: the server
// refuses them too). Also the tips' list and form, which the live call uses as well.

import { get, post } from "../api.js";
import * as money from "../money.js";
import { errorText, has, t } from "../i18n.js";
import { clear, field, formatDate, formatDuration, h, newIdempotencyKey, onSubmit, toast } from "../ui.js";
import { chatPanel } from "./call_room.js";

const TIP_WINDOW_MS = 24 * 3600 * 1000;

/** Why a call ended, in words for the buyer and for the seller. */
export function endReason(call, role) {
  const r = String(call.end_reason || call.state || "");
  const buyer = role === "buyer";
  // "ended.<reason>.buyer" / ".seller" where the two sides read it differently, else one text.
  const side = `ended.${r}.${buyer ? "buyer" : "seller"}`;
  let text = has(side) ? t(side) : has(`ended.${r}`) ? t(`ended.${r}`)
    : r ? t("ended.other", { reason: r.replace(/_/g, " ") }) : t("ended.plain");
  if (money.isPositive(call.refunded ?? "0", 4)) {
    text += " " + (buyer ? t("ended.refunded_buyer", { tokens: money.tokens(call.refunded) }) : t("ended.refunded_seller"));
  }
  return text;
}

/** A call's tips as lines, each once: a tip can arrive both as the POST's answer and as
 * the `tip` WebSocket message, and the record is read again after a reload. */
export function tipList(isBuyer, otherName) {
  const seen = new Set();
  const list = h("ul.tip-lines", { "data-testid": "tip-lines" });
  const box = h("div.tips", { hidden: true }, h("h2.small-head", t("history.tips")), list);
  // Announced to screen readers: the seller learns of a tip without looking.
  list.setAttribute("aria-live", "polite");
  return {
    box,
    add(tip) {
      if (!tip || seen.has(String(tip.id))) return;
      seen.add(String(tip.id));
      const text = isBuyer
        ? t("tips.you_tipped", { tokens: money.tokens(tip.tokens) })
        : [h("span", { "data-i18n-skip": true }, otherName), " ", t("tips.they_tipped", { tokens: money.tokens(tip.tokens), receive: money.tokens(tip.seller_receives) })];
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
  const amount = h("input", { type: "number", name: "tip_tokens", min: 1, step: 1, inputmode: "numeric", required: true, autocomplete: "off", placeholder: t("tips.example") });
  const form = h("form.inline-form.tip-form",
    field(t("tips.label"), amount),
    h("button.btn.secondary", { type: "submit" }, t("tips.button")));
  const done = h("div", { role: "status" });
  onSubmit(form, async (fd) => {
    clear(done);
    const text = String(fd.get("tip_tokens") || "").trim();
    if (!/^\d+$/.test(text) || BigInt(text) < 1n) throw new Error(t("tips.whole"));
    const tokens = BigInt(text).toString();
    if (!confirm(t("tips.confirm", { tokens: money.tokens(tokens), name: otherName }))) return;
    if (!pending || pending.tokens !== tokens) pending = { tokens, key: newIdempotencyKey() };
    let res;
    try {
      res = await post(`/api/calls/${encodeURIComponent(call.id)}/tip`, { tokens }, { headers: { "Idempotency-Key": pending.key } });
    } catch (err) {
      if (err.status === 0 || err.status >= 500) {
        throw new Error(`${errorText(err)} ${t("tips.retry")}`);
      }
      pending = null; // refused for good: nothing was paid, the next try is a new tip
      throw err;
    }
    pending = null;
    amount.value = "";
    clear(done, h("div.form-ok", res.replayed
      ? t("tips.replayed", { tokens: money.tokens(res.tip.tokens) })
      : t("tips.thanks", { name: otherName, tokens: money.tokens(res.tip.tokens) })));
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
    [t("history.live_time"), formatDuration(call.live_seconds || 0)],
    [t("summary.rate"), t("history.rate", { rate: call.rate })],
    [t(isBuyer ? "admin.charged" : "summary.buyer_charged"), t("common.tokens_amount", { tokens: money.tokens(call.charged ?? "0") })],
  ];
  if (money.isPositive(call.refunded ?? "0", 4)) rows.push([t("admin.refunded"), t("common.tokens_amount", { tokens: money.tokens(call.refunded) })]);
  if (!isBuyer && call.seller_earned != null) rows.push([t("summary.you_earned"), t("common.tokens_amount", { tokens: money.tokens(call.seller_earned) })]);
  const actions = h("div.stack");
  if (isBuyer && !neverLive) {
    let chosen = 0;
    const starButtons = [1, 2, 3, 4, 5].map((n) => h("button", {
      type: "button", "aria-label": t("count.stars", { count: n }), "aria-pressed": "false",
      onclick: () => {
        chosen = n;
        starButtons.forEach((b, i) => b.setAttribute("aria-pressed", String(i < n)));
      },
    }, "★"));
    const comment = h("input", { type: "text", name: "comment", maxlength: 500, placeholder: t("summary.comment"), "aria-label": t("summary.comment") });
    const rateForm = h("form.stack",
      h("div", h("div.muted.small", t("summary.how_was", { name: otherName })), h("div.rating", { role: "group", "aria-label": t("summary.rating") }, starButtons)),
      comment,
      h("button.btn.secondary", { type: "submit" }, t("summary.send_rating")));
    onSubmit(rateForm, async () => {
      if (!chosen) throw new Error(t("summary.pick_stars"));
      await post(`/api/calls/${encodeURIComponent(call.id)}/rating`, { stars: chosen, comment: comment.value.trim() || undefined });
      clear(rateForm, h("div.form-ok", t("summary.rated")));
    });
    const disputeReason = h("textarea", { name: "reason", maxlength: 2000, required: true, placeholder: t("summary.dispute_placeholder") });
    const disputeForm = h("form.stack", { hidden: true }, field(t("summary.describe"), disputeReason), h("button.btn.secondary", { type: "submit" }, t("summary.open_dispute")));
    onSubmit(disputeForm, async (fd) => {
      const text = String(fd.get("reason") || "").trim();
      if (!text) throw new Error(t("summary.describe_words"));
      await post(`/api/calls/${encodeURIComponent(call.id)}/dispute`, { reason: text });
      clear(disputeForm, h("div.form-ok", t("summary.dispute_opened")));
    });
    const disputeToggle = h("button.linkish", { type: "button", onclick: () => { disputeForm.hidden = false; disputeToggle.hidden = true; disputeReason.focus(); } }, t("summary.dispute_toggle"));
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
    actions.append(h("div.stack", h("div.muted.small", t("summary.tip_invite", { name: otherName })),
      tipForm(call, otherName, (tip) => tips.add(tip))));
  }
  if (!neverLive) {
    get(`/api/calls/${encodeURIComponent(call.id)}/tips`)
      .then((res) => res.tips.forEach((tip) => tips.add(tip)))
      .catch(() => {}); // the summary stands without its tips
  }
  if (!isBuyer && !neverLive && call.buyer_id) {
    const block = h("button.linkish", {
      type: "button",
      onclick: async () => {
        try {
          await post(`/api/users/${encodeURIComponent(call.buyer_id)}/block`, {});
          toast(t("summary.blocked"), "ok");
          block.remove();
        } catch (err) {
          toast(errorText(err), "error");
        }
      },
    }, t("summary.block"));
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
      h("h1", t(neverLive ? "summary.not_connected" : "summary.ended")),
      h("p", { "data-testid": "end-reason", "data-reason": call.end_reason || call.state }, reason),
      neverLive ? null : h("dl", rows.map(([k, v]) => [h("dt", k), h("dd", v)])),
      tips.box,
      transcript,
      actions,
      h("hr.sep"),
      h("div.row",
        isBuyer ? h("a.btn", { href: "#/sellers" }, t("summary.back_sellers")) : h("a.btn", { href: "#/dashboard" }, t("summary.back_dashboard")),
        h("a.btn.secondary", { href: "#/wallet" }, t("nav.wallet")))));
}
