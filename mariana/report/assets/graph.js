// Mariana's layer graph as an SVG element (layout by dagre): drawn by the HTML report and by a network's notebook display.
// marianaGraph(dagre, layers, edges, options) -> <svg>; options.ids prefixes the arrow markers' ids (unique per display),
// options.onSelect(name) is called when a node is clicked or activated with the keyboard. Defines one function, no state.
function marianaGraph(dagre, layers, edges, options) {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const ids = (options && options.ids) || "";
  const onSelect = (options && options.onSelect) || null;
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }
  const fmt = (n) => Number(n).toLocaleString("en-US");
  const shapeText = (shape) => (shape ? "(batch, " + shape.join(", ") + ")" : "?");
  const roleNames = { activation: "Activation", decorators: "Decorators", regularizations: "Regularizations",
    initializations: "Initializations", learning_scenari: "Learning scenari", cost: "Cost" };
  const measure = document.createElement("canvas").getContext("2d");
  function textWidth(text, font) { measure.font = font; return measure.measureText(text).width; }

  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 36, ranksep: 64, edgesep: 16, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const layer of layers) {
    const sub = layer.type + " · " + (layer.shape ? layer.shape.join("×") : "?") + (layer.params ? " · " + fmt(layer.params) + " params" : "");
    const width = Math.max(textWidth(layer.name, "600 13px system-ui, sans-serif"), textWidth(sub, "11px system-ui, sans-serif"));
    g.setNode(layer.name, { width: Math.ceil(width) + 32, height: 46, layer: layer, sub: sub });
  }
  for (const [source, target, kind] of edges) g.setEdge(source, target, { kind: kind });
  dagre.layout(g);
  const size = g.graph();
  const root = svg("svg", { width: Math.ceil(size.width), height: Math.ceil(size.height),
    viewBox: "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height), role: "img", "aria-label": "layer graph" });
  const defs = svg("defs");
  for (const [id, color] of [["arrow", "#98a2b3"], ["arrow-ref", "#c0879a"]]) {
    defs.append(svg("marker", { id: ids + id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: color })));
  }
  root.append(defs);
  // Edges leave a node's bottom and enter the next one's top, spread along the side in the order of
  // the nodes at the other end, and bend with vertical tangents: they stay in the gaps between ranks.
  const ports = (name, side, other) => {
    const node = g.node(name);
    const ends = (side === "out" ? g.outEdges(name) : g.inEdges(name)).map((e) => g.node(side === "out" ? e.w : e.v).x).sort((a, b) => a - b);
    const slot = ends.indexOf(g.node(other).x);
    const step = Math.min(24, node.width / (ends.length + 1));
    return { x: node.x + (slot - (ends.length - 1) / 2) * step, y: node.y + (side === "out" ? 1 : -1) * node.height / 2 };
  };
  for (const e of g.edges()) {
    const edge = g.edge(e);
    const inner = edge.points.length > 3 ? edge.points.slice(1, -1) : [];
    const points = [ports(e.v, "out", e.w)].concat(inner, [ports(e.w, "in", e.v)]);
    let d = "M" + points[0].x + "," + points[0].y;
    for (let i = 1; i < points.length; i++) {
      const a = points[i - 1], b = points[i], mid = (a.y + b.y) / 2;
      d += " C" + a.x + "," + mid + " " + b.x + "," + mid + " " + b.x + "," + b.y;
    }
    const reference = edge.kind === "reference";
    root.append(svg("path", { class: "edge" + (reference ? " reference" : ""), d: d,
      "marker-end": "url(#" + ids + (reference ? "arrow-ref" : "arrow") + ")", "data-edge": e.v + ">" + e.w }));
  }
  for (const name of g.nodes()) {
    const node = g.node(name);
    const layer = node.layer;
    const x = node.x - node.width / 2, y = node.y - node.height / 2;
    const tip = [layer.name + " — " + layer.type, shapeText(layer.shape), fmt(layer.params) + " params"];
    for (const [role, items] of Object.entries(layer.abstractions)) tip.push((roleNames[role] || role) + ": " + items.join(", "));
    const group = svg("g", { class: "node role-" + layer.role, "data-layer": layer.name, tabindex: 0, role: "button" },
      svg("title", {}, tip.join("\n")),
      svg("rect", { x: x, y: y, width: node.width, height: node.height, rx: 8 }),
      svg("rect", { class: "band", x: x + 1, y: y + 6, width: 4, height: node.height - 12, rx: 2 }),
      svg("text", { class: "name", x: node.x, y: y + 19, "text-anchor": "middle" }, layer.name),
      svg("text", { class: "sub", x: node.x, y: y + 36, "text-anchor": "middle" }, node.sub));
    if (onSelect) {
      group.addEventListener("click", () => onSelect(layer.name));
      group.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") onSelect(layer.name); });
    }
    root.append(group);
  }
  return root;
}
