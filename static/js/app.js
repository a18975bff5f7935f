/* Release Control: the behaviour every page shares, as a file the Content-Security-Policy
 * allows (script-src 'self': no inline script, no handler attributes, no eval).
 *
 * - Toasts: `flag-state-changed` and `flags-changed` events (sent by the server in
 *   HX-Trigger) show their message in #toast when the page has one.
 * - htmx trigger conditions without eval: htmx runs `[...]` filters through Function(),
 *   which the policy forbids, so conditions are data attributes read here instead:
 *     data-poll-when-idle        polls ("every Ns") skip while someone is typing in the
 *                                element, editing a cell or has a form open in it;
 *     data-trigger-key="Escape"  a keyup trigger fires only for that key.
 */
(function () {
  "use strict";

  // Whatever htmx-config a page carries (the first one wins, and a page's own may leave these
  // out), htmx evaluates nothing, runs no script it swaps in, and injects no style element.
  // htmx merges the meta tag when the document is ready, after this deferred file ran.
  if (window.htmx) {
    window.htmx.config.allowEval = false;
    window.htmx.config.allowScriptTags = false;
    window.htmx.config.includeIndicatorStyles = false;
  }

  function idle(el) {
    if (document.hidden) return false;
    var active = document.activeElement;
    if (active && el.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return false;
    }
    return !el.querySelector(".cell-editor, details[open], .restore-confirm");
  }

  function pollsWhenIdle(el) {
    return el.hasAttribute("data-poll-when-idle");
  }

  function triggerKey(el) {
    return el.getAttribute("data-trigger-key");
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var el = event.detail.elt;
    var config = event.detail.requestConfig || {};
    var cause = config.triggeringEvent;
    if (!el || !el.getAttribute) return;
    // A poll has no triggering event; events (flags-changed, submit...) always go through.
    if (!cause && pollsWhenIdle(el) && !idle(el)) {
      event.preventDefault();
      return;
    }
    var key = triggerKey(el);
    if (key && cause && cause.type && cause.type.indexOf("key") === 0 && cause.key !== key) {
      event.preventDefault();
    }
  });

  var timer = null;
  function toast(event) {
    var box = document.getElementById("toast");
    var message = event.detail && event.detail.message;
    if (!box || !message) return;
    box.textContent = message;
    box.classList.add("show");
    clearTimeout(timer);
    timer = setTimeout(function () {
      box.classList.remove("show");
    }, 5000);
  }
  document.addEventListener("flag-state-changed", toast);
  document.addEventListener("flags-changed", toast);
})();
