// The call page. Before a call (buyer): the seller's rate, acknowledged, an optional spending
// cap and a camera check. During a call: both videos, the live meter from `meter` messages,
// the controls (mute, camera off, end: on a phone a bar fixed at the bottom, always in
// view), the chat (call_room.js), tips (the buyer sends, both see them). After: a summary
// with a clear reason, the chat, and for a call that had live time rating, dispute and tips
// (a call that never connected offers none of them; the server refuses them too).

import { get, post } from "../api.js";
import * as money from "../money.js";
import { CallLink, getLocalMedia, stopStream } from "../rtc.js";
import { errorText, formatNumber, t } from "../i18n.js";
import { clear, field, formatDuration, h, initials, onSubmit, stars, toast } from "../ui.js";
import { callControls, chatPanel } from "./call_room.js";
import { showSummary, tipForm, tipList } from "./call_summary.js";

export { endReason } from "./call_summary.js";

const ACTIVE = new Set(["ringing", "connecting", "live", "paused"]);
const MEDIA = new Set(["connecting", "live", "paused"]);
const POLL_MS = 4000;

/** Why the meter is paused, from `paused_by`: the seller learns when it is the buyer's side
 * (and that ending the call keeps what was earned). */
export function pausedText(call, isBuyer) {
  const mine = isBuyer ? "buyer" : "seller";
  const by = call.paused_by;
  if (by && by !== "both" && by !== mine) {
    return isBuyer
      ? t("call.paused_seller") : t("call.paused_buyer");
  }
  if (by === mine) return t("call.paused_mine");
  return t("call.paused");
}

/** What is left, from the meter's minutes (tenths of a minute, "0.7"): whole minutes from
 * 10 up, a tenth below that, and under one minute the seconds ("0:42 left"), counted down
 * from the last meter while the call is live. */
