"""Exports of a network to other formats (ONNX).

Example: ``net.to_onnx("m.onnx", outputs=["out"])``; see :mod:`mariana.export.onnx`.
"""

from __future__ import annotations

from mariana.export.onnx import PositionalGraph, to_onnx

__all__ = ["PositionalGraph", "to_onnx"]
