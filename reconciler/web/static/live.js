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
  var FOCUSABLE = "a[href],button,input,select,textarea,summary,[tabindex]";
  // Swap a fragment without taking the keyboard away: if focus was inside it, it goes back
  // to the same control (by id, else by position) in the new HTML.
  function swap(target, html) {
    if (target.innerHTML === html) { return; }
    var active = document.activeElement;
    var inside = active && active !== target && target.contains(active);
    var id = inside ? active.id : "";
    var index = inside ? Array.prototype.indexOf.call(target.querySelectorAll(FOCUSABLE), active) : -1;
    target.innerHTML = html;
    if (!inside) { return; }
    var again = (id && document.getElementById(id)) || target.querySelectorAll(FOCUSABLE)[index];
    if (again) { again.focus({ preventScroll: true }); }
  }
  var source = new EventSource(url);
  source.addEventListener("fragment", function (event) {
    var message = JSON.parse(event.data);
    var target = document.getElementById(message.id);
    if (target) { swap(target, message.html); }
  });
  source.addEventListener("end", function () {
    source.close();
    connected(false);
  });
  source.onerror = function () { connected(false); };
  source.onopen = function () { connected(true); };
})();
