"""Networks and histories in Jupyter: what ``net`` and ``history`` show as the last line of a cell.

:func:`network_html` is the report's layer graph (``assets/graph.js``, laid out
by dagre; both inlined inside one function, so a display leaves nothing
global behind) above the layer table, which needs no script: a viewer that
runs none (GitHub, an untrusted notebook) shows the table. :func:`history_html`
draws the curves as plain SVG, here, with no script at all. Every display has
ids of its own, so a notebook may show any number of them.

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(4, name="inp") > ML.SoftmaxClassifier(3, name="out")
    >>> page = network_html(net)
    >>> page.count('class="mariana-net"'), "marianaGraph" in page, "<td><code>out</code></td>" in page
    (1, True, True)
    >>> network_html(net).split('id="')[1][:20] != page.split('id="')[1][:20]  # a new id for every display
    True
    >>> svg = history_html([{"epoch": 1, "train": {"out": {"loss": 0.9}}}, {"epoch": 2, "train": {"out": {"loss": 0.5}}}], "EpochWall")
    >>> svg.count("<svg"), "Stopped after epoch 2: EpochWall" in svg
    (1, True)
"""

from __future__ import annotations

import html
import re
import uuid
from typing import TYPE_CHECKING, Any

from mariana.report.describe import describe_layer, human_bytes, human_count, shape_text, totals
from mariana.report.html import ASSETS, embedded_json, library, normalize_history, script_text

if TYPE_CHECKING:
    from mariana.network import Network

#: Line colours by stream, as in the report.
STREAM_COLORS = {"train": "#3b6fd8", "valid": "#e07b24", "test": "#2e9d6b"}
CHART_WIDTH, CHART_HEIGHT = 300, 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 10, 26

_FRAGMENT_CSS = """
{scope} {{ font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2430; }}
{scope} .mariana-head {{ margin: 2px 0 6px; }}
{scope} .mariana-graph {{ max-height: 520px; overflow: auto; }}
{scope} .mariana-graph svg {{ max-width: 100%; height: auto; }}
{scope} table {{ border-collapse: collapse; margin-top: 4px; }}
{scope} th, {scope} td {{ text-align: left; padding: 2px 10px 2px 0; border-bottom: 1px solid #eaecf0; vertical-align: top; }}
{scope} td.num {{ text-align: right; }}
{scope} summary {{ cursor: pointer; color: #667085; }}
"""


def new_id() -> str:
    """An element id no other display in the notebook has."""
    return f"mariana-{uuid.uuid4().hex[:12]}"


def scoped_css(css: str, scope: str) -> str:
    """``css`` with every selector prefixed by ``scope`` (rules of the form ``a, b { ... }``, no at-rules)."""
    def prefix(match: re.Match) -> str:
        selectors = ", ".join(f"{scope} {selector.strip()}" for selector in match.group(1).split(","))
        return f"{selectors} {{{match.group(2)}}}"

    return re.sub(r"([^{}]+)\{([^}]*)\}", prefix, css).strip()


def network_html(network: Network) -> str:
    """A network as an HTML fragment for a notebook: its totals, the layer graph, the layer table."""
    uid = new_id()
    layers = [describe_layer(layer) for layer in network.layers.values()]
    edges = [[source, layer["name"], "data"] for layer in layers for source in layer["inputs"]]
    edges += [[target, layer["name"], "reference"] for layer in layers for target in layer["references"]]
    counts = totals(network)
    head = (f"<b>Network</b> · {counts['layers']} layers · {human_count(counts['params'])} params "
            f"({human_count(counts['trainable'])} trainable) · {human_bytes(counts['bytes'])} · "
            f"inputs: {html.escape(', '.join(network.inputs) or 'none')} · outputs: {html.escape(', '.join(network.outputs) or 'none')}")
    style = _FRAGMENT_CSS.format(scope=f"#{uid}") + scoped_css((ASSETS / "graph.css").read_text(), f"#{uid}")
    return (f'<div class="mariana-net" id="{uid}"><style>{style}</style><div class="mariana-head">{head}</div>'
            f'<div class="mariana-graph"></div><details open><summary>layers</summary>{_layer_table(layers)}</details>'
            f"<script>{_graph_script(uid, layers, edges)}</script></div>")


