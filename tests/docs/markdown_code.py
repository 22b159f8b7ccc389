"""The fenced code blocks of a Markdown page, as the docs tests read them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: A Python block that is shown but not run is fenced as ``` { .python .no-run } ``` (rendered as Python by the site).
NO_RUN = "{ .python .no-run }"
FENCE = re.compile(r"^(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(path: Path) -> list[tuple[int, str, str]]:
    """``(line, info, code)`` of every fenced block of ``path``; ``line`` is the first line of code (1-based)."""
    text = path.read_text()
    return [(text.count("\n", 0, match.start("code")) + 1, match.group("info").strip(), match.group("code"))
            for match in FENCE.finditer(text)]


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """The blocks to run: fenced ```python, in page order."""
    return [(line, code) for line, info, code in code_blocks(path) if info == "python"]


def pages() -> list[Path]:
    """README.md and every page of the site."""
    return [README, *sorted(DOCS.rglob("*.md"))]
