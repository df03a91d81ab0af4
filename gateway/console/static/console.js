// Shared by every console page: SLA countdowns tick once a second and change colour at the
// same thresholds as gateway/console/views.py (amber below a quarter of the window or five
// minutes, red when overdue).
(function () {
  "use strict";
  var AMBER_FRACTION = 0.25;
  var AMBER_MIN_S = 300;

  function duration(seconds) {
    var sign = seconds < 0 ? "-" : "";
    var total = Math.floor(Math.abs(seconds));
    var h = Math.floor(total / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    var mm = (h && m < 10 ? "0" : "") + m;
    return sign + (h ? h + ":" + mm : m) + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    var now = Date.now() / 1000;
    var clocks = document.querySelectorAll(".clock[data-due]");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var left = parseFloat(el.dataset.due) - now;
      var windowS = parseFloat(el.dataset.window) || 1;
      var state = left <= 0 ? "red" : (left < AMBER_MIN_S || left < AMBER_FRACTION * windowS ? "amber" : "ok");
      el.textContent = duration(left);
      el.classList.remove("clock-ok", "clock-amber", "clock-red");
      el.classList.add("clock-" + state);
    }
  }

  window.guanjiaDuration = duration;
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
  });
})();
