"""The README's promises: short, opening with the two commands, the demo printing what it shows, links that exist."""

from __future__ import annotations

import re
import sys

import pytest

from mariana import cli
from tests.docs.markdown_code import README, ROOT, code_blocks

TEXT = README.read_text()
BLOCKS = code_blocks(README)


def make_targets() -> dict[str, str]:
    """Makefile target -> its prerequisites line."""
    makefile = (ROOT / "Makefile").read_text()
    return {match.group(1): match.group(2) for match in re.finditer(r"^([a-z][\w-]*):(.*)$", makefile, re.MULTILINE)}


def test_readme_is_short():
    assert len(TEXT.splitlines()) < 150


def test_readme_opens_with_the_two_commands():
    assert TEXT.startswith("# Mariana\n\n```\nmake demo")
    line, info, code = BLOCKS[0]
    assert [command.split("#")[0].strip() for command in code.splitlines()] == ["make demo", "make test"]
    targets = make_targets()
    assert "setup" in targets["demo"] and "setup" in targets["test"] and "lint" in targets["test"]
    assert "mariana demo" in (ROOT / "Makefile").read_text()


def test_demo_prints_what_the_readme_shows(tmp_path, monkeypatch, capsys):
    """`mariana demo` (what `make demo` runs) prints the README's lines; numbers may differ, the shape may not."""
    monkeypatch.chdir(tmp_path)
    shown = next(code for _, info, code in BLOCKS if code.startswith("Training Network("))
    assert cli.main(["demo"]) == 0
    printed = capsys.readouterr().out
    number = r"\d+(?:\.\d+)?"
    pattern = ""
    for want in shown.splitlines():
        if want == "...":  # any number of lines (the epochs in between)
            pattern += r"(?:.*\n)*?"
            continue
        line = re.sub(r"\d+(?:\\\.\d+)?", lambda _: number, re.escape(want))
        line = line.replace(r"\.\.\.", r"\d{8}-\d{6}")  # runs/demo-digits-<date>-<time>
        pattern += line.replace(" ms ", " m?s ") + "\n"  # an epoch's duration: ms below a second
    assert re.fullmatch(pattern, printed), (shown, printed)
    accuracy = float(re.search(r"Final held-out accuracy: (\S+)", printed).group(1))
    assert accuracy >= 0.95  # the demo's own exit condition


def test_readme_links_point_at_files_that_exist():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", TEXT)
    assert links, "the README links into the guide"
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert missing == []
    guide = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "docs" / "guide").glob("*.md"))
    assert [page for page in guide if page not in links] == [], "every guide page is linked from the README"


def test_readme_names_scripts_and_targets_that_exist():
    for script in re.findall(r"`((?:benchmarks|examples)/\w+\.py)`", TEXT):
        assert (ROOT / script).exists(), script
    targets = make_targets()
    for target in re.findall(r"`make ([\w-]+)`", TEXT):
        assert target in targets, target
    assert "--doctest-modules" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("module", ["mariana", "mariana.layers", "mariana.activations", "mariana.costs", "mariana.scenari",
                                    "mariana.regularizations", "mariana.decorators", "mariana.initializations", "mariana.training"])
def test_public_modules_carry_a_runnable_example(module):
    __import__(module)
    assert ">>>" in (sys.modules[module].__doc__ or ""), f"{module}'s docstring has no doctest example"
