/* The review page: charts drawn from the numbers in the page (vendored ECharts), row selection. */
(function () {
  "use strict";
  var data = document.getElementById("review-data");
  if (data && window.echarts) {
    var numbers = JSON.parse(data.textContent || "{}");
    document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      var rows = numbers[el.dataset.chart] || [];
      var kind = el.dataset.kind;
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      var option;
      if (kind === "pie") {
        option = { tooltip: {}, series: [{ type: "pie", radius: "65%",
          data: rows.map(function (r) { return { name: r[0], value: r[1] }; }) }] };
      } else if (kind === "line") {
        var names = (el.dataset.series || "a|b").split("|");
        option = { tooltip: { trigger: "axis" }, legend: { data: names },
          xAxis: { type: "category", data: rows.map(function (r) { return r[0]; }) },
          yAxis: [{ type: "value", name: names[0] }, { type: "value", name: names[1] }],
          series: [
            { name: names[0], type: "line", data: rows.map(function (r) { return r[1]; }) },
            { name: names[1], type: "bar", yAxisIndex: 1, data: rows.map(function (r) { return r[2]; }) }
          ] };
      } else {
        var horizontal = kind === "hbar";
        var cats = { type: "category", data: rows.map(function (r) { return r[0]; }),
                     axisLabel: { width: 220, overflow: "truncate" } };
        var vals = { type: "value", name: el.dataset.label || "" };
        option = { tooltip: {}, grid: { left: horizontal ? 230 : 50, right: 20 },
          xAxis: horizontal ? vals : cats, yAxis: horizontal ? cats : vals,
          series: [{ type: "bar", data: rows.map(function (r) { return r[1]; }) }] };
      }
      option.animation = false;  // drawn at once: what a screenshot or a printout shows is the final chart
      chart.setOption(option);
      el.dataset.drawn = "1";
    });
  }
  var all = document.getElementById("pick-all");
  var count = document.getElementById("picked");
  function recount() {
    if (count) { count.textContent = document.querySelectorAll("input.pick:checked").length; }
  }
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input.pick:not(:disabled)").forEach(function (box) { box.checked = all.checked; });
      recount();
    });
  }
  document.querySelectorAll("input.pick").forEach(function (box) { box.addEventListener("change", recount); });
  recount();
})();
