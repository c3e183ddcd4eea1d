// The portal's browser phone: registers one of the person's own extensions over WSS with
// SIP.js, places and takes calls, and listens on the "pbx-phone" BroadcastChannel so a
// number clicked anywhere in the portal dials here (this window keeps the call alive while
// the person moves around the portal). A message-waiting lamp shows the line's voicemail from
// the switch's message-summary NOTIFYs and opens the portal's voicemail page. The page holds no secret: what SIP.js authenticates
// with (the digest HA1, never the password) is fetched from the portal at each start.
import { Inviter, Registerer, RegistererState, SessionState, Subscriber, UserAgent } from "sip.js";
import { Ringer } from "./ringer.js";
import { lampText, mediaError, messageSummary, validTarget } from "./rules.js";

const $ = (id) => document.getElementById(id);
const root = $("phone");
const channel = "BroadcastChannel" in window ? new BroadcastChannel("pbx-phone") : null;
const ringer = new Ringer();

let ua = null;
let registerer = null;
let mwiSubscriber = null;
let line = null; // what the portal answered for the chosen extension
let session = null; // the one call (incoming or outgoing)
let incoming = null; // an Invitation ringing, not yet answered
let muted = false;
let held = false;
let timer = null;
let pendingDial = null;
let stopping = false;

function say(id, text) {
  const el = $(id);
  el.textContent = text;
  return el;
}

function showError(text) {
  const el = say("phone-error", text || "");
  el.hidden = !text;
}

function setRegState(state, text) {
  const el = say("reg-state", text);
  el.dataset.state = state;
  root.dataset.registration = state;
  broadcast({ type: "state", registration: state });
}

function broadcast(message) {
  if (channel) channel.postMessage(message);
}

// -- registration ---------------------------------------------------------------------------

function lineUrl(tenant, number) {
  return `/api/v1/tenants/${encodeURIComponent(tenant)}/extensions/${encodeURIComponent(number)}/phone`;
}

