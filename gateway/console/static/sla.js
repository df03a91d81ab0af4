// SLA charts: bar charts of the histograms the server computed (data-* attributes).
(function () {
  "use strict";
  function draw(el) {
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      grid: { left: 40, right: 10, top: 20, bottom: 40 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: JSON.parse(el.dataset.labels), axisLabel: { interval: 0 } },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ name: el.dataset.name, type: "bar", data: JSON.parse(el.dataset.counts), itemStyle: { color: "#0b5cad" } }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
    el.dataset.drawn = "1";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var charts = document.querySelectorAll(".chart");
    for (var i = 0; i < charts.length; i++) { draw(charts[i]); }
  });
})();
