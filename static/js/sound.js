// The incoming-call ring, made with WebAudio (no sound file to download).
// Browsers start audio only after a user gesture, so `unlock()` runs on the first click.

let ctx = null;

function context() {
  if (!ctx) {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    ctx = new AC();
  }
  return ctx;
}

export function unlock() {
  const c = context();
  if (c && c.state === "suspended") c.resume().catch(() => {});
}

export function installUnlock() {
  const once = () => {
    unlock();
    window.removeEventListener("pointerdown", once);
    window.removeEventListener("keydown", once);
  };
  window.addEventListener("pointerdown", once);
  window.addEventListener("keydown", once);
}

/** Two soft tones every 2 s until stop() is called. */
export class Ringer {
  constructor() {
    this.timer = null;
  }

  start() {
    if (this.timer) return;
    const c = ctx; // never create a context without a gesture: Chrome would warn.
    if (!c || c.state !== "running") return;
    const burst = () => {
      const t0 = c.currentTime;
      for (const [i, freq] of [[0, 880], [1, 660]]) {
        const osc = c.createOscillator();
        const gain = c.createGain();
        osc.type = "sine";
        osc.frequency.value = freq;
        const start = t0 + i * 0.35;
        gain.gain.setValueAtTime(0, start);
        gain.gain.linearRampToValueAtTime(0.18, start + 0.03);
        gain.gain.exponentialRampToValueAtTime(0.001, start + 0.32);
        osc.connect(gain).connect(c.destination);
        osc.start(start);
        osc.stop(start + 0.34);
      }
    };
    burst();
    this.timer = setInterval(burst, 2000);
  }

  get ringing() {
    return this.timer !== null;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