async function fetchLine(tenant, number) {
  const response = await fetch(lineUrl(tenant, number), {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "X-CSRF-Token": root.dataset.csrf, Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? body.error.message : `HTTP ${response.status}`;
    const ended = response.status === 401 && body.error && body.error.code === "unauthenticated";
    throw new Error(ended ? "Your portal session ended: log in again." : message);
  }
  return body;
}

// Asked before each call placed or answered: someone unlinked from the extension in git,
// removed, or logged out of the portal stops here, not only at the next start. An
// unreachable portal does not stop calls (the switch still authenticates the phone).
async function stillMine() {
  if (!line) return false;
  const response = await fetch(lineUrl(line.tenant, line.extension), {
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json" },
  }).catch(() => null);
  if (!response || ![401, 403, 404].includes(response.status)) return true;
  await disconnect();
  showError(
    response.status === 401
      ? "Your portal session ended: log in again to use the phone."
      : "This extension is no longer yours to use here: the phone stopped.",
  );
  return false;
}

function makeAgent(config, server) {
  return new UserAgent({
    uri: UserAgent.makeURI(config.uri),
    transportOptions: { server, connectionTimeout: 5, keepAliveInterval: 30 },
    authorizationUsername: config.authorization_username,
    authorizationHa1: config.authorization_ha1,
    displayName: config.display_name,
    logLevel: "error",
    // no third-party STUN server: a private PBX's addresses stay private
    sessionDescriptionHandlerFactoryOptions: {
      peerConnectionConfiguration: { iceServers: [] },
      iceGatheringTimeout: 2000,
    },
    delegate: { onInvite, onDisconnect, onNotify },
  });
}

async function connect(event) {
  if (event) event.preventDefault();
  showError("");
  const option = $("line").selectedOptions[0];
  if (!option) return;
  setRegState("connecting", "Connecting…");
  $("connect").disabled = true;
  try {
    line = await fetchLine(option.dataset.tenant, option.dataset.number);
  } catch (error) {
    setRegState("unregistered", "Not connected");
    showError(`The phone could not start: ${error.message}`);
    $("connect").disabled = false;
    return;
  }
  stopping = false;
  await startAgent(0);
  askNotifications();
}

async function startAgent(index) {
  const servers = line.wss_servers;
  if (index >= servers.length) {
    setRegState("unregistered", "Not connected");
    showError("No switch answered over WSS. Try again in a moment.");
    $("connect").disabled = false;
    return;
  }
  ua = makeAgent(line, servers[index]);
  try {
    await ua.start();
  } catch (_error) {
    await ua.stop().catch(() => {});
    return startAgent(index + 1);
  }
  registerer = new Registerer(ua, { expires: 300 });
  registerer.stateChange.addListener(onRegistration);
  registerer
    .register({
      requestDelegate: {
        onReject: (response) => {
          setRegState("failed", "Registration refused");
          showError(`The switch refused the registration (${response.message.statusCode} ${response.message.reasonPhrase}).`);
        },
      },
    })
    .catch((error) => showError(`Registration failed: ${error.message}`));
  $("line").disabled = true;
  $("connect").hidden = true;
  $("disconnect").hidden = false;
}

function onRegistration(state) {
  if (state === RegistererState.Registered) {
    setRegState("registered", `Registered as ${line.extension} (${line.display_name})`);
    showError("");
    subscribeMwi();
    if (pendingDial) {
      const number = pendingDial;
      pendingDial = null;
      call(number);
    }
  } else if (state === RegistererState.Unregistered && root.dataset.registration !== "failed") {
    setRegState("unregistered", "Not registered");
  } else if (state === RegistererState.Terminated && root.dataset.registration !== "failed") {
    setRegState("unregistered", "Not connected");
  }
}

function onDisconnect(error) {
  if (stopping) return;
  setRegState("unregistered", "Connection lost: reconnecting…");
  // the switch restarted or the network moved: reconnect, then register again
  setTimeout(() => {
    if (!ua || stopping) return;
    ua.reconnect()
      .then(() => registerer && registerer.register())
      .catch(() => setRegState("unregistered", "Not connected: press Connect to retry"));
  }, error ? 2000 : 0);
}

async function disconnect() {
  stopping = true;
  if (session) hangup();
  try {
    if (mwiSubscriber) await mwiSubscriber.dispose().catch(() => {});
    if (registerer) await registerer.unregister().catch(() => {});
    if (ua) await ua.stop();
  } finally {
    ua = registerer = mwiSubscriber = line = null;
    clearLamp();
    setRegState("unregistered", "Not connected");
    $("line").disabled = false;
    $("connect").hidden = false;
    $("connect").disabled = false;
    $("disconnect").hidden = true;
  }
}

// -- message-waiting lamp ------------------------------------------------------------------

// FreeSWITCH sends every registered contact of the box an unsolicited NOTIFY (RFC 3842's
// legacy form, out of any dialog) when a message is left, heard or deleted; SIP.js hands
// out-of-dialog NOTIFYs here. Any other event package is refused (489 Bad Event).
function onNotify(notification) {
  const request = notification.request;
  const event = (request.getHeader("Event") || "").split(";")[0].trim().toLowerCase();
  if (event !== "message-summary") {
    notification.reject({ statusCode: 489 });
    return;
  }
  notification.accept();
  const summary = messageSummary(request.body);
  if (summary && line && line.voicemail) showLamp(summary); // no box, no lamp
}

// Those NOTIFYs tell changes only: a SUBSCRIBE to the line's own message summary at each
// registration makes the switch say the box's state now (a phone started while messages
// wait lights up at once). FreeSWITCH 1.10.12 accepts it (202) and says the state in a
// NOTIFY of its own, out of the subscription's dialog, which onNotify takes like the others
// (SIP.js stops waiting for one inside the dialog after 32 s; nothing is lost).
function subscribeMwi() {
  if (!line || !line.voicemail) return;
  if (mwiSubscriber) mwiSubscriber.dispose().catch(() => {});
  mwiSubscriber = new Subscriber(ua, UserAgent.makeURI(line.uri), "message-summary", {
    expires: 3600,
    extraHeaders: ["Accept: application/simple-message-summary"],
  });
  mwiSubscriber.subscribe().catch(() => {});
  const subscribed = mwiSubscriber;
  setTimeout(() => askPortalForLamp(subscribed), MWI_ASK_PORTAL_MS);
}

// The switch does not always say the state after a SUBSCRIBE: seen on the real 1.10.12 right
// after a reload, while the page's previous registration was still listed (202, then no
// NOTIFY). When no NOTIFY came within a few seconds, the portal's own listing of the box (the
// same vm_list, read over ESL) lights the lamp; a NOTIFY later overrides it.
const MWI_ASK_PORTAL_MS = 4000;

async function askPortalForLamp(subscribed) {
  if (subscribed !== mwiSubscriber || !line || !line.voicemail) return;
  if ($("mwi").dataset.state !== "unknown") return;
  const asked = line;
  const url = `/api/v1/tenants/${encodeURIComponent(asked.tenant)}/voicemail?box=${encodeURIComponent(asked.extension)}&limit=500`;
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const listed = await response.json();
    if (asked !== line || $("mwi").dataset.state !== "unknown" || listed.problem) return;
    const fresh = listed.messages.filter((m) => m.new).length;
    showLamp({ waiting: fresh > 0, fresh, saved: Math.max(0, listed.total - fresh) });
  } catch {
    // the portal unreachable: the lamp waits for the switch's next NOTIFY
  }
}

