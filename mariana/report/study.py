"""A study's HTML page: the trials, the objective over trials and per epoch, parameter importances, and the
best network's report (drawn by the network report's own script), in one offline file.

The study is given as JSON (``mariana.tuning`` builds it from Optuna), so this
module knows nothing of Optuna. Keys: ``name``, ``direction`` ("maximize" or
"minimize"), ``objective`` (its label), ``trials`` (``number``, ``state``,
``value``, ``params``, ``epochs``, ``seconds``, ``stop_reason``, ``continues``,
``steps`` and ``values`` per epoch), ``best`` (``number``, ``value``) or None,
``importances`` (name -> share) and ``importance_note``.

Example:
    >>> import os, tempfile
    >>> study = {"name": "s", "direction": "maximize", "objective": "valid/out/accuracy", "best": None,
    ...          "trials": [], "importances": {}, "importance_note": "No completed trial."}
    >>> path = os.path.join(tempfile.mkdtemp(), "study.html")
    >>> write_study_html(path, study, network=None)
    >>> from pathlib import Path
    >>> page = Path(path).read_text()
    >>> '"name":"s"' in page and 'id="mariana-data"' not in page and "No completed trial." in page
    True
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING

from mariana.about import __version__
from mariana.files import as_path, atomic_write
from mariana.report.html import ASSETS, embedded_json, fill_template, generated_now, network_data, page_assets, script_text
from mariana.report.log import history_from_log

if TYPE_CHECKING:
    from mariana.network import Network


def write_study_html(path: str | os.PathLike, study: dict, network: Network | None, title: str | None = None) -> None:
    """Write the study's page to ``path`` atomically; ``network`` is the best trial's (None while no trial completed)."""
    path = as_path(path, "to_html")
    page = render_study_html(study, network, title or f"study {study['name']}").encode("utf-8")
    atomic_write(path, lambda handle: handle.write(page) and None)


def render_study_html(study: dict, network: Network | None, title: str) -> str:
    """The study's page as a string (see :func:`write_study_html`)."""
    assets = page_assets()
    parts = {
        "TITLE": html.escape(title),
        "META": html.escape(f"Report generated {generated_now()} by Mariana {__version__}"),
        "STATS": study_stats(study),
        "STUDY": embedded_json(study),
        "STUDY_CSS": (ASSETS / "study.css").read_text(),
        "STUDY_JS": script_text((ASSETS / "study.js").read_text()),
        "NETWORK": "",
        "NETWORK_JS": "",
        **assets,
    }
    if network is not None and study.get("best") is not None:
        best = study["best"]
        data = network_data(network, history_from_log(network.log) or None, f"trial {best['number']}")
        parts["NETWORK"] = fill_template("study_network.html", {
            "NETWORK_TITLE": html.escape(f"Best network: trial {best['number']} ({study['objective']} = {best['value']:.6g})")})
        parts["NETWORK_JS"] = (f'<script type="application/json" id="mariana-data">{embedded_json(data)}</script>\n'
                               f"<script>{assets['GRAPH_JS']}</script>\n<script>{assets['JS']}</script>")
    return fill_template("study.html", parts)


def study_stats(study: dict) -> str:
    """The header's figures: trials by state, the objective and its best value."""
    states = [trial["state"] for trial in study["trials"]]
    figures = [(str(states.count("COMPLETE")), "completed"), (str(states.count("PRUNED")), "pruned"),
               (str(states.count("FAIL")), "failed"), (study["objective"], study["direction"] + "d")]
    if study.get("best") is not None:
        figures.append((f"{study['best']['value']:.6g}", f"best (trial {study['best']['number']})"))
    return "".join(f'<div class="stat"><b>{html.escape(value)}</b> {html.escape(label)}</div>' for value, label in figures)