export function leftText(minutesLeft, sinceMeterS = 0) {
  const m = Number(minutesLeft);
  if (!Number.isFinite(m)) return String(minutesLeft ?? "");
  if (m >= 10) return formatNumber(Math.floor(m), { useGrouping: false });
  if (m >= 1) return formatNumber(m, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const secs = Math.max(0, Math.round(m * 60 - sinceMeterS));
  return t("call.seconds_left", { time: `0:${String(secs).padStart(2, "0")}` });
}

/** The meter before its first message: the buyer's balance (available plus the call's
 * hold) and the minutes it buys at the rate, within the call's cap. */
export function startingMeter(balance, rate, spendCap) {
  const units = (t) => { try { return money.toUnits(t ?? "0", 4); } catch { return 0n; } };
  const total = units(balance?.available) + units(balance?.held);
  let budget = total;
  if (spendCap != null && units(spendCap) < budget) budget = units(spendCap);
  const perMin = BigInt(Math.max(1, Number(rate) || 1)) * 10000n;
  const tenths = (budget * 10n) / perMin;
  return { balance: money.fromUnits(total, 4, { grouped: false }), minutes_left: `${tenths / 10n}.${tenths % 10n}` };
}

export async function render(main, route, app) {
  const callId = route.rest[0];
  if (callId) return inCall(main, callId, app);
  const sellerId = route.query.get("seller");
  if (!sellerId || app.me.role !== "buyer") {
    location.replace("#/sellers");
    return undefined;
  }
  return preCall(main, sellerId, app);
}

async function findSeller(sellerId) {
  try {
    return (await get(`/api/sellers/${encodeURIComponent(sellerId)}`)).seller || null;
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

/** The other party's name when the page did not come from the pre-call form (a reload, or
 * the seller's accept): the seller's public profile, or the name the incoming call carried. */
async function nameOfOther(call, isBuyer) {
  if (isBuyer) {
    const seller = await findSeller(call.seller_id).catch(() => null);
    return seller?.display_name || t("history.seller");
  }
  try {
    return sessionStorage.getItem(`call-name:${call.id}`) || t("history.buyer");
  } catch {
    return t("history.buyer");
  }
}

function previewBox(video, message) {
  return h("div.preview", video, h("div.overlay", message));
}

async function preCall(main, sellerId, app) {
  const seller = await findSeller(sellerId);
  if (!seller) {
    clear(main, h("div.card", h("h1", t("call.seller_not_found")), h("p", t("call.seller_unavailable")), h("a.btn", { href: "#/sellers" }, t("summary.back_sellers"))));
    return undefined;
  }
  let stream = null;
  let handedOff = false;
  const me = await get("/api/me");
  app.balance = me.balance;
  app.renderHeader();
  const available = me.balance.available;
  const rate = Number(seller.rate);
  const minutes = rate > 0 ? money.toUnits(available, 4) / (BigInt(rate) * 10000n) : 0n;
  const prefund = BigInt(app.config?.min_prefund_minutes ?? 1);

  const localVideo = h("video", { autoplay: true, playsinline: true, muted: true, "aria-label": t("call.your_camera") });
  const camMsg = h("p", t("call.starting_camera"));
  const preview = previewBox(localVideo, camMsg);
  const camError = h("div");
  const ack = h("input", { type: "checkbox", name: "ack", required: true });
  const cap = h("input", { type: "text", name: "spend_cap", inputmode: "decimal", placeholder: t("call.no_cap"), autocomplete: "off" });
  const start = h("button.btn.block", { type: "submit", disabled: true }, t("call.start", { rate }));
  let cameraOk = false;
  const affordable = minutes >= prefund;
  const updateStart = () => { start.disabled = !(ack.checked && cameraOk && affordable); };
  ack.addEventListener("change", updateStart);

  const form = h("form",
    h("div.stats",
      h("div.stat", h("div.label", t("summary.rate")), h("div.value", { "data-testid": "call-rate" }, rate, " ", h("span.muted.small", t("sellers.per_min"))), h("div.sub", t("call.usdt_per_min", { usdt: money.tokensToUsdt(String(rate)) }))),
      h("div.stat", h("div.label", t("call.your_balance")), h("div.value", money.tokens(available)), h("div.sub", t("call.enough_for", { min: minutes })))),
    h("p.small.muted", t("call.pay_rule")),
    field(t("call.cap"), cap, t("call.cap_hint")),
    h("label.check", ack, h("span", t("call.agree_before"), " ", h("strong", t("call.agree_rate", { rate })), " ", t("call.agree_after"), " ", h("span", { "data-i18n-skip": true }, seller.display_name), ".")),
    camError,
    !affordable ? h("div.form-error", t("call.cannot_afford", { count: Number(prefund) }), " ", h("a", { href: "#/wallet" }, t("call.top_up_first")), ".") : null,
    h("div.field"),
    start);

  onSubmit(form, async (fd) => {
    const body = { seller_id: seller.id, rate };
    const capText = String(fd.get("spend_cap") || "").trim();
    if (capText) {
      if (!money.isPositive(capText, 4)) throw new Error(t("call.cap_bad"));
      body.spend_cap = capText;
    }
    const { call } = await post("/api/calls", body);
    handedOff = true;
    // Same page, new address: the camera stays on; no hashchange, so no re-render.
    history.replaceState(null, "", `#/call/${encodeURIComponent(call.id)}`);
    app.cleanup = null;
    const cleanup = await inCall(main, call.id, app, { stream, call, seller });
    app.cleanup = cleanup;
  });

  clear(main,
    h("div.page-head", h("div", h("h1", t("call.title"), " ", h("span", { "data-i18n-skip": true }, seller.display_name)), h("p.muted", t("call.check")))),
    h("div.grid-2",
      h("section.card",
        h("div.seller-top",
          h("div.avatar", { "aria-hidden": "true", "data-i18n-skip": true }, initials(seller.display_name)),
          h("div", h("div.seller-name", { "data-i18n-skip": true }, seller.display_name), stars(seller.rating))),
        h("hr.sep"),
        form),
      h("section.card", h("h2", t("call.your_camera")), preview)));

  try {
    stream = await getLocalMedia();
    localVideo.srcObject = stream;
    camMsg.parentElement?.remove();
    cameraOk = true;
  } catch (err) {
    camMsg.textContent = t("call.camera_unavailable");
    clear(camError, h("div.form-error", { role: "alert", "data-testid": "media-error" }, err.message));
  }
  updateStart();
  return () => {
    if (!handedOff) stopStream(stream);
  };
}

async function inCall(main, callId, app, handoff = {}) {
  const role = app.me.role;
  let call = handoff.call || (await get(`/api/calls/${encodeURIComponent(callId)}`)).call;
  const isBuyer = String(call.buyer_id) === String(app.me.id);
  const otherName = handoff.seller?.display_name || (await nameOfOther(call, isBuyer));
  let stream = handoff.stream || null;
  let link = null;
  let ended = false;
  const unsubs = [];
  let poll = null;
  let clock = null;
  let meter = { live_seconds: call.live_seconds || 0, charged: call.charged || "0", balance: null, minutes_left: null, at: Date.now() };
  // Until the first meter message (up to 6 s) the meter shows its real zero, not dashes.
  if (isBuyer) {
    try {
      const me = await get("/api/me");
      meter = { ...meter, ...startingMeter(me.balance, call.rate, call.spend_cap) };
    } catch {
      // The first meter message brings them.
    }
  }

  if (!ACTIVE.has(call.state)) {
    stopStream(stream);
    showSummary(main, call, app, isBuyer, otherName);
    return undefined;
  }

  const remoteVideo = h("video.remote", { autoplay: true, playsinline: true, "aria-label": t("call.their_video", { name: otherName }), "data-testid": "remote-video" });
  const localVideo = h("video.local", { autoplay: true, playsinline: true, muted: true, "aria-label": t("call.your_camera") });
  const overlayText = h("p");
  const overlay = h("div.overlay", overlayText);
  const unmute = h("button.btn.secondary.small", { type: "button", hidden: true, onclick: () => { remoteVideo.muted = false; remoteVideo.play().catch(() => {}); unmute.hidden = true; } }, t("call.sound_on"));
  remoteVideo.addEventListener("autoplay-muted", () => { unmute.hidden = false; });
  const stage = h("div.stage", remoteVideo, localVideo, overlay);
  const stateBadge = h("span.badge", { "data-testid": "call-state" });
  const mediaError = h("div");
  const time = h("div.value.num", { "data-testid": "meter-time" }, "0:00");
  const spent = h("span", { "data-testid": "meter-spent" }, "0");
  const balance = h("span", { "data-testid": "meter-balance" }, "—");
  const tokensUnit = () => h("span.unit", ` ${t("header.tokens")}`);
  const left = h("div.value.num", { "data-testid": "meter-minutes-left" }, "…");
  const leftLabel = h("div.label", t(isBuyer ? "call.minutes_left" : "call.buyer_minutes_left"));
  const warning = h("div.warning", { role: "alert", hidden: true, "data-testid": "meter-warning" });
  const endBtn = h("button.btn.danger.end-call", { type: "button", onclick: () => hangUp() }, t("call.end"));
  const controls = callControls({ socket: app.socket, call, myId: app.me.id, otherName, stage, getStream: () => stream, endBtn });
  const chat = chatPanel({ socket: app.socket, call, myId: app.me.id, otherName, canSend: () => MEDIA.has(call.state) && !ended });
  let announced = false;
  const tips = tipList(isBuyer, otherName);
  const tipBox = isBuyer ? h("div", { hidden: true }, tipForm(call, otherName, (tip) => tips.add(tip))) : null;
  const loadTips = async () => {
    try {
      (await get(`/api/calls/${encodeURIComponent(call.id)}/tips`)).tips.forEach((tip) => tips.add(tip));
    } catch {
      // The `tip` messages still come; the next reconnect reads the record again.
    }
  };
  const meterBox = h("div.meter",
    h("div.stat.time", h("div.label", t("history.live_time")), time),
    h("div.stat", h("div.label", t(isBuyer ? "wallet.spent_head" : "call.billed")), h("div.value.num", { "data-testid": "meter-spent-box" }, spent, tokensUnit())),
    isBuyer ? h("div.stat", h("div.label", t("wallet.balance")), h("div.value.num", balance, tokensUnit())) : null,
    h("div.stat", leftLabel, left));

  clear(main,
    h("h1.visually-hidden", t("history.call_with"), " ", h("span", { "data-i18n-skip": true }, otherName)),
    h("div.call-layout",
      h("div", stage, controls.bar, h("div.row", { class: "call-under" }, unmute)),
      h("aside.card.stack",
        h("div.spread", h("div.call-state", stateBadge), h("span.muted.small", t("history.rate", { rate: call.rate }))),
        h("div", h("div.seller-name", { "data-i18n-skip": true }, otherName), h("div.muted.small.explain", t(isBuyer ? "call.paying" : "call.earning"))),
        mediaError,
        warning,
        meterBox,
        tips.box,
        tipBox,
        chat.box)));

  window.scrollTo(0, 0);
  const onBeforeUnload = (ev) => {
    if (!ended) {
      ev.preventDefault();
      ev.returnValue = "";
    }
  };
  window.addEventListener("beforeunload", onBeforeUnload);

  function renderMeter() {
    let secs = Number(meter.live_seconds) || 0;
    if (call.state === "live") secs += Math.min(6, (Date.now() - meter.at) / 1000);
    time.textContent = formatDuration(secs);
    spent.textContent = money.tokens(meter.charged ?? "0");
    if (meter.balance != null) balance.textContent = money.tokens(meter.balance);
    if (meter.minutes_left != null) {
      const m = Number(meter.minutes_left);
      const since = call.state === "live" ? Math.min(6, (Date.now() - meter.at) / 1000) : 0;
      left.textContent = leftText(meter.minutes_left, since);
      leftLabel.textContent = Number.isFinite(m) && m < 1
        ? t(isBuyer ? "call.time_left" : "call.buyer_time_left")
        : t(isBuyer ? "call.minutes_left" : "call.buyer_minutes_left");
      const low = Number.isFinite(m) && m < 1;
      warning.hidden = !low;
      warning.textContent = low
        ? t(isBuyer ? "call.low_buyer" : "call.low_seller")
        : "";
    }
  }

  function setState(next) {
    const wasLive = call.state === "live";
    call = { ...call, ...next };
    // The clock runs from the moment the video went live (not from when the page opened).
    if (call.state === "live" && !wasLive) meter = { ...meter, live_seconds: call.live_seconds || 0, at: Date.now() };
    const labels = ["ringing", "connecting", "live", "paused"];
    stateBadge.textContent = labels.includes(call.state) ? t(`call_state.${call.state}`) : call.state;
    stateBadge.className = `badge ${call.state === "live" ? "ok" : call.state === "paused" ? "warn" : "info"}`;
    const overlayMsg = {
      ringing: isBuyer ? t("call.calling", { name: otherName }) : t("call.connecting"),
      connecting: t("call.connecting_video"),
      paused: pausedText(call, isBuyer),
    }[call.state];
    overlayText.textContent = overlayMsg || "";
    overlay.hidden = !overlayMsg;
    endBtn.textContent = t(call.state === "ringing" && isBuyer ? "call.cancel" : "call.end");
    if (tipBox) tipBox.hidden = !(call.state === "live" || call.state === "paused");
    chat.setEnabled(MEDIA.has(call.state));
    if (MEDIA.has(call.state) && !announced) {
      // Tell the other side our microphone and camera (and learn theirs, after a reload).
      announced = true;
      controls.announce();
    }
    if (MEDIA.has(call.state)) startMedia();
    // During a call the page header folds away on a phone (css: body.in-call).
    document.body.classList.toggle("in-call", ACTIVE.has(call.state));
    if (!ACTIVE.has(call.state)) finish();
    renderMeter();
  }

  async function startMedia() {
    if (link || ended) return;
    link = { pending: true };
    if (!stream) {
      try {
        stream = await getLocalMedia();
      } catch (err) {
        clear(mediaError, h("div.form-error", { role: "alert", "data-testid": "media-error" }, err.message, " ", t("call.media_error")));
        stream = null;
      }
    }
    if (ended) return;
    controls.apply(); // muted or camera off before the tracks go out
    if (stream) localVideo.srcObject = stream;
    link = new CallLink({
      socket: app.socket, callId: call.id, offerer: isBuyer, localStream: stream, remoteVideo,
      onStatus: (s) => {
        if (s === "reconnecting" && call.state !== "ringing") {
          overlayText.textContent = t("call.interrupted");
          overlay.hidden = false;
        } else if (s === "connected") {
          overlay.hidden = true;
        }
      },
    });
    await link.start();
  }

  async function hangUp() {
    endBtn.disabled = true;
    try {
      const res = await post(`/api/calls/${encodeURIComponent(call.id)}/end`);
      if (res?.call) setState(res.call);
    } catch (err) {
      toast(errorText(err), "error");
      endBtn.disabled = false;
    }
  }

  function teardown() {
    document.body.classList.remove("in-call");
    unsubs.forEach((u) => u());
    chat.destroy();
    controls.destroy();
    clearInterval(poll);
    clearInterval(clock);
    window.removeEventListener("beforeunload", onBeforeUnload);
    if (link?.close) link.close();
    link = null;
    stopStream(stream);
    stream = null;
  }

  async function finish() {
    if (ended) return;
    ended = true;
    teardown();
    // The final figures (settled charge, earnings) come with the ended call.
    try {
      call = (await get(`/api/calls/${encodeURIComponent(call.id)}`)).call;
    } catch {
      // Show what we have.
    }
    app.refreshBalance();
    showSummary(main, call, app, isBuyer, otherName);
  }

  const mine = (msg) => String(msg.call_id ?? msg.call?.id) === String(call.id);
  let stateSeq = 0; // state messages seen: a catch-up answer older than one is stale
  unsubs.push(app.socket.on("call.state", (msg) => { if (mine(msg)) { stateSeq += 1; setState(msg.call); } }));
  unsubs.push(app.socket.on("call.ended", (msg) => { if (mine(msg)) { stateSeq += 1; setState(msg.call); } }));
  unsubs.push(app.socket.on("meter", (msg) => {
    if (!mine(msg)) return;
    meter = { ...meter, ...msg, at: Date.now() };
    renderMeter();
  }));
  unsubs.push(app.socket.on("tip", (msg) => { if (mine(msg)) tips.add(msg.tip); }));
  // Messages sent while the socket was down are lost: catch up from the record when it
  // opens again, and every POLL_MS while it is down. While it is open every change arrives
  // on it, in order (a poll per party every 4 s was most of the server's work at 1,000
  // calls: bench/capacity.py --call-poll 4).
  const catchUp = async () => {
    const seq = stateSeq;
    try {
      const fresh = (await get(`/api/calls/${encodeURIComponent(call.id)}`)).call;
      // A state message that came while the record was read is newer than the record
      // (a "paused" read just before the "live" message must not undo it); an end is final.
      if (seq !== stateSeq && ACTIVE.has(fresh.state)) return;
      if (fresh.state !== call.state || !ACTIVE.has(fresh.state)) setState(fresh);
    } catch {
      // Next poll.
    }
  };
  unsubs.push(app.socket.on("open", () => {
    catchUp();
    loadTips();
    if (MEDIA.has(call.state)) controls.announce();
  }));
  poll = setInterval(() => { if (!app.socket.open) catchUp(); }, POLL_MS);
  clock = setInterval(renderMeter, 500);
  setState(call);
  if (stream && !MEDIA.has(call.state)) localVideo.srcObject = stream;
  loadTips();
  chat.load();

  return () => {
    if (!ended) teardown();
  };
}
