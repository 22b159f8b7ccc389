// Mariana's HTML report: draws the layer graph (layout by dagre), the details of a clicked layer,
// the training curves (uPlot), the layer table and the generation log from the embedded JSON.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("mariana-data").textContent);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }
  const fmt = (n) => Number(n).toLocaleString("en-US");
  const shapeText = (shape) => (shape ? "(batch, " + shape.join(", ") + ")" : "?");
  const roleNames = { activation: "Activation", decorators: "Decorators", regularizations: "Regularizations",
    initializations: "Initializations", learning_scenari: "Learning scenari", cost: "Cost" };

  // -- graph (drawn by graph.js, shared with the notebook display) ---------------------
  function drawGraph() {
    document.getElementById("graph").append(marianaGraph(dagre, data.layers, data.edges, { onSelect: select }));
  }

  function table(headers, rows, numeric) {
    const head = el("tr", {}, ...headers.map((h, i) => el("th", numeric && numeric[i] ? { class: "num" } : {}, h)));
    const body = rows.map((row) => el("tr", {}, ...row.map((cell, i) => el("td", numeric && numeric[i] ? { class: "num" } : {}, cell))));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
  }

  function select(name) {
    const layer = data.layers.find((l) => l.name === name);
    document.querySelectorAll(".node.selected").forEach((n) => n.classList.remove("selected"));
    const node = document.querySelector('.node[data-layer="' + CSS.escape(name) + '"]');
    if (node) node.classList.add("selected");
    const panel = document.getElementById("details");
    panel.replaceChildren(el("h3", {}, layer.name), el("div", { class: "kind" }, layer.type + " · " + layer.role + " layer"));
    panel.append(el("h4", {}, "Output shape"), el("code", {}, shapeText(layer.shape)));
    const sources = layer.inputs.concat(layer.references.map((r) => r + " (target)"));
    if (sources.length) panel.append(el("h4", {}, "Inputs"), el("div", {}, sources.join(", ")));
    panel.append(el("h4", {}, "Parameters (" + fmt(layer.params) + ", " + fmt(layer.trainable) + " trainable)"));
    const params = Object.entries(layer.param_shapes);
    panel.append(params.length
      ? table(["name", "shape", "count"], params.map(([p, s]) => [el("code", {}, p), s.join("×"), fmt(s.reduce((a, b) => a * b, 1))]), [0, 0, 1])
      : el("div", { class: "empty" }, "none"));
    const buffers = Object.entries(layer.buffers);
    if (buffers.length) panel.append(el("h4", {}, "Buffers"), table(["name", "shape"], buffers.map(([b, s]) => [el("code", {}, b), s.join("×")])));
    const hyper = Object.entries(layer.hyperparameters);
    panel.append(el("h4", {}, "Hyperparameters"));
    panel.append(hyper.length ? table(["name", "value"], hyper.map(([k, v]) => [k, el("code", {}, JSON.stringify(v))]))
      : el("div", { class: "empty" }, "none"));
    panel.append(el("h4", {}, "Abstractions"));
    const roles = Object.entries(layer.abstractions);
    if (!roles.length) panel.append(el("div", { class: "empty" }, "none"));
    for (const [role, items] of roles) {
      panel.append(el("div", {}, el("b", {}, roleNames[role] || role)), el("ul", {}, ...items.map((item) => el("li", {}, el("code", {}, item)))));
    }
  }

  // -- curves ------------------------------------------------------------------------
  const streamColors = { train: "#3b6fd8", valid: "#e07b24", test: "#2e9d6b" };
  const CHART_MIN_WIDTH = 360, CHART_GAP = 18, CHART_HEIGHT = 240;
  // Charts share the card's width: as many columns as fit (at most one per chart), each as wide as it can be.
  function chartWidth(holder, count) {
    const available = holder.clientWidth || 900;
    const columns = Math.max(1, Math.min(count, Math.floor((available + CHART_GAP) / (CHART_MIN_WIDTH + CHART_GAP))));
    return Math.floor((available - CHART_GAP * (columns - 1)) / columns);
  }
  const lastIndex = (values) => { for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return i; return -1; };
  const metricText = (v) => (v == null ? "—" : Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toPrecision(4) : v.toFixed(4));
  function drawCurves() {
    const box = document.getElementById("curves");
    if (!data.history || !data.history.charts.length) {
      box.append(el("div", { class: "empty" }, "No training history was given (the Trainer passes one: net.to_html(path, history=history))."));
      return;
    }
    const holder = el("div", { class: "charts" });
    box.append(holder);
    const epochs = data.history.epochs;
    const plots = [];
    const width = chartWidth(holder, data.history.charts.length);
    for (const chart of data.history.charts) {
      const target = el("div", { class: "chart", "data-chart": chart.output + "/" + chart.metric },
        el("h3", {}, chart.output + " — " + chart.metric));
      holder.append(target);
      // Away from the plot the legend shows each series' last value (uPlot shows "--" until hovered).
      const series = [{ label: "epoch", value: (u, v, s, idx) => String(idx == null ? epochs[epochs.length - 1] : v) }].concat(
        chart.series.map((s) => {
          const last = lastIndex(s.values);
          return { label: s.stream, stroke: streamColors[s.stream] || "#888", width: 2, points: { show: epochs.length < 40 },
            value: (u, v, si, idx) => metricText(idx == null ? (last < 0 ? null : s.values[last]) : v) };
        }));
      plots.push(new uPlot({ width: width, height: CHART_HEIGHT, series: series, scales: { x: { time: false } },
        axes: [{ label: "epoch" }, { size: 60 }], legend: { live: true } },
        [epochs].concat(chart.series.map((s) => s.values)), target));
    }
    let pending = null;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => {
        const resized = chartWidth(holder, plots.length);
        for (const plot of plots) plot.setSize({ width: resized, height: CHART_HEIGHT });
      });
    });
  }

  // -- tables ------------------------------------------------------------------------
  function drawLayers() {
    const rows = data.layers.map((l) => [el("code", {}, l.name), l.type, shapeText(l.shape), fmt(l.params),
      Object.entries(l.abstractions).map(([role, items]) => (roleNames[role] || role) + ": " + items.join(", ")).join("; ") || "—"]);
    rows.push([el("b", {}, "Total"), "", "", el("b", {}, fmt(data.totals.params)), fmt(data.totals.trainable) + " trainable"]);
    document.getElementById("layers").append(table(["layer", "type", "output shape", "params", "abstractions"], rows, [0, 0, 0, 1, 0]));
  }

  function drawLog() {
    const box = document.getElementById("log");
    if (!data.log.length) { box.append(el("div", { class: "empty" }, "The log is empty.")); return; }
    box.append(table(["time (UTC)", "event", "details"], data.log.map((r) =>
      [r.time, el("span", { class: "event event-" + r.event }, r.event), r.text])));
  }

  drawGraph();
  drawCurves();
  drawLayers();
  drawLog();
  document.body.setAttribute("data-ready", "true");
})();
