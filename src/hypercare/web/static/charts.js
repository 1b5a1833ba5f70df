// Time-series charts with the vendored uPlot. An element with data-chart='JSON' is drawn
// from that JSON: {"x": [unix seconds...], "series": [{"label", "color", "values": [...]},
// ...]}. The data sits in the attribute, not in a <script> element, because htmx drops
// script elements from the fragments it swaps in (allowScriptTags is off). Charts in
// fragments are drawn after each swap; they follow the width of their container.
(function () {
  "use strict";
  var charts = [];

  function draw(root) {
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      if (!window.uPlot) return;
      var data = JSON.parse(el.dataset.chart);
      el.dataset.drawn = "1";
      var series = [{}].concat(data.series.map(function (s) {
        return { label: s.label, stroke: s.color, width: 2, fill: s.color + "22", points: { show: false } };
      }));
      var opts = {
        width: Math.max(280, el.clientWidth),
        height: 200,
        series: series,
        scales: { x: { time: true } },
        axes: [{ stroke: "#59636e" }, { stroke: "#59636e", size: 40, incrs: [1, 2, 5, 10, 20, 50, 100] }],
        legend: { live: true },
      };
      var values = [data.x].concat(data.series.map(function (s) { return s.values; }));
      charts.push({ el: el, plot: new window.uPlot(opts, values, el) });
    });
    charts = charts.filter(function (c) { return document.body.contains(c.el); });
  }

  var pending = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(pending);
    pending = window.setTimeout(function () {
      charts.forEach(function (c) { c.plot.setSize({ width: Math.max(280, c.el.clientWidth), height: 200 }); });
    }, 150);
  });
  document.addEventListener("htmx:afterSettle", function () { draw(document); });
  draw(document);
})();