def _layer_table(layers: list[dict]) -> str:
    rows = []
    for layer in layers:
        notes = "; ".join(f"{role}: {', '.join(items)}" for role, items in layer["abstractions"].items()) or "—"
        cells = [f"<code>{html.escape(layer['name'])}</code>", html.escape(layer["type"]), html.escape(shape_text(layer["shape"])),
                 f'{layer["params"]:,}', html.escape(notes)]
        rows.append("<tr>" + "".join(f'<td class="num">{cell}</td>' if index == 3 else f"<td>{cell}</td>"
                                     for index, cell in enumerate(cells)) + "</tr>")
    head = "".join(f"<th>{name}</th>" for name in ("layer", "type", "output shape", "params", "abstractions"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _graph_script(uid: str, layers: list[dict], edges: list[list[str]]) -> str:
    """Draws the graph into the display ``uid`` once it is in the page; dagre and marianaGraph stay local to it."""
    return script_text(f"""(function () {{
  "use strict";
  var script = document.currentScript, tries = 0;
  function draw() {{
    var host = document.getElementById("{uid}");
    if (!host && script && script.parentNode && script.parentNode.id === "{uid}") host = script.parentNode;
    if (!host) {{ if (tries++ < 100) setTimeout(draw, 30); return; }}
    if (host.getAttribute("data-drawn")) return;
    var dagre = (function () {{ {library("DAGRE")}
      return dagre; }})();
    {(ASSETS / "graph.js").read_text()}
    var data = {embedded_json({"layers": layers, "edges": edges})};
    host.querySelector(".mariana-graph").append(marianaGraph(dagre, data.layers, data.edges, {{ ids: "{uid}-" }}));
    host.querySelector("details").open = false;
    host.setAttribute("data-drawn", "true");
  }}
  draw();
}})();""")


def network_text(network: Network) -> str:
    """The text a notebook shows where it cannot show HTML: the summary table."""
    return network.summary()


def history_html(history: list[dict], stop_reason: str | None = None) -> str:
    """A history as an HTML fragment: one SVG chart per output and metric (a line per stream), then the stop reason."""
    uid = new_id()
    data = normalize_history(list(history))
    if not data["epochs"]:
        return f'<div class="mariana-history" id="{uid}"><i>No epochs yet.</i></div>'
    charts = "".join(_chart(data["epochs"], chart) for chart in data["charts"])
    last = data["epochs"][-1]
    status = (f"Stopped after epoch {last}: {html.escape(stop_reason)}" if stop_reason
              else f"{len(data['epochs'])} epoch(s); no stop has fired (the run did not finish).")
    return (f'<div class="mariana-history" id="{uid}" style="font: 13px/1.4 system-ui, sans-serif; color: #1f2430">'
            f'<div style="display: flex; flex-wrap: wrap; gap: 14px">{charts}</div>'
            f'<div class="mariana-stop" style="margin-top: 4px">{status}</div></div>')


def _chart(epochs: list[float], chart: dict) -> str:
    values = [v for series in chart["series"] for v in series["values"] if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - (abs(low) * 0.1 or 1.0), high + (abs(high) * 0.1 or 1.0)
    pad = (high - low) * 0.06
    low, high = low - pad, high + pad
    first, final = epochs[0], epochs[-1]
    span = (final - first) or 1.0
    inner_w, inner_h = CHART_WIDTH - _LEFT - _RIGHT, CHART_HEIGHT - _TOP - _BOTTOM

    def x(epoch: float) -> float:
        return _LEFT + (inner_w / 2 if final == first else (epoch - first) / span * inner_w)

    def y(value: float) -> float:
        return _TOP + (high - value) / (high - low) * inner_h

    parts = [f'<rect x="{_LEFT}" y="{_TOP}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#d0d5dd"/>']
    for value in (high - pad, (high + low) / 2, low + pad):
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + inner_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#eaecf0"/>'
                     f'<text x="{_LEFT - 4}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="10" fill="#667085">{_number(value)}</text>')
    for epoch in sorted({first, final}):
        parts.append(f'<text x="{x(epoch):.1f}" y="{CHART_HEIGHT - 8}" text-anchor="middle" font-size="10" fill="#667085">'
                     f"{_number(epoch)}</text>")
    parts.append(f'<text x="{_LEFT + inner_w / 2}" y="{CHART_HEIGHT - 8}" text-anchor="middle" font-size="10" fill="#98a2b3">epoch</text>')
    legend = []
    for series in chart["series"]:
        color = STREAM_COLORS.get(series["stream"], "#888888")
        parts.extend(_line(epochs, series, color, x, y))
        known = [v for v in series["values"] if v is not None]
        legend.append(f'<span style="color: {color}">■</span> {html.escape(series["stream"])} '
                      f'{_number(known[-1]) if known else "—"}')
    title = html.escape(f"{chart['output']} — {chart['metric']}")
    return (f'<div class="mariana-chart" data-chart="{html.escape(chart["output"])}/{html.escape(chart["metric"])}">'
            f'<div><b>{title}</b> &nbsp; {" &nbsp; ".join(legend)}</div>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
            f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{title}">{"".join(parts)}</svg></div>')


def _line(epochs: list[float], series: dict, color: str, x: Any, y: Any) -> list[str]:
    """A polyline per run of known values (a non-finite value is a gap), and a dot per epoch when there are few."""
    runs: list[list[tuple[float, float]]] = [[]]
    for epoch, value in zip(epochs, series["values"]):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((epoch, value))
    parts = []
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in run)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
    if len(epochs) < 40:
        for epoch, value in zip(epochs, series["values"]):
            if value is not None:
                parts.append(f'<circle cx="{x(epoch):.1f}" cy="{y(value):.1f}" r="2.5" fill="{color}">'
                             f'<title>{html.escape(series["stream"])}, epoch {_number(epoch)}: {value:.6g}</title></circle>')
    return parts


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 1000 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4f}"
