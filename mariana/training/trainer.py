"""The Trainer: epochs of training steps, evaluation, stops, recorders, checkpoints and exact resumption.

A run visits the training stream in the sampler's order, ``batch_size``
samples per step, then evaluates every stream it was given and appends one
entry to the history::

    {"epoch": 1, "time": 2.5,                     # seconds since the run started
     "train": {"out": {"loss": 0.41, "accuracy": 0.88}},
     "valid": {"out": {"loss": 0.35, "accuracy": 0.90}}}

Train metrics are running averages over the epoch's steps (dropout on, as
Keras reports them); valid and test metrics are full evaluations after the
epoch. Accuracy appears for classifier outputs only.

With a ``run_dir``, the run keeps there: ``run.json`` (network architecture,
trainer settings, data hashes, machine), ``data/`` (one copy of the data),
``checkpoints/`` and the ``latest``/``best`` pointers. An exception, SIGINT
or SIGTERM writes a checkpoint at the next step boundary, and
``Trainer.resume(run_dir)`` (or ``mariana resume RUN_DIR``) finishes the run
bit-identically to one that was never interrupted (same machine, torch
version and thread count).

Example:
    >>> import numpy as np, mariana as mar
    >>> from mariana.models import build_mlp
    >>> from mariana.training import Trainer, DatasetMapper, stops
    >>> mar.seed(0)
    >>> net = build_mlp((4,), 2, hidden=8)
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int64")
    >>> trainer = Trainer(net, outputs="out", batch_size=16, stops=[stops.EpochWall(3)], recorders=[], seed=1)
    >>> history = trainer.start(DatasetMapper(inp=x, out=y), valid=DatasetMapper(inp=x, out=y))
    >>> len(history), sorted(history[-1]["valid"]["out"])
    (3, ['accuracy', 'loss'])
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
import torch

import mariana
from mariana.registry import deserialize, serialize
from mariana.training import checkpoint as CK
from mariana.training.mappers import DatasetMapper, as_mapper
from mariana.training.recorders import ProgressBar, Recorder
from mariana.training.stops import EarlyStopping, EpochWall, NaNGuard, Stop

ORDERS = ("simultaneous", "sequential", "random")
STREAMS = ("train", "valid", "test")
RUN_FORMAT = 1


class ResumeWarning(UserWarning):
    """The run is resumed on another machine or torch version: it will not be bit-identical."""


class Trainer:
    """Trains ``outputs`` of ``net``; see the module docstring.

    ``order`` (several outputs): "simultaneous" steps on the sum of their
    costs, "sequential" takes one step per output on every batch, "random"
    picks one output per batch. ``seed`` (optional) seeds Python, NumPy,
    torch and the samplers when the run starts. ``save_if_murdered`` needs a
    ``run_dir``. ``checkpoint_every`` epochs a checkpoint is written (0:
    only the first, emergency and final ones); the last ``keep_checkpoints``
    and the best (by ``best=(stream, output, metric)``, default: the first
    EarlyStopping's, else valid then train loss of the first output) are kept.
    """

    def __init__(self, net: Any, outputs: str | Sequence[str] | None = None, batch_size: int = 64, *,
                 stops: Sequence[Stop] | None = None, recorders: Sequence[Recorder] | None = None,
                 run_dir: str | Path | None = None, save_if_murdered: bool = True, seed: int | None = None,
                 order: str = "simultaneous", hyperparameters: dict | None = None, notes: str | None = None,
                 eval_batch_size: int = 1024, checkpoint_every: int = 1, keep_checkpoints: int = 3,
                 best: Sequence[str] | None = None) -> None:
        from mariana.network import Network, _output_names

        if not isinstance(net, Network):
            raise TypeError(f"Trainer expects a mariana Network first, but received {type(net).__name__}.")
        self.net = net
        self.outputs = list(_output_names(net, outputs if outputs is not None else list(net.outputs)))
        for label, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Trainer: {label} must be an int >= 1, but received {value!r}.")
        if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
            raise ValueError(f"Trainer: checkpoint_every must be an int >= 0 (epochs), but received {checkpoint_every!r}.")
        if order not in ORDERS:
            raise ValueError(f"Trainer: order must be one of {ORDERS}, but received {order!r}.")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"Trainer: seed must be a non-negative int or None, but received {seed!r}.")
        self.stops = list(stops or [])
        if not self.stops:
            raise ValueError("Trainer: give at least one stop, e.g. stops=[stops.EpochWall(10)], so the run can end.")
        for stop in self.stops:
            if not isinstance(stop, Stop):
                raise TypeError(f"Trainer: stops expects mariana.training.stops objects, but received {stop!r}.")
        self.recorders = list(recorders) if recorders is not None else [ProgressBar()]
        for recorder in self.recorders:
            if not isinstance(recorder, Recorder):
                raise TypeError(f"Trainer: recorders expects mariana.training.recorders objects, but received {recorder!r}.")
        self.batch_size, self.eval_batch_size, self.order, self.seed = batch_size, eval_batch_size, order, seed
        self.hyperparameters = dict(hyperparameters or {})
        self.notes = notes
        self.save_if_murdered = bool(save_if_murdered)
        self.checkpoint_every = checkpoint_every
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._store = CK.CheckpointStore(self.run_dir, keep_checkpoints) if self.run_dir is not None else None
        if best is not None and (isinstance(best, str) or len(best) != 3 or not all(isinstance(part, str) for part in best)):
            raise ValueError(f"Trainer: best must be (stream, output, metric), e.g. ('valid', 'out', 'loss'), but received {best!r}.")
        self.best = tuple(best) if best is not None else None
        self.history: list[dict] = []
        self.stop_reason: str | None = None
        self.position_step = 0
        self._started = False
        self._order: np.ndarray | None = None
        self._order_rng = np.random.Generator(np.random.PCG64(0))
        self._elapsed_before = 0.0
        self._best_value: float | None = None
        self._pending_end: dict | None = None
        self._signal: str | None = None
        self._in_step = False
        self._rng_before_step: torch.Tensor | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._jobs: list[concurrent.futures.Future] = []

    # -- public API ---------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return len(self.history)

    def start(self, train: Any, valid: Any = None, test: Any = None) -> list[dict]:
        """Train until a stop fires; returns the history (also kept as ``trainer.history``)."""
        if self._started:
            raise RuntimeError("This Trainer has already run; create a new Trainer (or Trainer.resume(run_dir)) to train again.")
        if self.run_dir is not None and (self.run_dir / "run.json").exists():
            raise ValueError(
                f"run_dir {str(self.run_dir)!r} already holds a run. Resume it with Trainer.resume({str(self.run_dir)!r}) "
                f"(mariana resume {self.run_dir}) or choose a new run_dir."
            )
        streams = {name: as_mapper(data, name) for name, data in (("train", train), ("valid", valid), ("test", test))}
        if streams["train"] is None:
            raise ValueError("Trainer.start: the train stream is required.")
        self._setup({k: v for k, v in streams.items() if v is not None})
        self._started = True
        if self.seed is not None:
            mariana.seed(self.seed)
        self._streams["train"].sampler.start()
        self._order_rng = np.random.Generator(np.random.PCG64(int(torch.randint(0, 2**62, (1,)))))
        for stop in self.stops:
            stop.begin(self)
        self.net._record("training", phase="start", **self.describe())
        self._start_writer()
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            run = {"format": RUN_FORMAT, "network": self.net.get_config(), "trainer": self._config(),
                   "environment": CK.environment(), "created": time.time()}
            self._submit(self._write_run_files, run, {name: m for name, m in self._streams.items()})
            self._checkpoint("start")
        return self._run(resumed=False)

    @classmethod
    def resume(cls, run_dir: str | Path, train: Any = None, valid: Any = None, test: Any = None, *,
               stops: Sequence[Stop] | None = None, recorders: Sequence[Recorder] | None = None) -> Trainer:
        """Rebuild the network and trainer from ``run_dir``'s latest checkpoint and finish the run.

        The data comes from the run directory's copy, or from ``train``/``valid``/``test``
        when given (checked against the recorded hashes). ``stops``/``recorders``
        replace the recorded ones (needed when those were not registered classes).
        Returns the Trainer; its ``net`` and ``history`` hold the results.
        """
        from mariana.network import Network

        run_dir = Path(run_dir)
        if not (run_dir / "run.json").exists():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a Mariana run directory (no run.json).")
        run = CK.read_json(run_dir / "run.json")
        settings = dict(run["trainer"])
        store = CK.CheckpointStore(run_dir, settings["keep_checkpoints"])
        tensors, state = store.load("latest")
        state = CK.join_tensors(state, tensors)
        threads = _check_environment(state["environment"])
        net = Network.from_config(run["network"])
        net.module.load_state_dict(state["weights"])
        net.load_optimizer_state_dict(state["optimizer"])
        net.log[:] = state["log"]
        recorded_stops, recorded_recorders = settings.pop("stops"), settings.pop("recorders")
        stops = list(stops) if stops is not None else _rebuild(recorded_stops, Stop, "stops")
        if recorders is None:
            recorders = _rebuild(recorded_recorders, Recorder, "recorders")
            _confine_recorder_paths(recorders, run_dir)
        else:
            recorders = list(recorders)
        streams_info = settings.pop("streams")
        trainer = cls(net, run_dir=run_dir, stops=stops, recorders=recorders, **settings)
        given = {"train": train, "valid": valid, "test": test}
        streams = {}
        for name, info in streams_info.items():
            mapper = as_mapper(given[name], name)
            if mapper is None:
                arrays = safetensors.numpy.load_file(str(run_dir / "data" / f"{name}.safetensors"))
                mapper = DatasetMapper.from_arrays(arrays, info)
            elif mapper.content_hash() != info["sha256"]:
                raise ValueError(
                    f"Trainer.resume: the {name} data passed does not match the run's: expected sha256 {info['sha256']}, "
                    f"but received data hashing to {mapper.content_hash()}. Pass the same data, or none to use the run's copy."
                )
            elif serialize(mapper.sampler) != info["sampler"]:
                raise ValueError(
                    f"Trainer.resume: the {name} data passed uses sampler {serialize(mapper.sampler)}, but the run used "
                    f"{info['sampler']}; the rest of the run could not be the same. Pass a mapper with the run's sampler, "
                    f"or no data to use the run's copy."
                )
            streams[name] = mapper
        extra = [name for name, value in given.items() if value is not None and name not in streams_info]
        if extra:
            raise ValueError(f"Trainer.resume: the run had no {extra} stream(s); it had {list(streams_info)}.")
        trainer._setup(streams)
        trainer._load_state(state)
        net._record("training", phase="resume", epoch=trainer.epoch + 1, step=trainer.position_step, run_dir=str(run_dir))
        if trainer.stop_reason is not None:
            return trainer
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            trainer._start_writer()
            trainer._run(resumed=True)
        finally:
            torch.set_num_threads(previous_threads)
        return trainer

    def describe(self) -> dict:
        """The run's settings as JSON (kept in the generation log and file headers)."""
        return {
            "outputs": self.outputs, "batch_size": self.batch_size, "order": self.order, "seed": self.seed,
            "hyperparameters": self.hyperparameters, "notes": self.notes,
            "stops": [_describe(stop) for stop in self.stops],
            "streams": {name: len(mapper) for name, mapper in getattr(self, "_streams", {}).items()},
            "run_dir": None if self.run_dir is None else str(self.run_dir),
        }

    def running_metrics(self) -> dict[str, dict[str, float]]:
        """This epoch's train metrics so far (a host sync: for progress displays, not every step)."""
        return self._train_metrics()

    # -- setup --------------------------------------------------------------------------
    def _setup(self, streams: dict[str, DatasetMapper]) -> None:
        net = self.net
        layers = list(net.layers)
        inputs = list(net._cost_plan(self.outputs, training=False).forward.input_names)
        targets = [name for name in self.outputs if net[name].takes_targets]
        for name, mapper in streams.items():
            mapper.check_against(name, inputs, targets, layers)
        self.classifiers = [name for name in self.outputs if getattr(net[name], "is_classifier", False)]
        for stop in self.stops:
            stop.check(list(streams), {name: name in self.classifiers for name in self.outputs})
        if self.best is None:
            monitor = next((s for s in self.stops if isinstance(s, EarlyStopping)), None)
            self.best = ((monitor.stream, monitor.output, monitor.metric) if monitor is not None
                         else ("valid" if "valid" in streams else "train", self.outputs[0], "loss"))
        stream, output, metric = self.best
        problem = (f"stream {stream!r} is not one of the run's {list(streams)}" if stream not in streams
                   else f"output {output!r} is not one of the trained {list(self.outputs)}" if output not in self.outputs
                   else f"metric {metric!r} is not 'loss' or (for a classifier) 'accuracy'"
                   if metric != "loss" and not (metric == "accuracy" and output in self.classifiers) else None)
        if problem:
            raise ValueError(f"Trainer: best={self.best!r} cannot be followed: {problem}.")
        self._streams = streams
        eval_plan = net._cost_plan(self.outputs, training=False)
        self._prepared = {}
        for name, mapper in streams.items():
            # Checked and converted once: each step then only slices tensors.
            feeds, target_tensors = eval_plan.prepare(dict(mapper))
            class_ids = {}
            for output in self.classifiers:
                ids = target_tensors[output]
                class_ids[output] = ids.argmax(dim=-1) if ids.is_floating_point() else ids
            self._prepared[name] = feeds, target_tensors, class_ids
        self._eval_plan = eval_plan
        if self.order == "simultaneous":
            self._step_plans = [(tuple(self.outputs), net._cost_plan(self.outputs, training=True))]
        else:
            self._step_plans = [((name,), net._cost_plan(name, training=True)) for name in self.outputs]
        self._reset_sums()

    def _reset_sums(self) -> None:
        device = self.net.device
        self._loss_sums = {name: torch.zeros((), device=device) for name in self.outputs}
        self._correct = {name: torch.zeros((), dtype=torch.int64, device=device) for name in self.classifiers}
        self._counts = dict.fromkeys(self.outputs, 0)

    # -- the loop -----------------------------------------------------------------------
    def _run(self, resumed: bool) -> list[dict]:
        self._session_start = time.perf_counter()
        handlers = self._install_signal_handlers()
        hooks = [self.net[name].register_forward_hook(self._capture(name)) for name in self.classifiers]
        self._captured: dict[str, torch.Tensor] = {}
        self._step_recorders = [r for r in self.recorders if type(r).on_step is not Recorder.on_step]
        was_training = self.net.module.training
        self._emergency_written = False
        try:
            for recorder in self.recorders:
                recorder.on_start(self, resumed)
            while self.stop_reason is None:
                if self._pending_end is None:
                    self._train_epoch()
                self._end_epoch()
            self._drain()
            self._check_signal()  # a signal during the last epoch's end: the run is complete, but still exit as asked
            return self.history
        except BaseException as error:
            if not self._emergency_written and self._can_save():
                self._emergency(error)
            raise
        finally:
            for hook in hooks:
                hook.remove()
            self.net.module.train(was_training)
            self._restore_signal_handlers(handlers)
            for recorder in self.recorders:
                recorder.close()
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def _capture(self, name: str):
        """A forward hook keeping a classifier's pre-activation, for accuracies without a second pass."""

        def hook(module: Any, inputs: Any, output: torch.Tensor) -> None:
            self._captured[name] = output.detach()

        return hook

    def _train_epoch(self) -> None:
        epoch = self.epoch + 1
        mapper = self._streams["train"]
        if self._order is None:
            self._check_signal()
            self._order = mapper.sampler.epoch_order(mapper)
            self.position_step = 0
            self._reset_sums()
        feeds, targets, class_ids = (
            {key: value.index_select(0, order) for key, value in part.items()}
            for order in [torch.from_numpy(self._order).to(self.net.device)]
            for part in self._prepared["train"]
        )
        total = len(self._order)
        steps = math.ceil(total / self.batch_size)
        for recorder in self.recorders:
            recorder.on_epoch_start(self, epoch, steps)
        self.net.module.train(True)
        plans = self._step_plans
        random_pick = self.order == "random"
        keep_rng = self._can_save()  # for a checkpoint at the boundary before a step that fails
        batch_size = self.batch_size
        for step in range(self.position_step, steps):
            if self._signal is not None:
                self._check_signal()
            low, high = step * batch_size, min(step * batch_size + batch_size, total)
            batch_feeds = {key: value[low:high] for key, value in feeds.items()}
            batch_targets = {key: value[low:high] for key, value in targets.items()}
            if keep_rng:
                self._rng_before_step = torch.get_rng_state()
            self._in_step = True
            chosen = (plans[int(self._order_rng.integers(len(plans)))],) if random_pick else plans
            for names, plan in chosen:
                losses, cost = plan.losses(batch_feeds, batch_targets, training=True)
                plan.step(cost)
                for name in names:
                    self._loss_sums[name].add_(losses[name].detach(), alpha=high - low)
                    self._counts[name] += high - low
                    if name in self._correct:
                        self._correct[name].add_((self._captured[name].argmax(dim=-1) == class_ids[name][low:high]).sum())
            self._in_step = False
            self.position_step = step + 1
            for recorder in self._step_recorders:
                recorder.on_step(self, step + 1, steps)
        # Until the epoch's end is fully handled, a checkpoint describes the state before it.
        self._pending_end = {"stops": _states(self.stops), "recorders": _states(self.recorders),
                             "history": len(self.history)}

    def _train_metrics(self) -> dict[str, dict[str, float]]:
        metrics = {}
        for name in self.outputs:
            count = max(self._counts[name], 1)
            metrics[name] = {"loss": float(self._loss_sums[name]) / count}
            if name in self._correct:
                metrics[name]["accuracy"] = float(self._correct[name]) / count
        return metrics

    def _evaluate(self, stream: str) -> dict[str, dict[str, float]]:
        feeds, targets, class_ids = self._prepared[stream]
        total = len(self._streams[stream])
        sums = {name: torch.zeros((), device=self.net.device) for name in self.outputs}
        correct = {name: torch.zeros((), dtype=torch.int64, device=self.net.device) for name in self.classifiers}
        self.net.module.train(False)
        with torch.no_grad():
            for low in range(0, total, self.eval_batch_size):
                high = min(low + self.eval_batch_size, total)
                losses, _ = self._eval_plan.losses({key: value[low:high] for key, value in feeds.items()},
                                                   {key: value[low:high] for key, value in targets.items()}, training=False)
                for name in self.outputs:
                    sums[name].add_(losses[name], alpha=high - low)
                for name in self.classifiers:
                    correct[name].add_((self._captured[name].argmax(dim=-1) == class_ids[name][low:high]).sum())
        metrics = {name: {"loss": float(sums[name]) / total} for name in self.outputs}
        for name in self.classifiers:
            metrics[name]["accuracy"] = float(correct[name]) / total
        return metrics

    def _end_epoch(self) -> None:
        entry: dict[str, Any] = {"epoch": self.epoch + 1, "time": self._elapsed(), "train": self._train_metrics()}
        for stream in ("valid", "test"):
            if stream in self._streams:
                entry[stream] = self._evaluate(stream)
        reasons = [(stop, stop.update(self, entry)) for stop in self.stops]
        self.history.append(entry)
        self.net._record("epoch", history=entry)  # so a saved network still has its curves (net.to_html)
        for recorder in self.recorders:
            recorder.on_epoch_end(self, entry)
        fired = [(stop, reason) for stop, reason in reasons if reason is not None]
        self._pending_end = None
        self._order = None
        self.position_step = 0
        improved = self._improved(entry)
        if fired:
            for stop, _ in fired:
                stop.finish(self)
            self.stop_reason = "; ".join(reason for _, reason in fired)
            final = {k: v for k, v in entry.items() if k != "time"}
            self.net._record("training", phase="end", epochs=self.epoch, metrics=final, reason=self.stop_reason)
            if self._store is not None:
                self._checkpoint("final", best=improved)
            for recorder in self.recorders:
                recorder.on_end(self, self.stop_reason)
        elif self._store is not None and self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
            self._checkpoint("periodic", best=improved)

    def _improved(self, entry: dict) -> bool:
        stream, output, metric = self.best
        value = entry.get(stream, {}).get(output, {}).get(metric)
        if value is None or math.isnan(value):
            return False
        better = self._best_value is None or (value > self._best_value if metric == "accuracy" else value < self._best_value)
        if better:
            self._best_value = value
        return better

    def _elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._session_start

    # -- checkpoints ----------------------------------------------------------------------
    def _can_save(self) -> bool:
        return self.save_if_murdered and self._store is not None

    def _state(self, reason: str) -> dict:
        """Everything a resumed run needs, at the current step boundary."""
        pending = self._pending_end
        rng = CK.capture_rng()
        if self._in_step:
            # The step that failed may have drawn random numbers; the boundary is before it.
            rng["torch"] = self._rng_before_step
        return {
            "reason": reason,
            "epoch": self.epoch,
            "step": self.position_step,
            "phase": "epoch_end" if pending is not None else "steps",
            "order": None if self._order is None else torch.from_numpy(self._order.copy()),
            "loss_sums": self._loss_sums, "correct": self._correct, "counts": self._counts,
            "elapsed": self._elapsed() if hasattr(self, "_session_start") else self._elapsed_before,
            "history": self.history[:pending["history"]] if pending is not None else self.history,
            "stop_reason": self.stop_reason,
            "best_value": self._best_value,
            "rng": rng,
            "sampler": self._streams["train"].sampler.state_dict(),
            "order_rng": self._order_rng.bit_generator.state,
            "stops": pending["stops"] if pending is not None else _states(self.stops),
            "recorders": pending["recorders"] if pending is not None else _states(self.recorders),
            "weights": self.net.state_dict(),
            "optimizer": self.net.optimizer_state_dict(),
            "log": json.loads(json.dumps(self.net.log, default=str)),
            "environment": CK.environment(),
        }

    def _load_state(self, state: dict) -> None:
        self.history = state["history"]
        self.position_step = state["step"]
        self._order = None if state["order"] is None else state["order"].numpy().copy()
        self._pending_end = ({"stops": state["stops"], "recorders": state["recorders"], "history": len(self.history)}
                             if state["phase"] == "epoch_end" else None)
        self._loss_sums = {k: v.to(self.net.device) for k, v in state["loss_sums"].items()}
        self._correct = {k: v.to(self.net.device) for k, v in state["correct"].items()}
        self._counts = state["counts"]
        self._elapsed_before = state["elapsed"]
        self.stop_reason = state["stop_reason"]
        self._best_value = state["best_value"]
        self._streams["train"].sampler.load_state_dict(state["sampler"])
        bit_generator = np.random.PCG64()
        bit_generator.state = state["order_rng"]
        self._order_rng = np.random.Generator(bit_generator)
        _load_states(self.stops, state["stops"])
        _load_states(self.recorders, state["recorders"])
        CK.restore_rng(state["rng"])  # last: nothing may draw random numbers after this

    def _checkpoint(self, reason: str, best: bool = False, wait: bool = False) -> None:
        """Snapshot the state now (copies) and write it in the background (or now, with ``wait``)."""
        tensors: dict[str, torch.Tensor] = {}
        document = CK.split_tensors(self._state(reason), tensors, "state")
        self._submit(self._store.save, tensors, document, self.epoch, self.position_step, best)
        if wait:
            self._drain()

    def _start_writer(self) -> None:
        if self.run_dir is not None and self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mariana-checkpoint")

    def _submit(self, function: Any, *args: Any) -> None:
        self._raise_failed_jobs()
        self._jobs.append(self._writer.submit(function, *args))

    def _raise_failed_jobs(self) -> None:
        pending = []
        for job in self._jobs:
            if job.done():
                job.result()
            else:
                pending.append(job)
        self._jobs = pending

    def _drain(self) -> None:
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()

    def _write_run_files(self, run: dict, streams: dict[str, DatasetMapper]) -> None:
        data = self.run_dir / "data"
        data.mkdir(exist_ok=True)
        for name, mapper in streams.items():
            CK.write_bytes(data / f"{name}.safetensors", safetensors.numpy.save(mapper.arrays()))
        run["trainer"]["streams"] = {name: mapper.describe() for name, mapper in streams.items()}
        CK.write_json(self.run_dir / "run.json", run)

    def _config(self) -> dict:
        return {
            "outputs": self.outputs, "batch_size": self.batch_size, "order": self.order, "seed": self.seed,
            "hyperparameters": self.hyperparameters, "notes": self.notes, "save_if_murdered": self.save_if_murdered,
            "eval_batch_size": self.eval_batch_size, "checkpoint_every": self.checkpoint_every,
            "keep_checkpoints": self._store.keep, "best": list(self.best),
            "stops": [_describe(stop) for stop in self.stops], "recorders": [_describe(r) for r in self.recorders],
        }

    # -- interruptions --------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict:
        if not self._can_save() or threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            self._emergency_written = True  # mid-step state is not consistent: keep the last checkpoint instead
            raise KeyboardInterrupt(f"Interrupted twice: stopped at once without a new checkpoint; `mariana resume {self.run_dir}` "
                                    f"continues from the last one.")
        # Only a flag: the checkpoint is written at the next step boundary, where the state is consistent.
        self._signal = signal.Signals(signum).name

    def _check_signal(self) -> None:
        if self._signal is None:
            return
        name = self._signal
        message = self._emergency(name)
        if name == "SIGTERM":
            print(message, file=sys.stderr)  # SystemExit shows no message of its own
            raise SystemExit(143)
        raise KeyboardInterrupt(message)

    def _emergency(self, cause: BaseException | str) -> str:
        self._emergency_written = True
        label = cause if isinstance(cause, str) else type(cause).__name__
        where = f"epoch {self.epoch + 1}, after step {self.position_step}" if self._pending_end is None else f"end of epoch {self.epoch + 1}"
        try:
            self._drain()
        except Exception as error:  # a failed periodic write must not prevent the emergency one
            print(f"mariana: an earlier checkpoint write failed ({error!r}); writing the emergency checkpoint anyway.", file=sys.stderr)
        if self._writer is None:
            self._start_writer()
        self._checkpoint(f"emergency: {label}", wait=True)
        message = (f"mariana: training stopped by {label} at {where}; checkpoint saved in {self.run_dir}. "
                   f"Resume with `mariana resume {self.run_dir}` or Trainer.resume({str(self.run_dir)!r}).")
        if isinstance(cause, BaseException):
            if hasattr(cause, "add_note"):  # Python >= 3.11: shown with the traceback
                cause.add_note(message)
            else:
                print(message, file=sys.stderr)
        return message


def _states(objects: list) -> list[dict]:
    return [{"class": type(obj).__qualname__, "state": obj.state_dict()} for obj in objects]


def _load_states(objects: list, states: list[dict]) -> None:
    """Give each stop/recorder its saved state; one passed to ``resume`` in place of another starts fresh."""
    for obj, saved in zip(objects, states):
        if saved["class"] == type(obj).__qualname__:
            obj.load_state_dict(saved["state"])


def _describe(obj: Any) -> dict:
    try:
        return serialize(obj)
    except ValueError:
        return {"unregistered": f"{type(obj).__module__}.{type(obj).__qualname__}"}


def _confine_recorder_paths(recorders: list, run_dir: Path) -> None:
    """Recorders rebuilt from run.json may only write inside the run directory: a run directory may come from anyone."""
    for recorder in recorders:
        for attribute in ("path", "log_dir"):
            value = getattr(recorder, attribute, None)
            if value is None:
                continue
            path = Path(value)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(
                    f"Trainer.resume: run.json names a {type(recorder).__name__} writing to {value!r}, outside the run directory "
                    f"{str(run_dir)!r}; resume refuses it. Pass recorders=[...] to Trainer.resume to choose where to write."
                )


def _rebuild(entries: list[dict], base: type, label: str) -> list:
    unregistered = [entry["unregistered"] for entry in entries if "unregistered" in entry]
    if unregistered:
        raise ValueError(
            f"Trainer.resume: the run used {label} {unregistered} whose classes are not registered, so they cannot be rebuilt. "
            f"Decorate them with @mariana.register (and import them first), or pass {label}=[...] to Trainer.resume."
        )
    return [deserialize(entry, base) for entry in entries]


def _check_environment(recorded: dict) -> int:
    """Warn when resuming elsewhere; returns the thread count to use (the recorded one)."""
    current = CK.environment()
    different = [f"{key}: recorded {recorded[key]!r}, now {current[key]!r}" for key in ("machine", "processor", "node", "torch", "numpy")
                 if recorded.get(key) != current[key]]
    if different:
        warnings.warn("Resuming in a different environment, so the result will not be bit-identical to an uninterrupted run ("
                      + "; ".join(different) + ").", ResumeWarning, stacklevel=3)
    return int(recorded["threads"])


def fit(network: Any, train: Any, valid: Any = None, epochs: int = 1, batch_size: int = 64, *,
        test: Any = None, outputs: str | Sequence[str] | None = None, stops: Sequence[Stop] = (), **kwargs: Any) -> list[dict]:
    """``net.fit(train, valid=..., epochs=..., batch_size=...)``: a Trainer with EpochWall(epochs) and a NaNGuard.

    ``train``/``valid``/``test`` are DatasetMappers or dicts of arrays; other
    keywords go to :class:`Trainer`. Returns the history.
    """
    all_stops = [EpochWall(epochs), NaNGuard(), *stops]
    trainer = Trainer(network, outputs=outputs, batch_size=batch_size, stops=all_stops, **kwargs)
    return trainer.start(train, valid=valid, test=test)
