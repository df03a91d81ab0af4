// Keyboard navigation on the queue: ↑/↓ (or j/k) move between rows, Enter opens one.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("queue");
    if (!table) { return; }
    table.addEventListener("keydown", function (evt) {
      var row = evt.target.closest ? evt.target.closest("tr.row") : null;
      if (!row) { return; }
      var next = null;
      if (evt.key === "ArrowDown" || evt.key === "j") { next = row.nextElementSibling; }
      else if (evt.key === "ArrowUp" || evt.key === "k") { next = row.previousElementSibling; }
      else if (evt.key === "Enter") { window.location.href = row.dataset.href; evt.preventDefault(); return; }
      if (next && next.classList.contains("row")) { next.focus(); evt.preventDefault(); }
    });
    table.addEventListener("click", function (evt) {
      var row = evt.target.closest ? evt.target.closest("tr.row") : null;
      if (row && evt.target.tagName !== "A") { window.location.href = row.dataset.href; }
    });
  });
})();
