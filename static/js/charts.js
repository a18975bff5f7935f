/* Charts: Plotly (the strict bundle, no eval) draws each figure from the JSON data block the
 * page carries (<script type="application/json">, never run). Each chart element names its
 * figure (data-chart) and the data block's id (data-figures; the audit charts' by default).
 * Parts of a page that htmx swaps in (a release's page refreshing itself) are drawn again. */
(function () {
  "use strict";

  var CONFIG = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d"],
  };

  function figuresOf(id, cache) {
    if (!(id in cache)) {
      var block = document.getElementById(id);
      cache[id] = block ? JSON.parse(block.textContent) : null;
    }
    return cache[id];
  }

  function draw(root) {
    if (!window.Plotly) return;
    var cache = {};
    var charts = root.querySelectorAll ? root.querySelectorAll("[data-chart]") : [];
    charts.forEach(function (el) {
      var figures = figuresOf(el.dataset.figures || "audit-figures", cache);
      var figure = figures && figures[el.dataset.chart];
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
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.elt;
    // An outerHTML swap may report the element it replaced: then look at the whole page.
    if (!target || !document.body.contains(target)) target = document;
    if (target.querySelector && target.querySelector("[data-chart]")) draw(target);
  });
})();
