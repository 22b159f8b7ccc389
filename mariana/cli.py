"""The ``mariana`` command: demo, show, html, resume, bench.

Example:
    $ mariana demo
    $ mariana show model.mar
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from mariana.demo import run_demo

    return run_demo(args)


def _load_or_explain(command: str, path: str):
    """The network saved at ``path``, or None after printing why it cannot be loaded (no traceback)."""
    import mariana

    try:
        return mariana.load(path)
    except (ValueError, FileNotFoundError) as error:
        print(f"mariana {command}: {error}", file=sys.stderr)
        return None


def _show(args: argparse.Namespace) -> int:
    network = _load_or_explain("show", args.model)
    if network is None:
        return 2
    print(network.summary())
    if args.log:
        from mariana.report import format_log

        print("\nGeneration log (UTC):")
        print(format_log(network.log))
    return 0


def _html(args: argparse.Namespace) -> int:
    network = _load_or_explain("html", args.model)
    if network is None:
        return 2
    output = args.output or str(args.model).removesuffix(".mar") + ".html"
    network.to_html(output)
    print(f"Wrote {output}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from mariana.training import Trainer

    try:
        trainer = Trainer.resume(args.run_dir)
    except (FileNotFoundError, ValueError) as error:  # a missing or refused run directory: one clear line
        print(f"mariana resume: {error}", file=sys.stderr)
        return 2
    print(f"Run finished after {len(trainer.history)} epoch(s); results in {args.run_dir}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from mariana.demo import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mariana", description="Mariana, the cutest deep learning framework.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train on the embedded digits data set (or MNIST) and keep the run")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's own)")
    demo.add_argument("--seed", type=int, default=0)
    from mariana.demo import add_arguments

    add_arguments(demo)
    demo.set_defaults(handler=_demo)
    show = commands.add_parser("show", help="print the summary of a saved model")
    show.add_argument("model")
    show.add_argument("--log", action="store_true", help="also print the generation log")
    show.set_defaults(handler=_show)
    html = commands.add_parser("html", help="write the HTML report of a saved model")
    html.add_argument("model")
    html.add_argument("-o", "--output", default=None)
    html.set_defaults(handler=_html)
    resume = commands.add_parser("resume", help="resume an interrupted training run")
    resume.add_argument("run_dir")
    resume.set_defaults(handler=_resume)
    bench = commands.add_parser("bench", help="compare a training step with a plain PyTorch loop")
    bench.add_argument("--steps", type=int, default=300)
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
