// Lotline pages: progressive enhancement only. Every page works without this file.
// - A link with data-dialog="<id>" opens that <dialog> as a modal instead of navigating to its
//   fallback page; an element with data-close closes the dialog it is in.
// - A form with data-once disables its submit buttons once submitted (no double signature clicks).
// - A field with data-select-on-load is focused with its text selected (the trace view's scan field).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-dialog"));
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        dialog.showModal();
        var first = dialog.querySelector("[autofocus], textarea, input:not([type=hidden])");
        if (first) first.focus();
      }
      return;
    }
    var closer = event.target.closest("[data-close]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) {
        event.preventDefault();
        open.close();
      }
    }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-once")) return;
    if (form.getAttribute("data-submitted")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitted", "1");
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  });
  // Move focus to an error summary when a page arrives with one, so a screen reader reads it first.
  document.addEventListener("DOMContentLoaded", function () {
    var alert = document.querySelector("[data-focus-on-load]");
    if (alert) alert.focus();
    // The scan field keeps what was scanned, selected: the next scan replaces it.
    var scan = !alert && document.querySelector("[data-select-on-load]");
    if (scan) { scan.focus(); scan.select(); }
  });
})();
