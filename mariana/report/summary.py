"""``net.summary()``: a plain-text table of the layers.

Example:
    >>> import mariana as mar, mariana.layers as ML, mariana.activations as MA
    >>> net = ML.Input(4, name="inp") > ML.Hidden(3, activation=MA.ReLU(), name="hid") > ML.SoftmaxClassifier(2, name="out")
    >>> text = net.summary()
    >>> "hid" in text and "ReLU()" in text and "Total params: 23" in text
    True
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from mariana.report.describe import describe_layer, human_bytes, human_count, shape_text, totals

if TYPE_CHECKING:
    from mariana.network import Network

#: Width of the rendered table; fixed so the text does not depend on the terminal.
WIDTH = 120


def summary(network: Network) -> str:
    """The layers as a text table (layer, type, output shape, inputs, params, abstractions) plus totals."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    for column, justify in (("Layer", "left"), ("Type", "left"), ("Output shape", "left"), ("Inputs", "left"),
                            ("Params", "right"), ("Abstractions", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for layer in network.layers.values():
        info = describe_layer(layer)
        lines = [f"{role}: {', '.join(items)}" for role, items in info["abstractions"].items()]
        inputs = info["inputs"] + [f"({name})" for name in info["references"]]
        table.add_row(info["name"], info["type"], shape_text(info["shape"]), ", ".join(inputs) or "-",
                      f"{info['params']:,}", "\n".join(lines) or "-")
    counts = totals(network)
    buffer = io.StringIO()
    # force_jupyter=False: in a notebook, rich would otherwise display the table itself and write nothing into the buffer.
    console = Console(file=buffer, width=WIDTH, color_system=None, force_terminal=False, force_jupyter=False, highlight=False, emoji=False)
    console.print(table)
    frozen = counts["params"] - counts["trainable"]
    footer = (
        f"Total params: {counts['params']:,} ({human_count(counts['params'])})  "
        f"trainable: {counts['trainable']:,}  frozen: {frozen:,}  "
        f"layers: {counts['layers']}  size: {human_bytes(counts['bytes'])}"
    )
    text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
    return f"{text}\n{footer}"
