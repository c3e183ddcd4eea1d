// Every page: times in the reader's own zone and words ("5 min ago", the absolute local time
// on hover; the server's text, in UTC, stays when this does not run), and a confirmation
// before a form that says it needs one (data-confirm) is sent.
(function () {
  "use strict";
  var UNITS = [["day", 86400], ["hour", 3600], ["min", 60]];

  function relative(seconds) {
    var ago = seconds >= 0, s = Math.abs(seconds);
    if (s < 45) { return ago ? "just now" : "in a moment"; }
    for (var i = 0; i < UNITS.length; i++) {
      var n = Math.round(s / UNITS[i][1]);
      if (n >= 1) {
        var unit = UNITS[i][0] + (n > 1 && UNITS[i][0] !== "min" ? "s" : "");
        return ago ? n + " " + unit + " ago" : "in " + n + " " + unit;
      }
    }
    return "";
  }

  function localize() {
    var now = Date.now();
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i], at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { continue; }
      el.textContent = relative((now - at) / 1000);
      el.setAttribute("title", new Date(at).toLocaleString());
      el.classList.add("local");
    }
  }

  localize();
  window.setInterval(localize, 30000);
  if (window.MutationObserver) {  // live fragments swapped in by live.js
    var pending = false;
    new MutationObserver(function (mutations) {
      var added = mutations.some(function (m) {  // elements, not the text localize() writes
        return Array.prototype.some.call(m.addedNodes, function (n) { return n.nodeType === 1; });
      });
      if (!added || pending) { return; }
      pending = true;
      window.setTimeout(function () { pending = false; localize(); }, 0);
    }).observe(document.body, { childList: true, subtree: true });
  }

  // Copy buttons (data-copy): shown only where this script runs and the clipboard is
  // reachable; a click says "Copied" on the button and to screen readers for 2 s.
  var copies = document.querySelectorAll("button.copy[data-copy]");
  var status = document.querySelector(".copied-status");
  if (navigator.clipboard && window.isSecureContext !== false) {
    for (var c = 0; c < copies.length; c++) { copies[c].hidden = false; }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy[data-copy]") : null;
    if (!button) { return; }
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
      button.classList.add("copied");
      if (status) { status.textContent = button.getAttribute("aria-label").replace(/^Copy/, "Copied"); }
      window.setTimeout(function () {
        button.textContent = "Copy";
        button.classList.remove("copied");
      }, 2000);
    }, function () {
      button.textContent = "Copy failed";
    });
  });

  // A wallboard's "Full screen" button (shown where the browser allows it).
  var full = document.querySelector("button[data-fullscreen]");
  if (full && document.documentElement.requestFullscreen) {
    full.hidden = false;
    full.addEventListener("click", function () {
      if (document.fullscreenElement) { document.exitFullscreen(); }
      else { document.documentElement.requestFullscreen(); }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target, question = form.getAttribute("data-confirm");
    if (!question) { return; }
    if (!window.confirm(question)) { event.preventDefault(); return; }
    var field = form.querySelector("input[name=confirmed]");
    if (field) { field.value = "1"; }
  });
})();
