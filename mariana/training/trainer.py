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

import contextlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mariana.checks import int_at_least, one_of, seed_or_none
from mariana.execution import CostPlan, TrainingPlan
from mariana.network import Network
from mariana.seeding import seed as seed_everything
from mariana.training.callbacks.hooks import BestValue, best_monitor, checked_best, checked_list, states
from mariana.training.data.mappers import DatasetMapper, as_mapper
from mariana.training.data.streams import FileStream, PreparedStream, evaluate
from mariana.training.history import History
from mariana.training.loop.accumulation import checked_accumulate, group_of
from mariana.training.loop.averaging import WeightAverage, check_decay
from mariana.training.loop.hardware import Hardware
from mariana.training.loop.interrupts import Interrupts, attach_message
from mariana.training.loop.metrics import EpochSums
from mariana.training.recorders import ProgressBar, Recorder
from mariana.training.run.progress import ResumableState
from mariana.training.run.resume import read_continuation, read_resume_point, recorded_device, restore_network, torch_threads
from mariana.training.stops import Stop
from mariana.training.storage import checkpoint as CK
from mariana.training.storage.run_directory import RUN_FORMAT, RunDirectory, describe_object
from mariana.training.strategies.ddp import Distributed, rank_seed

ORDERS = ("simultaneous", "sequential", "random")
STREAMS = ("train", "valid", "test")


