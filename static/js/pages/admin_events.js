// Operator page, the "Events" section: the operator events (newest first) with their
// deliveries to each webhook, the dead ones, and a resend. Self-contained: admin.js adds the
// section and calls its load().

import { get, post } from "../api.js";
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
  const bits = [h("span.badge", { class: DELIVERY_KIND[d.status] || "" }, d.status),
    h("span.small.muted", ` ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`)];
  if (d.status !== "delivered" && (d.last_error || d.last_http_status)) {
    bits.push(h("div.small.muted", d.last_error || `HTTP ${d.last_http_status}`));
  }
  if (d.status === "pending" && d.next_attempt_at) bits.push(h("div.small.muted", `next ${formatDate(d.next_attempt_at)}`));
  return h("div", { title: d.webhook, "data-testid": "event-delivery" }, h("div.small.mono", d.webhook), ...bits);
}

export function eventsSection() {
  const box = h("div", { "data-testid": "events" });
  const filter = h("select.auto", { "aria-label": "Events shown" },
    h("option", { value: "" }, "all events"), h("option", { value: "dead" }, "dead deliveries"));
  let before = null;
  let rows = [];

  async function resend(btn, e) {
    if (!confirm(`Send ${e.type} ${e.id} again, with the same id?`)) return;
    btn.disabled = true;
    try {
      const { resent_to: to = [] } = await post(`/api/admin/events/${encodeURIComponent(e.id)}/resend`, {});
      toast(`Queued again for ${to.length} webhook${to.length === 1 ? "" : "s"}`, "ok");
      await load();
    } catch (err) {
      toast(err.message, "error");
      btn.disabled = false;
    }
  }

  function row(e) {
    const canResend = (e.deliveries || []).some((d) => d.status !== "pending");
    const btn = canResend ? h("button.btn.secondary.small", { type: "button" }, "Resend") : null;
    if (btn) btn.addEventListener("click", () => resend(btn, e));
    return h("tr", { "data-event-id": e.id },
      h("td.small", formatDate(e.at)),
      h("td", h("span.badge", e.type)),
      h("td.small", h("div.mono", e.id), h("div.muted.mono", dataText(e.data))),
      h("td", (e.deliveries || []).length ? e.deliveries.map(deliveryCell) : h("span.muted.small", "no webhook")),
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
      const older = before ? h("button.btn.secondary.small", { type: "button", onclick: () => load(true) }, "Older") : null;
      clear(box,
        h("p.small.muted", hooks.length
          ? [`Webhooks: ${hooks.map((w) => w.url).join(", ")}. Deliveries: `,
            `${counts.delivered || 0} delivered, ${counts.pending || 0} pending, `,
            h("span", { class: counts.dead ? "neg-figure" : "" }, `${counts.dead || 0} dead`), "."]
          : "No webhooks configured ([[webhooks]] in the config); events are kept here and in alert mails."),
        rows.length ? h("div.table-wrap", h("table",
          h("thead", h("tr", h("th", "When"), h("th", "Type"), h("th", "Event"), h("th", "Deliveries"), h("th", ""))),
          h("tbody", rows.map(row)))) : h("p.empty", filter.value ? "No dead deliveries." : "No events yet."),
        older);
    } catch (err) {
      clear(box, errorBox(err));
    }
  }

  filter.addEventListener("change", () => load());
  const element = h("section.card", { "aria-label": "Events" },
    h("div.spread", h("h2", "Events"), h("div.row", filter,
      h("button.btn.secondary.small", { type: "button", onclick: () => load() }, "Refresh"))),
    box);
  return { element, load };
}
