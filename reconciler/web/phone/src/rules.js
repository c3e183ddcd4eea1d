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
