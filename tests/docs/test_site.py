"""The documentation site: the strict MkDocs build, the gallery's pictures, and the API reference's coverage."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.docs.markdown_code import DOCS, ROOT

GALLERY = DOCS / "gallery"
EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("*.py") if not path.name.startswith("_"))


def public_names(module: str) -> list[str]:
    """``__all__`` (minus submodules), else the public classes and functions the module defines."""
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None) or [name for name, value in vars(mod).items()
                                               if not name.startswith("_") and getattr(value, "__module__", None) == module]
    return [name for name in names if not isinstance(getattr(mod, name), type(mod)) and not name.startswith("__")]


def defined_at(module: str, name: str) -> str:
    """Where a re-exported or lazily imported name is defined (its entry may be documented there)."""
    value = getattr(importlib.import_module(module), name)
    return f"{getattr(value, '__module__', module)}.{getattr(value, '__qualname__', name)}"


PUBLIC_MODULES = ["mariana", "mariana.layers", "mariana.activations", "mariana.costs", "mariana.scenari",
                  "mariana.regularizations", "mariana.decorators", "mariana.initializations", "mariana.training", "mariana.tuning"]


def test_strict_site_build(tmp_path):
    """What `make docs` runs; skipped where the docs extra is not installed (make setup does not install it)."""
    pytest.importorskip("mkdocs", reason="the site build needs the docs extra: make docs, or pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings_handlers.python", reason="the site build needs mkdocstrings[python] (the docs extra)")
    mkdocs = shutil.which("mkdocs", path=os.path.dirname(sys.executable)) or shutil.which("mkdocs")
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # The kernel that runs the tutorial notebook (ipykernel 7) notes on stderr that it talks to mkdocs-jupyter over local TCP.
    stderr = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("[IPKernelApp] WARNING | Kernel is running over TCP"))
    assert "WARNING" not in stderr, stderr[-3000:]
    tutorial = (tmp_path / "site" / "tutorial.html").read_text()  # the notebook, run at build time, with what it shows
    assert tutorial.count('class="mariana-net"') == 2 and "Stopped after epoch 3: EpochWall" in tutorial and 'data-chart="out/loss"' in tutorial
    anchors = {anchor for page in (tmp_path / "site" / "api").glob("*.html") for anchor in re.findall(r'id="([\w.]+)"', page.read_text())}
    missing = [f"{module}.{name}" for module in PUBLIC_MODULES for name in public_names(module)
               if not {f"{module}.{name}", defined_at(module, name)} & anchors]
    assert missing == [], f"public names without an entry in the API reference: {missing}"


def test_gallery_shows_every_example_with_its_pictures_and_numbers():
    results = json.loads((GALLERY / "results.json").read_text())["examples"]
    page = (GALLERY / "index.md").read_text()
    assert sorted(results) == EXAMPLES
    for name, run in results.items():
        assert f"## {name}" in page and run["result"] in page
        for picture in (f"{name}-curves.png", f"{name}-report.png"):
            assert f"({picture})" in page
            data = (GALLERY / picture).read_bytes()
            assert data.startswith(b"\x89PNG") and len(data) < 200_000, picture
        assert run["history"] and run["seconds"] > 0


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_api_reference_has_a_page_for_every_public_module(module):
    """Each public module is rendered by a `::: module` directive (mkdocstrings lists its public names)."""
    directives = {match for page in (DOCS / "api").glob("*.md") for match in re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE)}
    assert module in directives
    importlib.import_module(module)
