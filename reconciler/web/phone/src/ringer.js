// The ring tone of an incoming call, synthesised (two tones, 2 s on 4 s off) so the page
// needs no audio file; played through the chosen speaker where the browser allows it.
export class Ringer {
  constructor() {
    this.context = null;
    this.interval = null;
    this.sink = "";
  }

  setSink(id) {
    this.sink = id;
    if (this.context && this.context.setSinkId) this.context.setSinkId(id).catch(() => {});
  }

  start() {
    if (this.interval) return;
    try {
      this.context = new AudioContext();
      if (this.sink && this.context.setSinkId) this.context.setSinkId(this.sink).catch(() => {});
    } catch (_error) {
      return; // no audio output: the page and the notification still say it rings
    }
    this.burst();
    this.interval = setInterval(() => this.burst(), 6000);
  }

  burst() {
    const ctx = this.context;
    const gain = ctx.createGain();
    gain.gain.value = 0.08;
    gain.connect(ctx.destination);
    for (const frequency of [440, 480]) {
      const tone = ctx.createOscillator();
      tone.frequency.value = frequency;
      tone.connect(gain);
      tone.start();
      tone.stop(ctx.currentTime + 2);
    }
  }

  stop() {
    clearInterval(this.interval);
    this.interval = null;
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
  }
}
