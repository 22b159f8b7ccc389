"""A griffe extension for the API reference: Mariana's ``Example:`` docstring sections become ``Examples:``.

Mariana's docstrings are Google style but title their doctests ``Example:``
(sometimes ``Example: what it shows``). Griffe's Google parser knows only
``Examples:`` as a section of code; any other ``Word:`` line starts an
admonition whose body is Markdown, where ``>>>`` lines would render as nested
block quotes. This rewrites the heading while the reference is built, so the
doctests render as Python code; the source files are left as they are.
A shell session in an example (``$ command`` and the lines it prints) becomes
a ``console`` code block instead of Markdown text.
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*(?P<title>\S.*)?$", re.MULTILINE)
_SHELL = re.compile(r"^(?P<indent>[ \t]*)\$ .*(?:\n(?P=indent)\S.*)*", re.MULTILINE)


def _rewrite(match: re.Match) -> str:
    indent, title = match.group("indent"), match.group("title")
    return f"{indent}{title}\n\n{indent}Examples:" if title else f"{indent}Examples:"


def _fence(match: re.Match) -> str:
    indent = match.group("indent")
    return f"{indent}```console\n{match.group(0)}\n{indent}```"


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` sections to ``Examples:`` in every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(_rewrite, obj.docstring.value)
            obj.docstring.value = _SHELL.sub(_fence, text)
