// WebRTC in the page: camera access with clear messages, the peer connection (ICE servers
// from /api/ice), signalling over the socket, and the `media` heartbeat that billing trusts.
//
// Who offers: the buyer (caller) always makes the offers and the seller answers, so offers
// never cross (the same convention as tools/peer.py, so a browser can talk to an aiortc peer).
// An offer that raced the seller's accept waits in the socket's buffer. The answerer sends
// `ready` when an offer is missing or its path broke; the offerer answers with a fresh offer,
// with an ICE restart when one had been made before.

import { get } from "./api.js";
import { t } from "./i18n.js";

export class MediaError extends Error {}

/** The camera and microphone, or a MediaError whose message tells the user what to do. */
export async function getLocalMedia() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw new MediaError(t("media.https"));
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } },
      audio: { echoCancellation: true, noiseSuppression: true },
    });
  } catch (err) {
    const name = err?.name || "";
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      throw new MediaError(t("media.refused"));
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      throw new MediaError(t("media.none"));
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
      throw new MediaError(t("media.busy"));
    }
    throw new MediaError(t("media.failed", { name: name || t("media.unknown") }));
  }
}

export function stopStream(stream) {
  stream?.getTracks().forEach((t) => t.stop());
}

const HEARTBEAT_MS = 2000;
const RESTART_AFTER_MS = 3000;
const GATHER_WAIT_MS = 1500;
const ASK_OFFER_AFTER_MS = 3000;

