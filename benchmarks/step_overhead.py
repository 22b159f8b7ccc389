"""Per-step overhead of ``net.train`` against a plain PyTorch loop (see :mod:`mariana.bench`, which ``mariana bench`` runs).

Run: ``.venv/bin/python benchmarks/step_overhead.py [--steps 500] [--repeats 3] [--numpy]``.
"""

from mariana.bench import main

if __name__ == "__main__":
    main()
