"""``net.to_html(path)``: one self-contained page that works offline.

The page shows the layer graph laid out by dagre (layered, Sugiyama-style),
each layer's abstractions, hyperparameters and parameters on click (and a
summary on hover), the training curves drawn by uPlot when a history is
given, the layer table and the generation log. Both libraries come from npm
(``mariana/report/assets/package.json``, installed by ``make setup``) and are
inlined into the page: it makes no request of any kind (its
Content-Security-Policy forbids them).

Example:
    >>> import os, tempfile, mariana.layers as ML
    >>> net = ML.Input(4, name="inp") > ML.SoftmaxClassifier(3, name="out")
    >>> path = os.path.join(tempfile.mkdtemp(), "model.html")
    >>> net.to_html(path, history=[{"epoch": 1, "train": {"out": {"loss": 0.9, "accuracy": 0.6}}}])
    >>> from pathlib import Path
    >>> page = Path(path).read_text()
    >>> "dagre" in page and '"name":"out"' in page and "http://" not in page.replace("http://www.w3.org", "")
    True
"""

from __future__ import annotations

import datetime
import html
import json
import math
import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mariana.about import __version__
from mariana.files import as_path, atomic_write
from mariana.report.describe import describe_layer, human_bytes, human_count, totals
from mariana.report.log import history_from_log, log_rows

if TYPE_CHECKING:
    from mariana.network import Network

ASSETS = Path(__file__).resolve().parent / "assets"
#: npm files inlined into the page, relative to ``ASSETS / "node_modules"``.
LIBRARIES = {
    "DAGRE": "@dagrejs/dagre/dist/dagre.min.js",
    "UPLOT": "uplot/dist/uPlot.iife.min.js",
    "UPLOT_CSS": "uplot/dist/uPlot.min.css",
}
_LICENSES = {"DAGRE": "@dagrejs/dagre/dist/dagre.min.js.LEGAL.txt"}


def to_html(network: Network, path: str | os.PathLike, history: list[dict] | None = None, title: str | None = None) -> None:
    """Write the report of ``network`` to ``path`` atomically.

    ``history`` is a Trainer history (one dict per epoch); without it, the
    curves of the network's latest Trainer run, kept in its generation log
    (and so in a saved ``.mar``), are drawn.
    """

    path = as_path(path, "to_html")
    if history is None:  # the curves of the network's latest Trainer run, recorded in its generation log
        history = history_from_log(network.log) or None
    page = render_html(network, history=history, title=title or path.stem).encode("utf-8")
    atomic_write(path, lambda handle: handle.write(page) and None)


def render_html(network: Network, history: list[dict] | None = None, title: str = "network") -> str:
    """The report page as a string (see :func:`to_html`)."""
    if not isinstance(title, str):
        raise TypeError(f"to_html: title must be a str, but received {type(title).__name__}.")
    data = network_data(network, history, title)
    parts = {
        "TITLE": html.escape(title),
        "META": html.escape(f"Report generated {generated_now()} by Mariana {__version__}"),
        "STATS": network_stats(network, data["totals"]),
        "DATA": embedded_json(data),
        **page_assets(),
    }
    return fill_template("report.html", parts)


def network_data(network: Network, history: list[dict] | None, title: str) -> dict:
    """What report.js draws: the layers, the edges, the totals, the curves and the generation log, as JSON."""
    layers = [describe_layer(layer) for layer in network.layers.values()]
    edges = [[source, layer["name"], "data"] for layer in layers for source in layer["inputs"]]
    edges += [[target, layer["name"], "reference"] for layer in layers for target in layer["references"]]
    return {"title": title, "layers": layers, "edges": edges, "totals": totals(network),
            "history": normalize_history(history), "log": log_rows(network.log)}


