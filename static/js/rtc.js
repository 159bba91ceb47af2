// WebRTC in the page: camera access with clear messages, the peer connection (ICE servers
// from /api/ice), signalling over the socket, and the `media` heartbeat that billing trusts.
//
// Who offers: the buyer (caller) always makes the offers, the seller always answers, so
// offers never cross. The answerer says `ready` when its peer connection exists (and again
// after its socket comes back), and the offerer answers `ready` with a fresh offer, with an
// ICE restart when one had been made before.

import { get } from "./api.js";

export class MediaError extends Error {}

/** The camera and microphone, or a MediaError whose message tells the user what to do. */
export async function getLocalMedia() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw new MediaError("Video calls need a secure (https) page. Open meterchat over https and try again.");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } },
      audio: { echoCancellation: true, noiseSuppression: true },
    });
  } catch (err) {
    const name = err?.name || "";
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      throw new MediaError("Camera and microphone access was refused. Allow them for this site in your browser's settings (the icon left of the address bar), then try again.");
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      throw new MediaError("No camera or microphone was found. Connect one, then try again.");
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
      throw new MediaError("Your camera or microphone is busy in another app or tab. Close it there, then try again.");
    }
    throw new MediaError(`The camera could not start (${name || "unknown error"}). Try again, or try another browser.`);
  }
}

export function stopStream(stream) {
  stream?.getTracks().forEach((t) => t.stop());
}

const HEARTBEAT_MS = 2000;
const RESTART_AFTER_MS = 3000;

export class CallLink {
  /**
   * socket: ws.Socket; callId; offerer: true for the buyer; localStream; remoteVideo: <video>;
   * onStatus(status) with "connecting" | "connected" | "reconnecting".
   */
  constructor({ socket, callId, offerer, localStream, remoteVideo, onStatus }) {
    Object.assign(this, { socket, callId, offerer, localStream, remoteVideo });
    this.onStatus = onStatus || (() => {});
    this.pc = null;
    this.pendingCandidates = [];
    this.offered = false;
    this.unsubs = [];
    this.timer = null;
    this.last = { bytes: -1, frames: -1 };
    this.badSince = 0;
    this.closed = false;
  }

  async start() {
    let iceServers = [];
    try {
      iceServers = (await get("/api/ice")).ice_servers || [];
    } catch {
      // Without STUN/TURN a call still works on the same network; the server says what to use.
    }
    if (this.closed) return;
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    for (const track of this.localStream?.getTracks() || []) pc.addTrack(track, this.localStream);
    pc.addEventListener("track", (ev) => {
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      if (this.remoteVideo.srcObject !== stream) {
        this.remoteVideo.srcObject = stream;
        this.playRemote();
      }
    });
    pc.addEventListener("icecandidate", (ev) => {
      if (ev.candidate) this.signal({ candidate: ev.candidate.toJSON() });
    });
    pc.addEventListener("connectionstatechange", () => this.reportStatus());
    pc.addEventListener("iceconnectionstatechange", () => this.reportStatus());

    this.unsubs.push(this.socket.on("signal", (msg) => {
      if (String(msg.call_id) === String(this.callId)) this.onSignal(msg.data || {});
    }));
    this.unsubs.push(this.socket.on("open", () => this.onSocketBack()));
    this.unsubs.push(this.socket.on("close", () => this.onStatus("reconnecting")));

    if (this.offerer) await this.offer(false);
    else this.signal({ ready: true });
    this.timer = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.beat();
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

  async offer(iceRestart) {
    const pc = this.pc;
    if (!pc || this.closed || pc.signalingState !== "stable") return;
    try {
      const offer = await pc.createOffer({ iceRestart });
      await pc.setLocalDescription(offer);
      this.offered = true;
      this.signal({ description: pc.localDescription.toJSON() });
    } catch (err) {
      console.warn("offer failed", err);
    }
  }

  async onSignal(data) {
    const pc = this.pc;
    if (!pc || this.closed) return;
    try {
      if (data.ready) {
        if (this.offerer && pc.connectionState !== "connected") await this.offer(this.offered);
        else if (this.offerer && data.restart) await this.offer(true);
      } else if (data.description) {
        const desc = data.description;
        if (desc.type === "offer" && this.offerer) return;
        if (desc.type === "answer" && pc.signalingState !== "have-local-offer") return;
        await pc.setRemoteDescription(desc);
        for (const c of this.pendingCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {});
        if (desc.type === "offer") {
          await pc.setLocalDescription(await pc.createAnswer());
          this.signal({ description: pc.localDescription.toJSON() });
        }
      } else if (data.candidate) {
        if (pc.remoteDescription) await pc.addIceCandidate(data.candidate).catch(() => {});
        else this.pendingCandidates.push(data.candidate);
      }
    } catch (err) {
      console.warn("signal handling failed", err);
    }
  }

  onSocketBack() {
    if (!this.pc || this.closed) return;
    // Our socket dropped: messages may have been lost, so negotiate again.
    if (this.offerer) {
      if (this.pc.connectionState !== "connected") this.offer(this.offered);
    } else {
      this.signal({ ready: true, restart: this.pc.connectionState !== "connected" });
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
    } else if (s === "new" || s === "connecting") {
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
    const up = pc.connectionState === "connected";
    const growing = bytes > this.last.bytes && frames > this.last.frames;
    this.last = { bytes, frames };
    this.socket.send({
      type: "media",
      call_id: this.callId,
      state: up && growing ? "connected" : "disconnected",
      stats: { bytes_received: bytes, frames_decoded: frames },
    });
    // ICE restart when the path broke and did not come back by itself.
    if (!up && this.badSince && Date.now() - this.badSince > RESTART_AFTER_MS) {
      this.badSince = Date.now();
      if (this.offerer) this.offer(true);
      else this.signal({ ready: true, restart: true });
    }
  }

  stats() {
    return { ...this.last, connection: this.pc?.connectionState };
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.unsubs.forEach((u) => u());
    if (this.pc) {
      this.socket.send({ type: "media", call_id: this.callId, state: "disconnected", stats: { bytes_received: Math.max(0, this.last.bytes), frames_decoded: Math.max(0, this.last.frames) } });
      this.pc.close();
    }
    this.pc = null;
  }
}
