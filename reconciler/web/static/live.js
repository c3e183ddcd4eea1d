// Live parts of a tenant page: server-sent "fragment" events carry HTML the server rendered
// (and escaped) from the same partials as the page; this swaps them in. Nothing else.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) { return; }
  var source = new EventSource(url);
  document.body.classList.add("live-on");
  source.addEventListener("fragment", function (event) {
    var message = JSON.parse(event.data);
    var target = document.getElementById(message.id);
    if (target) { target.innerHTML = message.html; }
  });
  source.addEventListener("end", function () {
    source.close();
    document.body.classList.remove("live-on");
  });
  source.onerror = function () { document.body.classList.remove("live-on"); };
  source.onopen = function () { document.body.classList.add("live-on"); };
})();
