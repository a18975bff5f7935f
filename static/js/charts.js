/* Charts: Plotly (the strict bundle, no eval) draws each figure from the JSON data block the
 * page carries (<script type="application/json">, never run). Each chart element names its
 * figure (data-chart) and the data block's id (data-figures; the audit charts' by default).
 *
 * Parts of a page that htmx swaps in (a release's page refreshing itself) are drawn again.
 * htmx drops every script element it swaps in (allowScriptTags is off), JSON blocks
 * included, so their text is read from the response, parsed inert, before the swap. */
(function () {
  "use strict";

  var CONFIG = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d"],
  };
  var swapped = {}; // data block id -> its text, from the latest htmx response carrying it

  function figuresOf(id) {
    if (id in swapped) return JSON.parse(swapped[id]);
    var block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }

  function draw(root) {
    if (!window.Plotly || !root.querySelectorAll) return;
    var cache = {};
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var id = el.dataset.figures || "audit-figures";
      if (!(id in cache)) cache[id] = figuresOf(id);
      var figure = cache[id] && cache[id][el.dataset.chart];
      if (!figure) return;
      window.Plotly.react(el, figure.data, figure.layout, CONFIG).then(function () {
        el.dataset.ready = "true";
      });
    });
  }

  function drawPage() {
    draw(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawPage);
  } else {
    drawPage();
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var text = event.detail && event.detail.serverResponse;
    if (!text || text.indexOf("application/json") < 0) return;
    // DOMParser builds an inert document: nothing in it runs.
    var parsed = new DOMParser().parseFromString(text, "text/html");
    parsed.querySelectorAll('script[type="application/json"][id]').forEach(function (block) {
      swapped[block.id] = block.textContent;
    });
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.elt;
    // An outerHTML swap may report the element it replaced: then look at the whole page.
    if (!target || !document.body.contains(target)) target = document;
    if (target.querySelector && target.querySelector("[data-chart]")) draw(target);
  });
})();
