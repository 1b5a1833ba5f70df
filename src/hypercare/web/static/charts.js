// Time-series charts with the vendored uPlot. An element with data-chart='JSON' is drawn
// from that JSON: {"x": [unix seconds...], "series": [{"label", "color", "values": [...]},
// ...]}. The data sits in the attribute, not in a <script> element, because htmx drops
// script elements from the fragments it swaps in (allowScriptTags is off). Charts in
// fragments are drawn after each swap; they follow the width of their container.
(function () {
  "use strict";
  var charts = [];

  // the console's clock on the x-axis: 24-hour UTC, with the date once the range spans days
  function two(n) { return n < 10 ? "0" + n : String(n); }
  function timeLabels(u, ticks) {
    var span = ticks.length > 1 ? ticks[ticks.length - 1] - ticks[0] : 0;
    return ticks.map(function (t) {
      var d = new Date(t * 1000);
      var hm = two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
      return span > 86400 ? two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) + " " + hm : hm;
    });
  }

  function draw(root) {
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      if (!window.uPlot) return;
      var data = JSON.parse(el.dataset.chart);
      el.dataset.drawn = "1";
      var series = [{}].concat(data.series.map(function (s) {
        return { label: s.label, stroke: s.color, width: 2, fill: s.color + "22", points: { show: false } };
      }));
      var unit = data.unit || "";
      var opts = {
        width: Math.max(280, el.clientWidth),
        height: 200,
        series: series,
        // the console's one clock is UTC (tables and the timeline say "UTC" too)
        tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
        scales: {
          x: { time: true },
          // the y-axis includes 0: a steady rate must not look like a spike (NPS may go below)
          y: {
            range: function (u, min, max) {
              var low = Math.min(0, min || 0), high = Math.max(0, max || 0);
              return [low, high > low ? high + (high - low) * 0.1 : low + 1];
            },
          },
        },
        axes: [
          { stroke: "#59636e", label: "time (UTC)", labelSize: 18, values: timeLabels },
          {
            stroke: "#59636e",
            size: 56,
            label: unit,
            labelSize: 18,
            values: function (u, ticks) {
              return ticks.map(function (v) { return String(+v.toFixed(3)); });
            },
          },
        ],
        legend: { live: true },
        hooks: {
          // what the y-axis shows, for assistive technology and for tests
          setScale: [function (u, key) { if (key === "y") el.dataset.yMin = String(u.scales.y.min); }],
        },
      };
      var values = [data.x].concat(data.series.map(function (s) { return s.values; }));
      var plot = new window.uPlot(opts, values, el);
      el.dataset.yUnit = unit;
      charts.push({ el: el, plot: plot });
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