class Trainer(ResumableState):
    """Trains ``outputs`` of ``net``; see the module docstring.

    ``order`` (several outputs): "simultaneous" steps on the sum of their
    costs, "sequential" takes one step per output on every batch, "random"
    picks one output per batch. ``seed`` (optional) seeds Python, NumPy,
    torch and the samplers when the run starts. ``save_if_murdered`` needs a
    ``run_dir``. ``checkpoint_every`` epochs a checkpoint is written (0:
    only the first, emergency and final ones); the last ``keep_checkpoints``
    and the best (by ``best=(stream, output, metric)``, default: the first
    EarlyStopping's, else valid then train loss of the first output) are kept.

    ``accumulate=k``: one optimizer step every k batches (the step of a batch k
    times as large). ``ema=decay``: a moving average of the weights evaluates
    the valid/test streams and becomes the network's weights at the end.
    ``device``, ``precision`` and ``compile``: see :mod:`mariana.training.loop.hardware`.
    ``resume="auto"``: when ``run_dir`` holds an unfinished run of the same
    network, settings and data, ``start`` continues it (so rerunning a killed
    job's command carries on); ``False`` (default) refuses a used run_dir.
    Under torchrun the run is data-parallel (``batch_size`` stays global; only
    rank 0 writes); ``trainer.distributed`` holds ``rank``, ``world_size`` and
    ``is_writer``: see :mod:`mariana.training.strategies.ddp`.
    """

    def __init__(self, net: Network, outputs: str | Sequence[str] | None = None, batch_size: int = 64, *,
                 stops: Sequence[Stop] | None = None, recorders: Sequence[Recorder] | None = None,
                 run_dir: str | Path | None = None, save_if_murdered: bool = True, seed: int | None = None,
                 order: str = "simultaneous", hyperparameters: dict | None = None, notes: str | None = None,
                 eval_batch_size: int = 1024, checkpoint_every: int = 1, keep_checkpoints: int = 3,
                 best: Sequence[str] | None = None, accumulate: int = 1, ema: float | None = None, device: Any = "auto",
                 precision: Any = "32", compile: bool | str = False, resume: Any = False) -> None:
        if not isinstance(net, Network):
            raise TypeError(f"Trainer expects a mariana Network first, but received {type(net).__name__}.")
        self.net = net
        self.outputs = list(net.output_names(outputs))
        self.batch_size = int_at_least(batch_size, 1, "Trainer: batch_size")
        self.eval_batch_size = int_at_least(eval_batch_size, 1, "Trainer: eval_batch_size")
        self.checkpoint_every = int_at_least(checkpoint_every, 0, "Trainer: checkpoint_every (epochs)")
        self.order, self.seed = one_of(order, ORDERS, "Trainer: order"), seed_or_none(seed, "Trainer: seed")
        self.resume_mode = one_of(resume, (False, "auto"), "Trainer: resume")
        self.stops = checked_list(stops, Stop, "stops", "mariana.training.stops",
                                  empty="Trainer: give at least one stop, e.g. stops=[stops.EpochWall(10)], so the run can end.")
        self.recorders = checked_list(recorders if recorders is not None else [ProgressBar()], Recorder, "recorders",
                                       "mariana.training.recorders")
        for recorder in self.recorders:
            recorder.check()  # a missing package is found before run.json, the data copy and checkpoints are written
        self.hyperparameters = dict(hyperparameters or {})
        self.notes = notes
        self.save_if_murdered = bool(save_if_murdered)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.run_directory = RunDirectory(self.run_dir, keep_checkpoints) if self.run_dir is not None else None
        self.best = checked_best(best)
        self.accumulate = checked_accumulate(accumulate, order, self.outputs)
        self.ema = check_decay(ema)
        self.average: WeightAverage | None = None  # made when the network is in place (start, resume)
        self.distributed = Distributed.from_environment(device)  # under torchrun: joins the process group
        self.distributed.check_batch_size(self.batch_size)
        self.hardware = Hardware(net, self.distributed.device(device), precision, compile)  # an unknown or missing device fails here
        self.device, self.precision, self.compile = device, self.hardware.precision.name, compile
        self.classifiers = [name for name in self.outputs if getattr(net[name], "is_classifier", False)]
        self.interrupts = Interrupts(enabled=self._can_save(), run_dir=self.run_dir)
        # The run's progress: what a checkpoint records.
        self.history = History()
        self.stop_reason: str | None = None
        self.position_step = 0
        self.epoch_order: np.ndarray | None = None  #: this epoch's sample order (None between epochs)
        self.sums = EpochSums(self.outputs, self.classifiers, net.device)
        self._order_rng = np.random.Generator(np.random.PCG64(0))
        self._elapsed_before = 0.0
        self._session_start: float | None = None
        self._best_value = BestValue(("train", self.outputs[0], "loss"))  # the monitored metric is known at start
        self._pending_end: dict | None = None
        # Set up by start/resume.
        self._started = False
        self._streams: dict[str, DatasetMapper] = {}
        self._prepared: dict[str, PreparedStream | FileStream] = {}
        self._eval_plan: CostPlan | None = None
        self._step_plans: list[tuple[tuple[str, ...], TrainingPlan]] = []
        self._recorders: list[Recorder] = []  # the ones that run: all on rank 0, none on the other ranks
        self._step_recorders: list[Recorder] = []
        self._in_step = False
        self._rng_before_step: tuple[torch.Tensor, list | None] | None = None  # CPU state, and CUDA's on a GPU
        self._emergency_written = False

    # -- public API ---------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return len(self.history)

    def start(self, train: Any, valid: Any = None, test: Any = None) -> History:
        """Train until a stop fires; returns the history (also kept as ``trainer.history``)."""
        if self._started:
            raise RuntimeError("This Trainer has already run; create a new Trainer (or Trainer.resume(run_dir)) to train again.")
        # Killed before a checkpoint: reused. Rank 0 decides for every process.
        continuing = self.distributed.broadcast(self.run_directory is not None and self.run_directory.holds_run())
        if continuing and self.resume_mode != "auto":
            raise ValueError(
                f"run_dir {str(self.run_dir)!r} already holds a run. Resume it with Trainer.resume({str(self.run_dir)!r}) "
                f"(mariana resume {self.run_dir}), pass resume='auto' to continue it, or choose a new run_dir."
            )
        streams = {name: as_mapper(data, name) for name, data in (("train", train), ("valid", valid), ("test", test))}
        if streams["train"] is None:
            raise ValueError("Trainer.start: the train stream is required.")
        self._setup({k: v for k, v in streams.items() if v is not None})
        self._started = True
        if continuing:
            return self._continue()
        seed = self.seed
        if self.distributed.active:  # every rank visits the same orders
            seed = self.distributed.broadcast(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
        if seed is not None:
            seed_everything(seed)
        self._streams["train"].sampler.start()
        self._order_rng = np.random.Generator(np.random.PCG64(int(torch.randint(0, 2**62, (1,)))))
        if self.distributed.active:
            torch.manual_seed(rank_seed(seed, self.distributed.rank))  # dropout draws differ across ranks
        for stop in self.stops:
            stop.begin(self)
        self.net.record("training", phase="start", **self.describe())
        if self.run_directory is not None:
            if self.distributed.is_writer:
                run = {"format": RUN_FORMAT, "network": self.net.get_config(), "trainer": self._config(),
                       "environment": CK.environment(), "created": time.time()}
                self.run_directory.write_run(run, self._streams)
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
        given = {"train": train, "valid": valid, "test": test}
        distributed = Distributed.from_environment(recorded_device(run_dir))
        point = distributed.in_turn(lambda first: read_resume_point(run_dir, given, stops, recorders, first))
        trainer = cls(point.net, run_dir=run_dir, **point.settings)
        trainer._setup(point.streams)
        trainer._started = True
        trainer._carry_on(point.state, point.threads)
        return trainer

    def _continue(self) -> History:
        """resume="auto": carry on the unfinished run in run_dir (or return a finished one's history)."""
        current = {"network": self.net.get_config(), "trainer": self._config()}
        state, threads = self.distributed.in_turn(lambda first: read_continuation(self.run_directory, current, self._streams, first))
        restore_network(self.net, state, self.run_directory)
        return self._carry_on(state, threads)

    def _carry_on(self, state: dict, threads: int) -> History:
        """Continue from a checkpoint's ``state`` with the thread count the run used (a finished run: nothing to do)."""
        try:
            self.load_state_dict(state)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as error:
            raise ValueError(f"{str(self.run_dir)!r}: its checkpoint cannot be resumed ({type(error).__name__}: {error}); "
                             f"the file was damaged or forged. Restore it from a copy, or start a new run.") from None
        self.net.record("training", phase="resume", epoch=self.epoch + 1, step=self.position_step, run_dir=str(self.run_dir))
        if self.stop_reason is None:
            with torch_threads(threads):
                self._run(resumed=True)
        return self.history

    def describe(self) -> dict:
        """The run's settings as JSON (kept in the generation log and file headers)."""
        return {
            "outputs": self.outputs, "batch_size": self.batch_size, "accumulate": self.accumulate, "order": self.order,
            "seed": self.seed, "hyperparameters": self.hyperparameters, "notes": self.notes,
            "stops": [describe_object(stop) for stop in self.stops],
            "streams": {name: len(mapper) for name, mapper in self._streams.items()},
            "run_dir": None if self.run_dir is None else str(self.run_dir),
        }

    def running_metrics(self) -> dict[str, dict[str, float]]:
        """This epoch's train metrics so far (a host sync: for progress displays, not every step)."""
        return self.sums.means()

    # -- setup --------------------------------------------------------------------------
    def _setup(self, streams: dict[str, DatasetMapper]) -> None:
        net = self.net
        self.hardware.place(net)
        self.sums = EpochSums(self.outputs, self.classifiers, net.device)
        self.average = WeightAverage(net.module, self.ema) if self.ema is not None else None
        eval_plan = net.cost_plan(self.outputs)
        inputs = list(eval_plan.forward.input_names)
        targets = [name for name in self.outputs if net[name].takes_targets]
        for name, mapper in streams.items():
            mapper.check_against(name, inputs, targets, list(net.layers))
            unknown = [key for key in mapper.weights if key not in self.outputs]
            if unknown:
                raise ValueError(f"DatasetMapper {name!r}: weights name {unknown}, which are not trained outputs {self.outputs}.")
        for stop in self.stops:
            stop.check(list(streams), {name: name in self.classifiers for name in self.outputs})
        self.best = best_monitor(self.best, self.stops, list(streams), self.outputs, self.classifiers)
        self._best_value = BestValue(self.best)
        self._streams = streams
        self._eval_plan = eval_plan
        self._prepared = {name: self.hardware.prepare(eval_plan, mapper, self.classifiers) for name, mapper in streams.items()}
        if self.order == "simultaneous":
            self._step_plans = [(tuple(self.outputs), net.training_plan(self.outputs))]
        else:
            self._step_plans = [((name,), net.training_plan(name)) for name in self.outputs]
        if self.distributed.active:
            self.distributed.wrap(net.module, self.hardware.device, [plan for _, plan in self._step_plans])
        for _, plan in self._step_plans:
            for scenario in plan.scenari():
                if scenario.schedule is not None:
                    scenario.schedule.check(list(streams))

    # -- the loop -----------------------------------------------------------------------
    def _run(self, resumed: bool) -> History:
        self._session_start = time.perf_counter()
        self.interrupts.install()
        self._recorders = self.recorders if self.distributed.is_writer else []
        self._step_recorders = [r for r in self._recorders if type(r).on_step is not Recorder.on_step]
        was_training = self.net.module.training
        self._emergency_written = False
        try:
            for recorder in self._recorders:
                recorder.on_start(self, resumed)
            while self.stop_reason is None:
                if self._pending_end is None:
                    self._train_epoch()
                self._end_epoch()
            if self.run_directory is not None:
                self.run_directory.drain()
            if self._interrupted():  # a signal during the last epoch's end: still exit as asked
                self.interrupts.raise_pending(self._emergency)
            return self.history
        except BaseException as error:
            # Under DDP an error is not a step boundary all ranks agree on: the last checkpoint is where a rerun starts.
            if not (self._emergency_written or self.interrupts.stopped_at_once or self.distributed.active) and self._can_save():
                attach_message(error, self._emergency(type(error).__name__))
            if self.distributed.active and not self._emergency_written:  # the others learn it as its connections close
                self.distributed.failed()
            raise
        finally:
            self.net.module.train(was_training)
            self.interrupts.restore()
            for recorder in self._recorders:
                recorder.close()
            for stream in self._prepared.values():
                if isinstance(stream, FileStream):
                    stream.close()
            if self.run_directory is not None:
                self.run_directory.close()

    def _train_epoch(self) -> None:
        mapper = self._streams["train"]
        if self.epoch_order is None:
            if self._interrupted():
                self.interrupts.raise_pending(self._emergency)
            self.epoch_order = mapper.sampler.epoch_order(mapper)
            self.position_step = 0
            self.sums = EpochSums(self.outputs, self.classifiers, self.net.device)
        stream = self._prepared["train"]
        rows = self.hardware.on_device(stream, stream.in_order(torch.from_numpy(self.epoch_order).to(stream.device)))
        total = len(self.epoch_order)
        steps = math.ceil(total / self.batch_size)
        for recorder in self._recorders:
            recorder.on_epoch_start(self, self.epoch + 1, steps)
        self.net.module.train(True)
        keep_rng = self._can_save()  # for a checkpoint at the boundary before a step that fails
        ask_peers = self.distributed.active and self.interrupts.enabled  # else only this process's signals count
        interrupts, size = self.interrupts, self.batch_size
        for step in range(self.position_step, steps):
            if (ask_peers or interrupts.pending is not None) and self._interrupted(at_once=False):
                interrupts.raise_pending(self._emergency)
            if keep_rng:
                self._rng_before_step = (torch.get_rng_state(),
                                         torch.cuda.get_rng_state_all() if self.hardware.device.type == "cuda" else None)
            self._in_step = True
            low, high = self.distributed.share(step * size, min((step + 1) * size, total))
            # A rank whose share of a last, short batch is empty still joins the gradient average, with weight 0.
            self._step(rows(low, high) if high > low else rows(0, 1), step, steps, total, high - low)
            self._in_step = False
            self.position_step = step + 1
            for recorder in self._step_recorders:
                recorder.on_step(self, step + 1, steps)
        # Until the epoch's end is fully handled, a checkpoint describes the state before it.
        self._pending_end = {"stops": states(self.stops), "recorders": states(self.recorders), "history": len(self.history),
                             "log": len(self.net.log)}

    def _step(self, batch: PreparedStream, step: int, steps: int, total: int, rows: int) -> None:
        """One batch (on the device): an update per plan ("random" order: one plan drawn), metrics added on the device.

        ``rows``: this process's rows of the batch; 0 for a rank whose share of a last, short batch is
        empty (``batch`` is then one row that weighs nothing and counts in no metric).

        With ``accumulate=k`` each batch adds its share of its group's rows times its gradient and
        the optimizers step on the group's last batch (:mod:`mariana.training.loop.accumulation`; with
        class weights, each batch's share is by rows, not by weight). Called every step: kept lean.
        """
        plans = self._step_plans
        if self.order == "random":
            plans = [plans[int(self._order_rng.integers(len(plans)))]]
        batch_rows = min(total, (step + 1) * self.batch_size) - step * self.batch_size  # all ranks' rows
        stepped, group_rows = (True, batch_rows) if self.accumulate == 1 else group_of(
            step, steps, total, self.batch_size, self.accumulate)
        counted = rows > 0
        share = self.distributed.world_size * rows / group_rows  # DDP averages over ranks
        for names, plan in plans:
            if self.distributed.active:
                result = self.distributed.forward_backward(self.hardware, plan, batch, stepped, share, batch_rows, counted)
            else:
                result = self.hardware.evaluate(plan, batch)
                self.hardware.backward(plan, result, share)
            if stepped:
                self.hardware.apply(plan)
            for name in names if counted else ():
                self.sums.add(name, result.losses[name], rows, result.logits[name], batch.class_ids.get(name),
                              result.counts.get(name))
        if stepped and self.average is not None:
            self.average.update()

    def _evaluate(self, stream: str) -> dict[str, dict[str, float]]:
        self.net.module.train(False)
        with self.average.swapped_in() if self.average is not None else contextlib.nullcontext():
            prepared = self._prepared[stream]
            return evaluate(self._eval_plan, prepared, self.outputs, self.classifiers, self.eval_batch_size,
                            run=lambda plan, batch: self.hardware.evaluate(plan, self.hardware.batch(batch)),
                            span=self.distributed.share(0, len(prepared)), summed=self.distributed.summed)

    def _end_epoch(self) -> None:
        self.distributed.share_buffers()  # every rank evaluates (and keeps) rank 0's running statistics
        entry: dict[str, Any] = {"epoch": self.epoch + 1, "time": self._elapsed(),
                                 "train": self.distributed.summed(self.sums).means()}
        for stream in ("valid", "test"):
            if stream in self._streams:
                entry[stream] = self._evaluate(stream)
        entry = self.distributed.broadcast(entry)  # rank 0's clock: every rank's stops decide alike
        with self.average.swapped_in() if self.average is not None else contextlib.nullcontext():
            reasons = [(stop, stop.update(self, entry)) for stop in self.stops]  # a stop keeps the weights that were evaluated
        self.history.append(entry)
        self.net.record("epoch", history=entry)  # so a saved network still has its curves (net.to_html)
        for recorder in self._recorders:
            recorder.on_epoch_end(self, entry)
        fired = [(stop, reason) for stop, reason in reasons if reason is not None]
        self._pending_end = None
        self.epoch_order = None
        self.position_step = 0
        for scenario in {id(s): s for _, plan in self._step_plans for s in plan.scenari()}.values():
            if scenario.schedule is not None:
                scenario.schedule.observe(entry)  # ReduceLROnPlateau; after the epoch end is committed, so a resume never repeats it
        improved = self._best_value.improved(entry)
        if fired:
            self._finish(entry, fired, improved)
        elif self.run_directory is not None and self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
            self._checkpoint("periodic", best=improved)

    def _finish(self, entry: dict, fired: list[tuple[Stop, str]], improved: bool) -> None:
        if self.average is not None:
            self.average.copy_to_model()  # the model keeps the averaged weights (a stop that restores weights wins)
        for stop, _ in fired:
            stop.finish(self)
        self.stop_reason = self.history.stop_reason = "; ".join(reason for _, reason in fired)
        final = {k: v for k, v in entry.items() if k != "time"}
        self.net.record("training", phase="end", epochs=self.epoch, metrics=final, reason=self.stop_reason)
        if self.run_directory is not None:
            self._checkpoint("final", best=improved)
        for recorder in self._recorders:
            recorder.on_end(self, self.stop_reason)

    def _elapsed(self) -> float:
        if self._session_start is None:
            return self._elapsed_before
        return self._elapsed_before + time.perf_counter() - self._session_start

