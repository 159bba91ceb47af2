// The call room's parts beside the video (used by call.js): the text chat with the other
// party, and the call controls (mute, camera off, and the other side's state).
//
// Chat messages are always rendered as text (h() builds text nodes; never innerHTML), so a
// message with markup shows its characters. The history comes from
// GET /api/calls/{id}/messages when the page opens and whenever the socket opens again
// (a reload or a reconnect); live messages come as `chat` on the socket. Each message is
// shown once, in the server's order (by id).

import { get, post } from "../api.js";
import { errorText, locale, t } from "../i18n.js";
import { clear, formatDate, h, toast } from "../ui.js";

const MAX_CHARS = 1000;
const CHAT_ERRORS = new Set(["chat_empty", "chat_too_long", "chat_invalid_text", "chat_rate_limited"]);

function timeOf(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return formatDate(iso);
  return d.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
}

/** The chat panel of a call. `canSend()` tells whether the call is under way. */
export function chatPanel({ socket, call, myId, otherName, canSend, readOnly = false }) {
  const callId = String(call.id);
  const byId = new Map(); // id -> message
  const list = h("ol.chat-lines", { "data-testid": "chat-lines", "aria-live": "polite", "aria-label": t("chat.history") });
  const empty = h("p.muted.small.chat-empty", t("chat.empty"));
  const input = h("textarea.chat-input", { name: "chat_text", rows: 1, placeholder: t("chat.placeholder"), "aria-label": t("chat.message"), autocomplete: "off" });
  const status = h("div.small.chat-status", { role: "status", "data-testid": "chat-status" });
  const send = h("button.btn.secondary", { type: "submit" }, t("chat.send"));
  const form = h("form.chat-form", input, send);
  const box = h("section.chat", { "aria-label": t("admin.chat"), "data-testid": "chat" },
    h("h2.small-head", t("admin.chat")), readOnly ? null : empty, list, readOnly ? null : form, status);

  const idNum = (id) => {
    try { return BigInt(String(id)); } catch { return 0n; }
  };

  function line(m) {
    const mine = String(m.from) === String(myId);
    const li = h("li", { class: mine ? "mine" : "theirs", "data-message-id": m.id },
      mine ? h("span.chat-who", t("chat.you")) : h("span.chat-who", { "data-i18n-skip": true }, otherName),
      h("span.chat-time.muted.small", timeOf(m.at)),
      h("div.chat-text", { "data-i18n-skip": true }, m.text));
    if (!mine) {
      li.append(h("button.linkish.small.chat-report", {
        type: "button",
        "aria-label": t("chat.report_label", { name: otherName }),
        onclick: () => report(m, li),
      }, t("chat.report")));
    }
    return li;
  }

  function render() {
    const sorted = [...byId.values()].sort((a, b) => (idNum(a.id) < idNum(b.id) ? -1 : 1));
    clear(list, sorted.map(line));
    empty.hidden = sorted.length > 0;
    list.scrollTop = list.scrollHeight;
  }

  function add(m) {
    if (!m || byId.has(String(m.id))) return;
    const last = [...byId.keys()].pop();
    byId.set(String(m.id), m);
    if (last === undefined || idNum(m.id) > idNum(last)) {
      list.append(line(m));
      empty.hidden = true;
      list.scrollTop = list.scrollHeight;
    } else {
      render();
    }
  }

  async function load() {
    try {
      let after = "0";
      let fresh = false;
      for (let page = 0; page < 200; page += 1) {
        const res = await get(`/api/calls/${encodeURIComponent(callId)}/messages?after=${encodeURIComponent(after)}`);
        for (const m of res.messages || []) {
          if (!byId.has(String(m.id))) {
            byId.set(String(m.id), m);
            fresh = true;
          }
          after = String(m.id);
        }
        if (!res.more || !(res.messages || []).length) break;
      }
      if (fresh) render();
    } catch {
      // The live messages still come; the next reconnect reads the history again.
    }
  }

  async function report(m, li) {
    const reason = prompt(t("chat.report_prompt", { name: otherName }), "");
    if (reason === null) return;
    try {
      await post(`/api/calls/${encodeURIComponent(callId)}/messages/${encodeURIComponent(m.id)}/report`, reason.trim() ? { reason: reason.trim() } : {});
      const btn = li.querySelector(".chat-report");
      if (btn) btn.replaceWith(h("span.muted.small", t("chat.reported")));
      toast(t("chat.reported_toast"), "ok");
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    status.textContent = "";
    if (!text) return;
    if ([...text].length > MAX_CHARS) {
      status.textContent = t("chat.too_long", { max: MAX_CHARS });
      return;
    }
    if (!canSend()) {
      status.textContent = t("chat.not_yet");
      return;
    }
    if (!socket.send({ type: "chat", call_id: callId, text })) {
      status.textContent = t("chat.offline");
      return;
    }
    input.value = "";
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  const unsubs = readOnly ? [] : [
    socket.on("chat", (msg) => { if (String(msg.call_id) === callId) add(msg.message); }),
    // Errors carry no call id: only the chat's own codes are shown here.
    socket.on("error", (msg) => { if (CHAT_ERRORS.has(msg.code)) status.textContent = errorText(msg); }),
    socket.on("open", () => load()),
  ];
  return {
    box,
    load,
    count: () => byId.size,
    setEnabled(on) {
      input.disabled = !on;
      send.disabled = !on;
    },
    destroy() { unsubs.forEach((u) => u()); },
  };
}

/** Mute and camera off for the local stream (its tracks disabled: they still flow, as
 * silence and black frames), told to the other party as `media_state`; and what the other
 * party says of its own (shown on the stage as "Camera off" / "Muted"). */
export function callControls({ socket, call, myId, otherName, stage, getStream, endBtn }) {
  const callId = String(call.id);
  const state = { audio: true, video: true };
  const muteBtn = h("button.btn.secondary.control", { type: "button", "aria-pressed": "false", onclick: () => toggle("audio") }, t("controls.mute"));
  const camBtn = h("button.btn.secondary.control", { type: "button", "aria-pressed": "false", onclick: () => toggle("video") }, t("controls.camera_off"));
  const bar = h("div.call-controls", { "data-testid": "call-controls" }, muteBtn, camBtn, endBtn);
  const remoteCam = h("span.badge.warn", { hidden: true, "data-testid": "remote-camera-off" }, t("controls.remote_camera_off", { name: otherName }));
  const remoteMic = h("span.badge.warn", { hidden: true, "data-testid": "remote-muted" }, t("controls.remote_muted", { name: otherName }));
  const flags = h("div.remote-flags", remoteCam, remoteMic);
  stage.append(flags);

  function apply() {
    const stream = getStream();
    stream?.getAudioTracks().forEach((tr) => { tr.enabled = state.audio; });
    stream?.getVideoTracks().forEach((tr) => { tr.enabled = state.video; });
    muteBtn.textContent = t(state.audio ? "controls.mute" : "controls.unmute");
    muteBtn.setAttribute("aria-pressed", String(!state.audio));
    camBtn.textContent = t(state.video ? "controls.camera_off" : "controls.camera_on");
    camBtn.setAttribute("aria-pressed", String(!state.video));
  }

  function announce() {
    socket.send({ type: "media_state", call_id: callId, audio: state.audio, video: state.video });
  }

  function toggle(kind) {
    state[kind] = !state[kind];
    apply();
    announce();
  }

  const unsubs = [
    socket.on("media_state", (msg) => {
      if (String(msg.call_id) !== callId || String(msg.from) === String(myId)) return;
      remoteCam.hidden = msg.video !== false;
      remoteMic.hidden = msg.audio !== false;
    }),
  ];
  apply();
  return {
    bar,
    apply,
    announce,
    destroy() { unsubs.forEach((u) => u()); },
  };
}