/** Resolves when ICE gathering is complete, or after `ms`: the first description then carries
 * the candidates found so far (peers that do not trickle, like aiortc, need them there). */
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class CallLink {
  /**
   * socket: ws.Socket; callId; offerer: true for the buyer; localStream; remoteVideo: <video>;
   * onStatus(status) with "connecting" | "connected" | "reconnecting".
   *
   * Signal data: {type: "offer"|"answer", sdp, fresh?}, {type: "candidate", candidate},
   * {type: "ready", restart?, fresh?} (the answerer asking for an offer; `fresh` when its
   * peer connection is new, e.g. after a reload, so the offerer starts a new one too).
   */
  constructor({ socket, callId, offerer, localStream, remoteVideo, onStatus }) {
    Object.assign(this, { socket, callId: String(callId), offerer, localStream, remoteVideo });
    this.onStatus = onStatus || (() => {});
    this.pc = null;
    this.pendingCandidates = [];
    this.gotOffer = false;
    this.unsubs = [];
    this.timer = null;
    this.askTimer = null;
    this.last = { bytes: 0, frames: 0 };
    this.badSince = 0;
    this.closed = false;
    this.chain = Promise.resolve();
  }

  async start() {
    let iceServers = [];
    try {
      iceServers = (await get("/api/ice")).ice_servers || [];
    } catch {
      // Without STUN/TURN a call still works on the same network.
    }
    if (this.closed) return;
    this.iceServers = iceServers;
    this.buildPc();

    const mine = (msg) => String(msg.call_id) === this.callId;
    this.unsubs.push(this.socket.on("signal", (msg) => { if (mine(msg)) this.enqueue(msg.data || {}); }));
    this.unsubs.push(this.socket.on("open", () => this.onSocketBack()));
    this.unsubs.push(this.socket.on("close", () => this.onStatus("reconnecting")));
    for (const msg of this.socket.claimSignals(this.callId)) this.enqueue(msg.data || {});

    if (this.offerer) {
      this.enqueue({ type: "_offer" });
    } else {
      // The offer normally arrives by itself; if it was lost, ask for it.
      this.askTimer = setTimeout(() => { if (!this.gotOffer) this.signal({ type: "ready", fresh: true }); }, ASK_OFFER_AFTER_MS);
    }
    this.timer = setInterval(() => this.beat(), HEARTBEAT_MS);
  }

  /** A fresh peer connection. Also used when the other side comes back with a new one
   * (a reloaded page): its offer cannot be applied to the old connection. */
  buildPc() {
    if (this.pc) this.pc.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this.pendingCandidates = [];
    this.pcOffered = false;
    for (const track of this.localStream?.getTracks() || []) pc.addTrack(track, this.localStream);
    if (!this.localStream) {
      // No camera here: still receive the other side.
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    pc.addEventListener("track", (ev) => {
      if (this.pc !== pc) return;
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      if (this.remoteVideo.srcObject !== stream) {
        this.remoteVideo.srcObject = stream;
        this.playRemote();
      }
    });
    pc.addEventListener("icecandidate", (ev) => {
      if (this.pc === pc && ev.candidate && pc.localDescription) this.signal({ type: "candidate", candidate: ev.candidate.toJSON() });
    });
    pc.addEventListener("connectionstatechange", () => { if (this.pc === pc) this.reportStatus(); });
    return pc;
  }

  playRemote() {
    const v = this.remoteVideo;
    v.play().catch(() => {
      // Autoplay with sound can be blocked until the user interacts: play muted, offer unmute.
      v.muted = true;
      v.play().catch(() => {});
      v.dispatchEvent(new CustomEvent("autoplay-muted"));
    });
  }

  signal(data) {
    this.socket.send({ type: "signal", call_id: this.callId, data });
  }

  /** Signals are handled one at a time, in order. */
  enqueue(data) {
    this.chain = this.chain.then(() => this.handle(data)).catch((err) => console.warn("signalling step failed", err));
  }

  async offer(iceRestart) {
    const pc = this.pc;
    if (!pc || this.closed || pc.signalingState !== "stable") return;
    await pc.setLocalDescription(await pc.createOffer({ iceRestart }));
    await gathered(pc, GATHER_WAIT_MS);
    if (this.closed || this.pc !== pc) return;
    // `fresh`: the first offer of a new connection, which the answerer must not apply to an
    // old one (after a reload the DTLS identity is new).
    const fresh = !this.pcOffered;
    this.pcOffered = true;
    this.signal({ type: "offer", sdp: pc.localDescription.sdp, fresh });
  }

  async handle(data) {
    let pc = this.pc;
    if (!pc || this.closed) return;
    const type = data.type;
    if (type === "_offer") {
      await this.offer(false);
    } else if (type === "ready") {
      if (!this.offerer) return;
      if (data.fresh && this.pcOffered) {
        // The answerer has a new peer connection (its page reloaded): so must we.
        this.buildPc();
        this.last = { bytes: 0, frames: 0 };
        await this.offer(false);
      } else if (pc.connectionState !== "connected" || data.restart) {
        await this.offer(this.pcOffered);
      }
    } else if (type === "offer" && !this.offerer) {
      this.gotOffer = true;
      if (data.fresh && pc.remoteDescription) {
        pc = this.buildPc();
        this.last = { bytes: 0, frames: 0 };
      }
      try {
        await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
      } catch {
        // An offer from a new peer connection (the buyer reloaded): start afresh.
        pc = this.buildPc();
        this.last = { bytes: 0, frames: 0 };
        await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
      }
      await this.flushCandidates();
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc, GATHER_WAIT_MS);
      if (this.closed) return;
      this.signal({ type: "answer", sdp: pc.localDescription.sdp });
    } else if (type === "answer" && this.offerer) {
      if (pc.signalingState !== "have-local-offer") return;
      await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
      await this.flushCandidates();
    } else if (type === "candidate" && data.candidate) {
      if (pc.remoteDescription) await pc.addIceCandidate(data.candidate).catch(() => {});
      else this.pendingCandidates.push(data.candidate);
    }
  }

  async flushCandidates() {
    for (const c of this.pendingCandidates.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
  }

  onSocketBack() {
    if (!this.pc || this.closed) return;
    // Messages may have been lost while our socket was down: negotiate again if needed.
    const up = this.pc.connectionState === "connected";
    if (this.offerer) {
      if (!up) this.enqueue({ type: "ready", restart: true });
    } else if (!up) {
      this.signal({ type: "ready", restart: true });
    }
    this.beat();
  }

  reportStatus() {
    const pc = this.pc;
    if (!pc) return;
    const s = pc.connectionState;
    if (s === "connected") {
      this.badSince = 0;
      this.onStatus("connected");
    } else if (s === "disconnected" || s === "failed") {
      this.badSince ||= Date.now();
      this.onStatus("reconnecting");
    } else {
      this.onStatus("connecting");
    }
  }

  async beat() {
    const pc = this.pc;
    if (!pc || this.closed) return;
    let bytes = 0;
    let frames = 0;
    try {
      const report = await pc.getStats();
      report.forEach((r) => {
        if (r.type !== "inbound-rtp") return;
        bytes += r.bytesReceived || 0;
        if ((r.kind || r.mediaType) === "video") frames += r.framesDecoded || 0;
      });
    } catch {
      // getStats fails only on a closed connection; report what we have.
    }
    if (this.closed) return;
    const up = pc.connectionState === "connected";
    const flowing = bytes > this.last.bytes && frames > this.last.frames;
    this.last = { bytes, frames };
    this.socket.send({
      type: "media",
      call_id: this.callId,
      state: up && flowing ? "connected" : "disconnected",
      stats: { bytes_received: bytes, frames_decoded: frames },
    });
    // ICE restart when the path broke and did not come back by itself.
    if (!up && this.badSince && Date.now() - this.badSince > RESTART_AFTER_MS) {
      this.badSince = Date.now();
      if (this.offerer) this.enqueue({ type: "ready", restart: true });
      else this.signal({ type: "ready", restart: true });
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.askTimer);
    this.unsubs.forEach((u) => u());
    this.socket.releaseSignals(this.callId);
    if (this.pc) {
      this.socket.send({ type: "media", call_id: this.callId, state: "disconnected", stats: { bytes_received: this.last.bytes, frames_decoded: this.last.frames } });
      this.pc.close();
    }
    this.pc = null;
  }
}