function voicemailUrl() {
  return `/t/${encodeURIComponent(line.tenant)}/voicemail?box=${encodeURIComponent(line.extension)}`;
}

function showLamp(summary) {
  const lamp = $("mwi");
  lamp.href = voicemailUrl();
  lamp.dataset.state = summary.waiting ? "on" : "off";
  say("mwi-text", lampText(summary));
  lamp.hidden = false;
  root.dataset.mwi = lamp.dataset.state;
}

function clearLamp() {
  $("mwi").hidden = true;
  $("mwi").dataset.state = "unknown";
  say("mwi-text", "");
  delete root.dataset.mwi;
}

// The voicemail page opens in the portal window that opened the phone (the phone keeps its
// window and its call); a phone opened on its own opens a new tab (the link's target).
function openVoicemail(event) {
  const portal = window.opener;
  if (!portal || portal.closed || event.ctrlKey || event.metaKey || event.shiftKey) return;
  try {
    portal.location.assign(event.currentTarget.href);
    portal.focus();
    event.preventDefault();
  } catch (_error) {
    // another origin's window: the link's own target opens the page
  }
}

// -- calls ----------------------------------------------------------------------------------

function constraints() {
  const mic = $("mic").value;
  return { audio: mic ? { deviceId: { exact: mic } } : true, video: false };
}

async function microphoneReady() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError("This browser gives the page no microphone (it needs HTTPS or localhost).");
    return false;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints());
    stream.getTracks().forEach((track) => track.stop());
    listDevices();
    return true;
  } catch (error) {
    showError(mediaError(error));
    return false;
  }
}

async function call(number) {
  showError("");
  const target = String(number).trim();
  if (!validTarget(target)) {
    showError("Dial digits, * and # only (an outside number may start with +).");
    return;
  }
  if (!ua || root.dataset.registration !== "registered") {
    pendingDial = target;
    $("dial").value = target;
    if (!ua) showError("Connect the phone first; the number is kept and dialled once registered.");
    return;
  }
  if (session) {
    showError("Hang up the current call first.");
    return;
  }
  if (!(await stillMine()) || !(await microphoneReady())) return;
  const uri = UserAgent.makeURI(`sip:${target}@${line.realm}`);
  const inviter = new Inviter(ua, uri, {
    sessionDescriptionHandlerOptions: { constraints: constraints() },
  });
  track(inviter, target, "", "Calling…");
  inviter.invite().catch((error) => {
    showError(`The call could not start: ${error.message}`);
    endCall();
  });
}

function onInvite(invitation) {
  if (session || incoming) {
    invitation.reject({ statusCode: 486 }).catch(() => {});
    return;
  }
  incoming = invitation;
  const who = invitation.remoteIdentity;
  const name = who.displayName || "";
  const number = who.uri.user || "";
  say("incoming-from", name ? `${name} (${number})` : number);
  $("incoming").hidden = false;
  root.dataset.call = "ringing";
  broadcast({ type: "state", call: "ringing" });
  ringer.start();
  notify(name, number);
  invitation.stateChange.addListener((state) => {
    if (state === SessionState.Terminated && incoming === invitation) {
      stopRinging();
      incoming = null;
      root.dataset.call = "idle";
    }
  });
  $("answer").focus();
}

function stopRinging() {
  ringer.stop();
  $("incoming").hidden = true;
  if (notification) notification.close();
}

