// Live parts of a tenant page: server-sent "fragment" events carry HTML the server rendered
// (and escaped) from the same partials as the page; this swaps them in. Nothing else.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) { return; }
  var dot = document.querySelector(".live-dot");
  function connected(on) {
    // the dot says whether this page's live stream is open, nothing about the switches
    document.body.classList.toggle("live-on", on);
    if (dot) {
      var text = on ? "live updates: connected" : "live updates: not connected (reload to retry)";
      dot.setAttribute("title", text);
      dot.setAttribute("aria-label", text);
    }
  }
  var source = new EventSource(url);
  source.addEventListener("fragment", function (event) {
    var message = JSON.parse(event.data);
    var target = document.getElementById(message.id);
    if (target) { target.innerHTML = message.html; }
  });
  source.addEventListener("end", function () {
    source.close();
    connected(false);
  });
  source.onerror = function () { connected(false); };
  source.onopen = function () { connected(true); };
})();
