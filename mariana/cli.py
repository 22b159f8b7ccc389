"""The ``mariana`` command: demo, show, html, resume, bench.

A wrong argument is one line on stderr and exit status 2, never a traceback.
``--import MODULE`` (repeatable) on show, html and resume imports the module
that registers a model's custom classes (``@mariana.register``). Everything
printed from a file (summaries, logs, messages quoting it) has its control
characters escaped, so a file cannot drive the terminal.

Example:
    $ mariana demo
    $ mariana show model.mar
    $ mariana show --import mylayers custom.mar

    >>> printable("note\\x1b]0;pwned\\x07 ok")
    'note\\\\x1b]0;pwned\\\\x07 ok'
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mariana.arguments import CommandError, OneLineParser, at_least
from mariana.report.log import printable


class _Parser(OneLineParser):
    def format_line(self, text: str) -> str:
        return printable(text)


def _say(text: str) -> None:
    print(printable(text))


# -- commands -----------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from mariana.demo import run_demo

    return run_demo(args)


def _import_modules(modules: Sequence[str] | None) -> None:
    """Import the modules named by ``--import`` (from the current folder too, as ``python -m`` would)."""
    if not modules:
        return
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except (ImportError, ValueError, TypeError) as error:  # unknown, empty or relative names
            raise CommandError(f"--import {name}: {error}") from None


def _unregistered_classes(document: Any) -> list[str]:
    """Class names in a config document (``{"class": ..., "config": ...}`` anywhere) that are not registered."""
    from mariana import registry

    found: set[str] = set()
    stack, seen = [document], 0
    while stack and seen < 100_000:
        item, seen = stack.pop(), seen + 1
        if isinstance(item, dict):
            name = item.get("class")
            if isinstance(name, str) and isinstance(item.get("config"), dict):
                try:
                    registry.lookup(name)
                except ValueError:
                    found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(found)


def _mar_architecture(path: str) -> Any:
    """The architecture document of a .mar file, read with the loader's own caps (None if unreadable)."""
    from mariana.persistence import read_architecture

    try:
        return read_architecture(path)
    except ValueError:
        return None


def _explain_unregistered(command: str, target: str, document: Any, error: Exception) -> CommandError:
    missing = _unregistered_classes(document)
    if not missing:
        return CommandError(str(error))
    names = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    return CommandError(
        f"{target} uses class(es) {names}, which are not registered here. Import the module that defines them "
        f"(with @mariana.register) with --import MODULE (repeatable), e.g. mariana {command} --import mylayers {target}"
    )


def _load(command: str, args: argparse.Namespace) -> Any:
    import mariana

    _import_modules(args.imports)
    try:
        return mariana.load(args.model, max_bytes=args.max_bytes)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:
        raise _explain_unregistered(command, args.model, _mar_architecture(args.model), error) from None


def _show(args: argparse.Namespace) -> int:
    network = _load("show", args)
    _say(network.summary())
    if args.log:
        from mariana.report import format_log

        _say("\nGeneration log (UTC):")
        _say(format_log(network.log))
    return 0


def _html(args: argparse.Namespace) -> int:
    output = Path(args.output or str(args.model).removesuffix(".mar") + ".html")
    if output.is_dir():
        raise CommandError(f"cannot write the report to {str(output)!r}: it is a folder; give a file name, e.g. -o {output / 'model.html'}")
    if not output.parent.is_dir():
        raise CommandError(f"cannot write the report to {str(output)!r}: the folder {str(output.parent)!r} does not exist")
    network = _load("html", args)
    try:
        network.to_html(output)
    except ValueError as error:  # e.g. a malformed training history in the file's generation log
        raise CommandError(f"{args.model}: cannot make its report: {error}") from None
    _say(f"Wrote {output}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from mariana.training import Trainer
    from mariana.training.storage.run_files import read_json

    _import_modules(args.imports)
    try:
        trainer = Trainer.resume(args.run_dir)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:  # a refused run directory: one clear line
        try:
            run = read_json(Path(args.run_dir) / "run.json")
        except (OSError, ValueError):
            run = None
        raise _explain_unregistered("resume", args.run_dir, run, error) from None
    _say(f"Run finished after {len(trainer.history)} epoch(s); results in {args.run_dir}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from mariana.bench import command

    return command(args)


def build_parser() -> argparse.ArgumentParser:
    from mariana.about import __version__

    parser = _Parser(prog="mariana", description="Mariana, the cutest deep learning framework.")
    parser.add_argument("--version", action="version", version=f"mariana {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,show,html,resume,bench}")
    demo = commands.add_parser("demo", help="train on the embedded digits data set (or MNIST) and keep the run")
    from mariana.demo import add_arguments

    add_arguments(demo)
    demo.set_defaults(handler=_demo)
    imports = {"action": "append", "dest": "imports", "metavar": "MODULE",
               "help": "import MODULE first, to register the custom classes the file uses (repeatable)"}
    max_bytes = {"type": at_least(1), "default": 8 * 2**30, "metavar": "N",
                 "help": "refuse a file whose tensors (or any member) exceed N bytes (default 8 GiB)"}
    show = commands.add_parser("show", help="print the summary of a saved model")
    show.add_argument("model")
    show.add_argument("--max-bytes", **max_bytes)
    show.add_argument("--log", action="store_true", help="also print the generation log")
    show.add_argument("--import", **imports)
    show.set_defaults(handler=_show)
    html = commands.add_parser("html", help="write the HTML report of a saved model")
    html.add_argument("model")
    html.add_argument("-o", "--output", default=None, help="the page to write (default: the model's path with .html)")
    html.add_argument("--max-bytes", **max_bytes)
    html.add_argument("--import", **imports)
    html.set_defaults(handler=_html)
    resume = commands.add_parser("resume", help="resume an interrupted training run")
    resume.add_argument("run_dir")
    resume.add_argument("--import", **imports)
    resume.set_defaults(handler=_resume)
    bench = commands.add_parser("bench", help="compare a training step with a plain PyTorch loop")
    from mariana.bench import add_arguments as bench_arguments

    bench_arguments(bench, at_least(1))
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as error:
        _fail(args.command, str(error))
        return 2
    except OSError as error:  # a folder that cannot be written, a full disk: the path and the reason, no traceback
        where = f"{error.filename}: " if error.filename and str(error.filename) not in str(error.strerror or "") else ""
        _fail(args.command, f"cannot write or read {where}{error.strerror or error}")
        return 2
    except KeyboardInterrupt as error:  # the Trainer's message says how to resume
        _fail(args.command, str(error) or "interrupted")
        return 130


def _fail(command: str, message: str) -> None:
    print(printable(f"mariana {command}: " + " ".join(message.splitlines())), file=sys.stderr)


if __name__ == "__main__":  # python -m mariana.cli: run the importable module, whose classes demo.py shares
    from mariana.cli import main as _main

    sys.exit(_main())
