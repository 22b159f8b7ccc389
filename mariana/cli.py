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


def _show(args: argparse.Namespace) -> int:
    import mariana

    print(mariana.load(args.model).summary())
    return 0


def _html(args: argparse.Namespace) -> int:
    import mariana

    output = args.output or str(args.model).removesuffix(".mar") + ".html"
    mariana.load(args.model).to_html(output)
    print(f"Wrote {output}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from mariana.training import Trainer

    trainer = Trainer.resume(args.run_dir)
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
