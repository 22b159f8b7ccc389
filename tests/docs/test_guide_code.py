"""Every ```python block of the docs and the README runs, page by page, in order, in a fresh folder.

A page's blocks share one namespace (like a notebook), so a later block may use
what an earlier one built. A block followed by an output block (fenced
``` { .text .output } ```) must print that, compared like a doctest: ``...``
matches anything and whitespace is normalized. Warnings are errors here as
everywhere (pyproject's filterwarnings). Blocks that must not run are fenced
``` { .python .no-run } ``` and stay few.
"""

from __future__ import annotations

import contextlib
import doctest
import io

import pytest

from mariana import registry
from tests.docs.markdown_code import NO_RUN, OUTPUT, ROOT, code_blocks, pages, python_blocks

CHECKER = doctest.OutputChecker()
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

RUNNABLE = [page for page in pages() if python_blocks(page)]


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(page.relative_to(ROOT)) for page in RUNNABLE])
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = str(page.relative_to(ROOT))
    # A module-like name, so classes the page registers (@mar.register) get a stable, page-specific __module__.
    namespace = {"__name__": relative.replace("/", "_").replace(".", "_").replace("-", "_")}
    try:
        for line, code, expected in python_blocks(page):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                # Pad with blank lines so tracebacks point at the page's own line numbers.
                exec(compile("\n" * (line - 1) + code, relative, "exec"), namespace)  # noqa: S102
            if expected is not None and not CHECKER.check_output(expected, printed.getvalue(), OPTIONS):
                pytest.fail(f"{relative}:{line}: the block prints\n{printed.getvalue()}\nbut the page shows\n{expected}", pytrace=False)
    finally:
        # The classes a page registers (its custom Scale layer...) must not keep those names from other tests.
        for name, klass in registry.classes().items():
            if klass.__module__ == namespace["__name__"]:
                registry.unregister(name)


def test_every_python_looking_block_is_run_or_explicitly_not():
    unclear = [(str(page.relative_to(ROOT)), line, info) for page in pages() for line, info, _ in code_blocks(page)
               if "python" in info.lower() and info not in ("python", NO_RUN) or info in ("py", "python3", "pycon")]
    assert unclear == [], f"fence Python as ```python (run by the tests) or ```{NO_RUN} (shown only): {unclear}"


def test_every_output_block_belongs_to_a_python_block():
    for page in pages():
        checked = sum(expected is not None for _, _, expected in python_blocks(page))
        shown = sum(info == OUTPUT for _, info, _ in code_blocks(page))
        assert checked == shown, f"{page.relative_to(ROOT)}: an output block must follow its ```python block directly"


def test_blocks_that_do_not_run_stay_few():
    shown_only = [(str(page.relative_to(ROOT)), line) for page in pages() for line, info, _ in code_blocks(page) if info == NO_RUN]
    assert len(shown_only) <= 6, shown_only
