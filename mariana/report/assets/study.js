// Mariana's study report: the objective over trials and per epoch (uPlot), the trials table and the
// parameter importances, from the embedded JSON. The best network's sections are drawn by report.js.
(function () {
  "use strict";
  const study = JSON.parse(document.getElementById("mariana-study").textContent);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }
  const num = (v) => (v == null ? "—" : Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toPrecision(4) : v.toFixed(4));
  const width = (box) => Math.max(320, (box.clientWidth || 900) - 8);
  const best = study.best ? study.best.number : null;
  const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];  // trials and epochs are counted: no tick between two of them

  function drawObjective() {
    const box = document.getElementById("objective");
    const shown = study.trials.filter((t) => t.value != null);
    if (!shown.length) { box.append(el("div", { class: "empty" }, "No trial has a value yet.")); return; }
    const numbers = shown.map((t) => t.number);
    const of = (state) => shown.map((t) => (t.state === state ? t.value : null));
    const better = study.direction === "maximize" ? Math.max : Math.min;
    let running = null;
    const bestSoFar = shown.map((t) => (t.state === "COMPLETE" ? (running = running == null ? t.value : better(running, t.value)) : running));
    const target = el("div", { class: "chart", "data-chart": "objective" });
    box.append(target);
    const points = (color) => ({ show: true, size: 8, fill: color, stroke: color });
    new uPlot({ width: width(box), height: 260, scales: { x: { time: false } }, axes: [{ label: "trial", incrs: WHOLE }, { label: study.objective, size: 60 }],
      series: [{ label: "trial" },
        { label: "completed", stroke: "#3b6fd8", width: 0, points: points("#3b6fd8"), value: (u, v) => num(v) },
        { label: "pruned", stroke: "#e07b24", width: 0, points: points("#e07b24"), value: (u, v) => num(v) },
        { label: "best so far", stroke: "#e0527a", width: 2, points: { show: false }, value: (u, v) => num(v) }] },
      [numbers, of("COMPLETE"), of("PRUNED"), bestSoFar], target);
  }

  function drawTrials() {
    const head = el("tr", {}, ...["trial", "state", "value", "hyperparameters", "epochs", "seconds", "ended by"].map((h, i) =>
      el("th", [0, 2, 4, 5].includes(i) ? { class: "num" } : {}, h)));
    const rows = study.trials.map((t) => el("tr", { class: t.number === best ? "best" : "", "data-trial": t.number },
      el("td", { class: "num" }, t.number + (t.continues != null && t.continues !== t.number ? " (continues " + t.continues + ")" : "")),
      el("td", {}, el("span", { class: "state state-" + t.state }, t.state.toLowerCase())),
      el("td", { class: "num" }, num(t.value)),
      el("td", { class: "params" }, Object.entries(t.params).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(", ")),
      el("td", { class: "num" }, t.epochs == null ? "—" : t.epochs),
      el("td", { class: "num" }, t.seconds == null ? "—" : t.seconds.toFixed(2)),
      el("td", {}, t.stop_reason || "")));
    document.getElementById("trials").append(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
  }

  function drawIntermediate() {
    const box = document.getElementById("intermediate");
    const curves = study.trials.filter((t) => t.steps.length);
    if (!curves.length) { box.append(el("div", { class: "empty" }, "No trial reported a value per epoch.")); return; }
    const epochs = [...new Set(curves.flatMap((t) => t.steps))].sort((a, b) => a - b);
    const colors = { COMPLETE: "#3b6fd8", PRUNED: "#e07b24", FAIL: "#98a2b3", RUNNING: "#2e9d6b" };
    const target = el("div", { class: "chart", "data-chart": "intermediate" });
    box.append(target);
    new uPlot({ width: width(box), height: 260, scales: { x: { time: false } }, legend: { show: false },
      axes: [{ label: "epoch", incrs: WHOLE }, { label: study.objective, size: 60 }],
      series: [{ label: "epoch" }].concat(curves.map((t) => ({ label: "trial " + t.number, stroke: colors[t.state] || "#888",
        width: t.number === best ? 3 : 1.2, points: { show: epochs.length < 30 } })))},
      [epochs].concat(curves.map((t) => epochs.map((e) => { const i = t.steps.indexOf(e); return i < 0 ? null : t.values[i]; }))), target);
    box.append(el("div", { class: "legend" }, el("span", { style: "color:#3b6fd8" }, "completed"),
      el("span", { style: "color:#e07b24" }, "pruned"), el("span", { style: "color:#98a2b3" }, "failed")));
  }

  function drawImportances() {
    const box = document.getElementById("importances");
    const entries = Object.entries(study.importances || {});
    if (entries.length) {
      const top = Math.max(...entries.map(([, v]) => v)) || 1;
      box.append(el("div", { class: "bars" }, ...entries.flatMap(([name, value]) => [el("code", {}, name),
        el("div", { class: "bar", "data-param": name, style: "width:" + (100 * value / top).toFixed(1) + "%" }), el("span", {}, num(value))])));
    }
    box.append(el("div", { class: entries.length ? "importance-note" : "empty" }, study.importance_note));
  }

  drawObjective();
  drawTrials();
  drawIntermediate();
  drawImportances();
  if (!document.getElementById("graph")) document.body.setAttribute("data-ready", "true");  // else report.js says when it is drawn
})();
