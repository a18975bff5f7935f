/* The DORA trends: Plotly (the strict bundle, no eval) draws each weekly figure from the JSON
 * data block the page carries (<script type="application/json" id="dora-figures">, never run). */
(function () {
  "use strict";

  function draw() {
    var data = document.getElementById("dora-figures");
    if (!data || !window.Plotly) return;
    var figures = JSON.parse(data.textContent);
    var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var figure = figures[el.dataset.chart];
      if (!figure) return;
      window.Plotly.newPlot(el, figure.data, figure.layout, config).then(function () {
        el.dataset.ready = "true";
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
