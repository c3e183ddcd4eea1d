"""What the browser tests run in a page to see its media: every ``RTCPeerConnection`` the
phone makes kept in ``window.phoneConnections`` (an init script; the phone itself is
untouched), and the audio packets the newest one received (``getStats``)."""

TRACK_CONNECTIONS = """(() => {
  const Native = window.RTCPeerConnection;
  window.phoneConnections = [];
  function Tracked(...args) {
    const pc = new Native(...args);
    window.phoneConnections.push(pc);
    return pc;
  }
  Tracked.prototype = Native.prototype;
  Object.setPrototypeOf(Tracked, Native);
  window.RTCPeerConnection = Tracked;
})();"""

INBOUND_PACKETS = """async () => {
  const pc = window.phoneConnections[window.phoneConnections.length - 1];
  if (!pc) return 0;
  let packets = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived;
  });
  return packets;
}"""

# Host candidates offered as 127.0.0.1, so media stays on loopback (with Chromium's
# ``webrtc.ip_handling_policy`` preference its sockets listen on every interface):
# ../shared/freeswitch/transcripts/webrtc/NOTES.md.
LOOPBACK_CANDIDATES = r"""(() => {
  const Native = window.RTCPeerConnection;
  const local = Object.getOwnPropertyDescriptor(Native.prototype, "localDescription");
  Object.defineProperty(Native.prototype, "localDescription", {
    configurable: true,
    get() {
      const d = local.get.call(this);
      if (!d) return d;
      const sdp = d.sdp
        .replace(/^(a=candidate:\S+ \d+ udp \d+ )\S+( \d+ typ host.*)$/gim, "$1127.0.0.1$2")
        .replace(/^c=IN IP4 .*$/gim, "c=IN IP4 127.0.0.1");
      return new RTCSessionDescription({ type: d.type, sdp });
    },
  });
})();"""
