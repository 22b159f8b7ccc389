"""Mariana's Trainer against a hand-written PyTorch loop, MLP and CNN, fp32 and bf16: ``mariana bench`` from a source checkout.

The code lives in :mod:`mariana.bench` so that an installed package runs it too.
Run: ``.venv/bin/python benchmarks/step_overhead.py [--steps N] [--repeats 21] [--batch-size 64] [--device auto]
[--models mlp cnn] [--precisions fp32 bf16]``.
"""

from mariana.bench import main

if __name__ == "__main__":
    main()