async function answer() {
  const invitation = incoming;
  if (!invitation) return;
  stopRinging();
  if (!(await stillMine())) {
    invitation.reject({ statusCode: 480 }).catch(() => {});
    incoming = null;
    return;
  }
  if (!(await microphoneReady())) {
    invitation.reject({ statusCode: 480 }).catch(() => {});
    incoming = null;
    return;
  }
  incoming = null;
  const who = invitation.remoteIdentity;
  track(invitation, who.uri.user || "", who.displayName || "", "Answering…");
  invitation
    .accept({ sessionDescriptionHandlerOptions: { constraints: constraints() } })
    .catch((error) => {
      showError(`The call could not be answered: ${error.message}`);
      endCall();
    });
}

function decline() {
  if (!incoming) return;
  stopRinging();
  incoming.reject({ statusCode: 486 }).catch(() => {});
  incoming = null;
  root.dataset.call = "idle";
}

function track(newSession, number, name, state) {
  session = newSession;
  muted = held = false;
  say("peer-number", number);
  say("peer-name", name);
  say("call-state", state);
  say("timer", "0:00");
  say("dtmf-sent", "");
  $("transfer-to").value = "";
  inCallControls(false);
  $("call").hidden = false;
  $("dial-form").hidden = true;
  root.dataset.call = "calling";
  syncToggles();
  newSession.stateChange.addListener((state) => {
    if (session !== newSession) return;
    if (state === SessionState.Established) established(newSession);
    if (state === SessionState.Terminated) endCall();
  });
}

function established(current) {
  const who = current.remoteIdentity;
  if (who.displayName && !$("peer-name").textContent) say("peer-name", who.displayName);
  say("call-state", "Connected");
  root.dataset.call = "established";
  inCallControls(true);
  broadcast({ type: "state", call: "established" });
  const audio = $("remote-audio");
  audio.srcObject = current.sessionDescriptionHandler.remoteMediaStream;
  applySpeaker();
  audio.play().catch(() => {});
  const started = Date.now();
  clearInterval(timer);
  timer = setInterval(() => say("timer", clock(Date.now() - started)), 1000);
  $("hangup").focus();
}

