"""Reports on a network: text summary, self-contained HTML page, generation log.

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    >>> print(net.summary().splitlines()[-1])
    Total params: 3 (3)  trainable: 3  frozen: 0  layers: 2  size: 12 B
"""

from __future__ import annotations

from mariana.report.html import to_html
from mariana.report.log import format_log, log_rows
from mariana.report.summary import summary

__all__ = ["summary", "to_html", "format_log", "log_rows"]