def network_stats(network: Network, counts: dict) -> str:
    """The header's figures: layers, params, trainable params, weight bytes, inputs and outputs."""
    return "".join(
        f'<div class="stat"><b>{html.escape(value)}</b> {html.escape(label)}</div>'
        for value, label in (
            (str(counts["layers"]), "layers"), (human_count(counts["params"]), "params"),
            (human_count(counts["trainable"]), "trainable"), (human_bytes(counts["bytes"]), "weights"),
            (", ".join(network.inputs) or "none", "inputs"), (", ".join(network.outputs) or "none", "outputs"),
        )
    )


def generated_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def page_assets() -> dict[str, str]:
    """The parts every report page inlines: its CSS, the layer graph's drawing (graph.js, graph.css), report.js, and the
    npm libraries."""
    return {"CSS": (ASSETS / "report.css").read_text(), "JS": script_text((ASSETS / "report.js").read_text()),
            "GRAPH_CSS": (ASSETS / "graph.css").read_text(), "GRAPH_JS": script_text((ASSETS / "graph.js").read_text()),
            **{key: library(key) for key in LIBRARIES}}


def fill_template(name: str, parts: dict[str, str]) -> str:
    """The asset template ``name`` with each ``@KEY@`` replaced by ``parts[KEY]``."""
    template = (ASSETS / name).read_text()
    return re.sub(r"@([A-Z_]+)@", lambda match: parts[match.group(1)], template)


def normalize_history(history: list[dict] | None) -> dict | None:
    """A Trainer history as ``{"epochs": [...], "charts": [{"output", "metric", "series": [{"stream", "values"}]}]}``.

    Each history entry is ``{"epoch": n, "time": s, "<stream>": {"<output>": {"<metric>": value}}}``;
    streams are present only when given. Non-finite values become gaps.
    """
    if history is None:
        return None
    if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
        raise TypeError(f"to_html: history must be a list of dicts (one per epoch), but received {type(history).__name__}.")
    epochs = []
    charts: dict[tuple[str, str], dict[str, list]] = {}
    for position, entry in enumerate(history):
        epoch = entry.get("epoch", position + 1)
        if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
            raise ValueError(f"to_html: history entry {position} has epoch {epoch!r}; expected a number.")
        epochs.append(epoch)
        for stream, outputs in entry.items():
            if stream in ("epoch", "time") or not isinstance(outputs, dict):
                continue
            for output, metrics in outputs.items():
                if not isinstance(metrics, dict):
                    raise ValueError(f"to_html: history entry {position}: {stream}/{output} must map metric names to numbers, "
                                     f"but is {metrics!r}.")
                for metric, value in metrics.items():
                    values = charts.setdefault((str(output), str(metric)), {}).setdefault(str(stream), [None] * len(history))
                    values[position] = _finite(value)
    order = {"train": 0, "valid": 1, "test": 2}
    return {
        "epochs": epochs,
        "charts": [
            {"output": output, "metric": metric,
             "series": [{"stream": s, "values": v} for s, v in sorted(streams.items(), key=lambda item: (order.get(item[0], 3), item[0]))]}
            for (output, metric), streams in sorted(charts.items(), key=lambda item: (item[0][0], item[0][1] != "loss", item[0][1]))
        ],
    }


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def embedded_json(data: dict) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    # Inside <script>, "</script>" or "<!--" in a layer name or a note must not end the element.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def script_text(code: str) -> str:
    """JavaScript ``code`` that is safe to inline in a ``<script>`` element (no source map, no closing tag)."""
    code = re.sub(r"^//# sourceMappingURL=.*$", "", code, flags=re.MULTILINE)
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


@cache
def library(key: str) -> str:
    file = ASSETS / "node_modules" / LIBRARIES[key]
    if not file.is_file():
        raise FileNotFoundError(
            f"The HTML report inlines {LIBRARIES[key].split('/dist')[0]} from npm, but {file} is missing. "
            f"Install the report assets with `make setup` (or `npm ci --prefix {ASSETS}`)."
        )
    text = file.read_text(encoding="utf-8")
    if key in _LICENSES:
        license_file = ASSETS / "node_modules" / _LICENSES[key]
        if license_file.is_file():
            text = license_file.read_text(encoding="utf-8") + "\n" + text
    return text if key.endswith("_CSS") else script_text(text)
