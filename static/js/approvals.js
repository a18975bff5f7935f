/* Release Control: the approvals pages. A file the Content-Security-Policy allows (no inline
 * script, no handler attributes, no eval).
 *
 * - Toasts: the server's `approval-changed` event (HX-Trigger) shows its message in #toast.
 * - A confirmation opened with <details> closes the others, so one action is confirmed at a time.
 */
(function () {
  "use strict";

  var timer = null;
  document.addEventListener("approval-changed", function (event) {
    var box = document.getElementById("toast");
    var message = event.detail && event.detail.message;
    if (!box || !message) return;
    box.textContent = message;
    box.classList.add("show");
    clearTimeout(timer);
    timer = setTimeout(function () {
      box.classList.remove("show");
    }, 5000);
  });

  document.addEventListener(
    "toggle",
    function (event) {
      var opened = event.target;
      if (!opened.classList || !opened.classList.contains("confirm-box") || !opened.open) return;
      document.querySelectorAll("details.confirm-box[open]").forEach(function (other) {
        if (other !== opened) other.open = false;
      });
    },
    true
  );
})();
