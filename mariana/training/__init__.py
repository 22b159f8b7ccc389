"""Trainer, dataset mappers, stops and recorders. Being built under the training issue."""

from __future__ import annotations

from typing import Any


def fit(network: Any, train: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("net.fit() is not built yet (training issue).")


class Trainer:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("Trainer is not built yet (training issue).")

    @classmethod
    def resume(cls, run_dir: Any) -> Trainer:
        raise NotImplementedError("Trainer.resume is not built yet (training issue).")
