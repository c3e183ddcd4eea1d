// Every page: the Phone entry and the numbers marked data-dial open the browser phone in its
// own named window (or reach it when it is open) instead of leaving the page, so a call in
// progress survives moving around the portal. Messages go over the "pbx-phone"
// BroadcastChannel (same origin only). Without this script the links open /phone itself.
(function () {
  "use strict";
  if (!("BroadcastChannel" in window)) { return; }
  var NAME = "pbx-phone", FEATURES = "popup,width=420,height=760";
  var channel = new BroadcastChannel(NAME);
  var pending = null;

  channel.addEventListener("message", function (event) {
    var message = event.data || {};
    if (message.type === "ready" && pending !== null) {
      channel.postMessage({ type: "dial", number: pending });
      pending = null;
    }
  });

  function open(number) {
    var win = window.open("", NAME, FEATURES);
    if (!win) { return false; }  // pop-ups blocked: follow the link instead
    var there = "";
    try { there = win.location.pathname; } catch (e) { there = ""; }
    if (there !== "/phone") {
      pending = number;  // dialled once the new phone says it is ready
      win.location.href = "/phone";
    } else if (number !== null) {
      channel.postMessage({ type: "dial", number: number });
    }
    win.focus();
    return true;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-dial], a[href='/phone']");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) { return; }
    if (window.location.pathname === "/phone" && !link.hasAttribute("data-dial")) { return; }
    if (open(link.getAttribute("data-dial"))) { event.preventDefault(); }
  });
}());
