// What the phone accepts and says: dial strings are digits, * and # (an outside number may
// start with +), so nothing else ever reaches a SIP URI; media errors in words a person can act on.
export function validTarget(text) {
  return /^\+?[0-9*#]{1,32}$/.test(text);
}

export function mediaError(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "The microphone was refused. Allow it for this site in the browser (the icon in the address bar), then try again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Connect one (or choose another under Microphone and speaker), then try again.";
  }
  if (name === "NotReadableError") {
    return "The microphone is busy in another application. Close it there, then try again.";
  }
  return `The microphone could not be used: ${(error && error.message) || error}`;
}

// RFC 3842's message summary (the body of a NOTIFY "Event: message-summary"), as FreeSWITCH
// sends it: "Messages-Waiting: yes|no" and "Voice-Message: new/saved (urgent new/urgent
// saved)". Null when the body says nothing about waiting messages; counts are null when the
// switch gives none. Only numbers and a yes/no leave this function: the body's other text
// (the account) never reaches the page.
export function messageSummary(body) {
  const fields = new Map();
  for (const line of String(body || "").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const waiting = (fields.get("messages-waiting") || "").toLowerCase();
  if (waiting !== "yes" && waiting !== "no") return null;
  const counts = /^(\d{1,9})\/(\d{1,9})/.exec(fields.get("voice-message") || "");
  return {
    waiting: waiting === "yes",
    fresh: counts ? Number(counts[1]) : null,
    saved: counts ? Number(counts[2]) : null,
  };
}

// What the lamp says, in words (the light's colour is never the only sign).
export function lampText(summary) {
  const saved = summary.saved ? `, ${summary.saved} saved` : "";
  if (!summary.waiting) return `Voicemail: no new message${saved}`;
  if (summary.fresh === null) return "Voicemail: new messages";
  const plural = summary.fresh === 1 ? "" : "s";
  return `Voicemail: ${summary.fresh} new message${plural}${saved}`;
}
