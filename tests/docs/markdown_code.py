"""The fenced code blocks of a Markdown page, as the docs tests read them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: A Python block that is shown but not run is fenced as ``` { .python .no-run } ``` (rendered as Python by the site).
NO_RUN = "{ .python .no-run }"
#: What the Python block just above prints, checked like a doctest (``...`` matches anything, whitespace is normalized).
OUTPUT = "{ .text .output }"
FENCE = re.compile(r"^(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(path: Path) -> list[tuple[int, str, str]]:
    """``(line, info, code)`` of every fenced block of ``path``; ``line`` is the first line of code (1-based)."""
    text = path.read_text()
    return [(text.count("\n", 0, match.start("code")) + 1, match.group("info").strip(), match.group("code"))
            for match in FENCE.finditer(text)]


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """The blocks to run, in page order: ``(line, code, expected output or None)``.

    An output block must follow its Python block with nothing but blank lines between them.
    """
    text = path.read_text()
    matches = list(FENCE.finditer(text))
    blocks = []
    for index, match in enumerate(matches):
        if match.group("info").strip() != "python":
            continue
        following = matches[index + 1] if index + 1 < len(matches) else None
        expected = None
        if following is not None and following.group("info").strip() == OUTPUT and not text[match.end():following.start()].strip():
            expected = following.group("code")
        blocks.append((text.count("\n", 0, match.start("code")) + 1, match.group("code"), expected))
    return blocks


def pages() -> list[Path]:
    """README.md and every page of the site."""
    return [README, *sorted(DOCS.rglob("*.md"))]
