// The on-call page's big button asks once: the environment's name typed and a reason. The
// button stays disabled until both are given (the server enforces the same), and the press
// is sent once. No inline script (the Content-Security-Policy allows none).
(function () {
  "use strict";

  function check(form) {
    var expected = (form.getAttribute("data-confirm-name") || "").toLowerCase();
    var typed = form.querySelector("[name=confirm]").value.trim().toLowerCase();
    var reason = form.querySelector("[name=reason]").value.trim();
    var button = form.querySelector("button[type=submit]");
    button.disabled = !(typed === expected && reason.length > 0);
  }

  function forms() {
    return document.querySelectorAll("form.rollback-form");
  }

  document.addEventListener("DOMContentLoaded", function () {
    forms().forEach(check);
  });
  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("form.rollback-form");
    if (form) check(form);
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("rollback-form")) return;
    check(form);
    var button = form.querySelector("button[type=submit]");
    if (button.disabled || form.getAttribute("data-sent")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-sent", "1");
    button.textContent = "Rolling back…";
  });
})();