function clock(ms) {
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(seconds / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  return minutes >= 60 ? `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

// Hold, mute and transfer act on an established dialog only: until then they are disabled
// rather than silently ignored.
function inCallControls(enabled) {
  for (const id of ["hold", "mute", "transfer"]) $(id).disabled = !enabled;
}

// Nothing of an ended call stays on the page: the next call's screen would otherwise show
// "Connected" (and a running timer) while it is still being set up.
function endCall() {
  clearInterval(timer);
  timer = null;
  session = null;
  say("call-state", "");
  say("timer", "0:00");
  inCallControls(false);
  $("call").hidden = true;
  $("dial-form").hidden = false;
  $("remote-audio").srcObject = null;
  root.dataset.call = "idle";
  broadcast({ type: "state", call: "idle" });
}

function hangup() {
  const current = session;
  if (!current) return;
  if (current.state === SessionState.Established) current.bye().catch(() => {});
  else if (current instanceof Inviter) current.cancel().catch(() => {});
  else current.reject().catch(() => {});
  endCall();
}

function toggleMute() {
  if (!session || !session.sessionDescriptionHandler) return;
  muted = !muted;
  const pc = session.sessionDescriptionHandler.peerConnection;
  pc.getSenders().forEach((sender) => {
    if (sender.track) sender.track.enabled = !muted;
  });
  syncToggles();
}

function toggleHold() {
  if (!session || session.state !== SessionState.Established) return;
  const hold = !held;
  const options = session.sessionDescriptionHandlerOptionsReInvite || {};
  options.hold = hold;
  session.sessionDescriptionHandlerOptionsReInvite = options;
  session
    .invite({
      requestDelegate: {
        onAccept: () => {
          held = hold;
          say("call-state", held ? "On hold" : "Connected");
          root.dataset.call = held ? "held" : "established";
          syncToggles();
        },
        onReject: () => showError(hold ? "The switch did not put the call on hold." : "The call could not be resumed."),
      },
    })
    .catch((error) => showError(`Hold failed: ${error.message}`));
}

function syncToggles() {
  $("mute").setAttribute("aria-pressed", String(muted));
  say("mute", muted ? "Unmute" : "Mute");
  $("hold").setAttribute("aria-pressed", String(held));
  say("hold", held ? "Resume" : "Hold");
}

function key(tone) {
  if (session && session.state === SessionState.Established && session.sessionDescriptionHandler) {
    // RFC 4733 (2833) telephone-events on the media path
    if (!session.sessionDescriptionHandler.sendDtmf(tone)) {
      showError("The other side did not accept keypad tones (no telephone-event in the call).");
      return;
    }
    const sent = $("dtmf-sent");
    sent.textContent = (sent.textContent + tone).slice(-24);
  } else {
    $("dial").value += tone;
  }
}

function transfer(event) {
  event.preventDefault();
  const target = $("transfer-to").value.trim();
  if (!session) return;
  if (session.state !== SessionState.Established) {
    showError("The call is not connected yet: transfer it once it is.");
    return;
  }
  if (!validTarget(target)) {
    showError("Transfer to digits, * and # only.");
    return;
  }
  session
    .refer(UserAgent.makeURI(`sip:${target}@${line.realm}`), {
      requestDelegate: {
        onAccept: () => say("call-state", `Transferred to ${target}`),
        onReject: () => showError(`The switch refused the transfer to ${target}.`),
      },
    })
    .catch((error) => showError(`Transfer failed: ${error.message}`));
}

// -- devices, ring, notifications -----------------------------------------------------------

async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  fill($("mic"), devices.filter((d) => d.kind === "audioinput"), "Default microphone", "pbx-phone-mic");
  const speakers = devices.filter((d) => d.kind === "audiooutput");
  const canChoose = "setSinkId" in HTMLMediaElement.prototype;
  $("speaker-field").hidden = !canChoose;
  if (canChoose) fill($("speaker"), speakers, "Default speaker", "pbx-phone-speaker");
}

function fill(select, devices, fallback, storageKey) {
  const chosen = localStorage.getItem(storageKey) || select.value;
  select.replaceChildren(new Option(fallback, ""));
  devices.forEach((device, i) => {
    if (device.deviceId && device.deviceId !== "default") {
      select.append(new Option(device.label || `${fallback} ${i + 1}`, device.deviceId));
    }
  });
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
}

function applySpeaker() {
  const audio = $("remote-audio");
  const id = $("speaker").value;
  if ("setSinkId" in audio) audio.setSinkId(id).catch(() => showError("That speaker cannot be used."));
  ringer.setSink(id);
}

let notification = null;
function askNotifications() {
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
}

function notify(name, number) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
  notification = new Notification("Incoming call", { body: name ? `${name} (${number})` : number, tag: "pbx-phone" });
  notification.onclick = () => {
    window.focus();
    notification.close();
  };
}

// -- the portal's other windows -------------------------------------------------------------

function onMessage(event) {
  const message = event.data || {};
  if (message.type === "dial" && typeof message.number === "string") {
    window.focus();
    call(message.number);
  } else if (message.type === "ping") {
    broadcast({ type: "pong", registration: root.dataset.registration, call: root.dataset.call });
  }
}

function wire() {
  $("line-form").addEventListener("submit", connect);
  $("disconnect").addEventListener("click", disconnect);
  $("dial-form").addEventListener("submit", (event) => {
    event.preventDefault();
    call($("dial").value);
  });
  $("mwi").addEventListener("click", openVoicemail);
  $("answer").addEventListener("click", answer);
  $("decline").addEventListener("click", decline);
  $("hangup").addEventListener("click", hangup);
  $("mute").addEventListener("click", toggleMute);
  $("hold").addEventListener("click", toggleHold);
  $("transfer-form").addEventListener("submit", transfer);
  document.querySelectorAll("[data-tone]").forEach((button) => {
    button.addEventListener("click", () => key(button.dataset.tone));
  });
  $("mic").addEventListener("change", () => localStorage.setItem("pbx-phone-mic", $("mic").value));
  $("speaker").addEventListener("change", () => {
    localStorage.setItem("pbx-phone-speaker", $("speaker").value);
    applySpeaker();
  });
  if (channel) channel.addEventListener("message", onMessage);
  window.addEventListener("pagehide", () => {
    if (ua) ua.stop();
  });
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener("devicechange", listDevices);
}

if (root) {
  wire();
  listDevices();
  root.dataset.ready = "1";
  setRegState("unregistered", "Not connected");
  root.dataset.call = "idle";
  broadcast({ type: "ready" });
  // one extension: connect at once (the person opened the phone to use it)
  if ($("line").options.length === 1) connect();
}
