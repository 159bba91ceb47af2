// Operator page, the "Events" section: the operator events (newest first) with their
// deliveries to each webhook, the dead ones, and a resend. Self-contained: admin.js adds the
// section and calls its load().

import { get, post } from "../api.js";
import { errorText, t } from "../i18n.js";
import { clear, errorBox, formatDate, h, toast } from "../ui.js";

const DELIVERY_KIND = { delivered: "ok", pending: "warn", dead: "danger" };

function dataText(data) {
  // Each event's data in one line: key value pairs, as the alert mails show them.
  return Object.entries(data || {})
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
}

function deliveryCell(d) {
  const bits = [h("span.badge", { class: DELIVERY_KIND[d.status] || "" }, t(`delivery.${d.status}`)),
    " ", h("span.small.muted", t("count.attempts", { count: d.attempts }))];
  if (d.status !== "delivered" && (d.last_error || d.last_http_status)) {
    bits.push(h("div.small.muted", { "data-i18n-skip": true }, d.last_error || `HTTP ${d.last_http_status}`));
  }
  if (d.status === "pending" && d.next_attempt_at) bits.push(h("div.small.muted", t("admin.next_attempt", { at: formatDate(d.next_attempt_at) })));
  return h("div", { title: d.webhook, "data-testid": "event-delivery" }, h("div.small.mono", { "data-i18n-skip": true }, d.webhook), ...bits);
}

export function eventsSection() {
  const box = h("div", { "data-testid": "events" });
  const filter = h("select.auto", { "aria-label": t("events.shown") },
    h("option", { value: "" }, t("events.all")), h("option", { value: "dead" }, t("events.dead")));
  let before = null;
  let rows = [];

  async function resend(btn, e) {
    if (!confirm(t("events.confirm_resend", { type: e.type, id: e.id }))) return;
    btn.disabled = true;
    try {
      const { resent_to: to = [] } = await post(`/api/admin/events/${encodeURIComponent(e.id)}/resend`, {});
      toast(t("events.queued", { count: to.length }), "ok");
      await load();
    } catch (err) {
      toast(errorText(err), "error");
      btn.disabled = false;
    }
  }

  function row(e) {
    const canResend = (e.deliveries || []).some((d) => d.status !== "pending");
    const btn = canResend ? h("button.btn.secondary.small", { type: "button" }, t("events.resend")) : null;
    if (btn) btn.addEventListener("click", () => resend(btn, e));
    return h("tr", { "data-event-id": e.id },
      h("td.small", formatDate(e.at)),
      h("td", h("span.badge", { "data-i18n-skip": true }, e.type)),
      h("td.small", { "data-i18n-skip": true }, h("div.mono", e.id), h("div.muted.mono", dataText(e.data))),
      h("td", (e.deliveries || []).length ? e.deliveries.map(deliveryCell) : h("span.muted.small", t("events.no_webhook"))),
      h("td", btn));
  }

  async function load(more = false) {
    try {
      const q = new URLSearchParams({ limit: "50" });
      if (filter.value) q.set("status", filter.value);
      if (more && before) q.set("before", before);
      const view = await get(`/api/admin/events?${q}`);
      rows = more ? rows.concat(view.events || []) : (view.events || []);
      before = view.next_before ? rows[rows.length - 1]?.id : null;
      const counts = view.deliveries || {};
      const hooks = view.webhooks || [];
      const older = before ? h("button.btn.secondary.small", { type: "button", onclick: () => load(true) }, t("events.older")) : null;
      clear(box,
        h("p.small.muted", hooks.length
          ? [t("events.webhooks"), " ", h("span", { "data-i18n-skip": true }, hooks.map((w) => w.url).join(", ")), ". ",
            t("events.deliveries", { delivered: counts.delivered || 0, pending: counts.pending || 0 }), " ",
            h("span", { class: counts.dead ? "neg-figure" : "" }, t("events.dead_count", { dead: counts.dead || 0 })), "."]
          : t("events.no_webhooks")),
        rows.length ? h("div.table-wrap", h("table",
          h("thead", h("tr", h("th", t("history.when")), h("th", t("events.type")), h("th", t("events.event")), h("th", t("events.deliveries_head")), h("th", ""))),
          h("tbody", rows.map(row)))) : h("p.empty", t(filter.value ? "events.none_dead" : "events.none")),
        older);
    } catch (err) {
      clear(box, errorBox(err));
    }
  }

  filter.addEventListener("change", () => load());
  const element = h("section.card", { "aria-label": t("events.title") },
    h("div.spread", h("h2", t("events.title")), h("div.row", filter,
      h("button.btn.secondary.small", { type: "button", onclick: () => load() }, t("events.refresh")))),
    box);
  return { element, load };
}
