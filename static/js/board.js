// The flag board's small behaviours, without inline handlers (the Content-Security-Policy
// allows no inline script). Delegated from the document, so cells htmx swaps in work too.
(function () {
  "use strict";

  // A cell editor's percentage slider and number field show the same value.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement)) return;
    var pair = input.closest(".pct-inputs");
    if (!pair) return;
    pair.querySelectorAll("input").forEach(function (other) {
      if (other !== input) other.value = input.value;
    });
  });
})();
