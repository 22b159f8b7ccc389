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
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mariana.execution import CostPlan, TrainingPlan
from mariana.network import Network
from mariana.seeding import seed as seed_everything
from mariana.training.callbacks.best import BestValue, best_monitor
from mariana.training.callbacks.hooks import checked_list, load_states, states
from mariana.training.data.mappers import DatasetMapper, as_mapper
from mariana.training.data.streams import FileStream, PreparedStream, evaluate
from mariana.training.history import History
from mariana.training.loop.accumulation import group_of
from mariana.training.loop.averaging import WeightAverage
from mariana.training.loop.hardware import Hardware
from mariana.training.loop.interrupts import Interrupts, attach_message
from mariana.training.loop.metrics import EpochSums
from mariana.training.recorders import Recorder
from mariana.training.run.progress import Progress, check_state
from mariana.training.run.reproducibility import capture_rng, environment, restore_rng
from mariana.training.run.resume import read_continuation, read_resume_point, recorded_device, restore_network, torch_threads
from mariana.training.run.settings import RunSettings
from mariana.training.stops import EarlyStopping, Stop
from mariana.training.storage.run_directory import RUN_FORMAT, RunDirectory
from mariana.training.strategies import Strategy, strategy_for


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

    ``accumulate=k``: one optimizer step every k batches (the step of a batch k
    times as large). ``ema=decay``: a moving average of the weights evaluates
    the valid/test streams and becomes the network's weights at the end.
    ``device``, ``precision`` and ``compile``: see ``mariana.training.loop.hardware``.
    ``resume="auto"``: when ``run_dir`` holds an unfinished run of the same
    network, settings and data, ``start`` continues it (so rerunning a killed
    job's command carries on); ``False`` (default) refuses a used run_dir.
    ``strategy``: how processes share the work: "auto" (data-parallel under
    torchrun, one process otherwise), "single", "ddp" or a
    ``mariana.training.strategies.Strategy``. Under torchrun ``batch_size``
    stays global and only rank 0 writes; ``trainer.distributed`` (the
    strategy) holds ``rank``, ``world_size`` and ``is_writer``.

    The settings are checked and frozen in ``trainer.settings``; where the run
    stands is ``trainer.progress``.
    """

    def __init__(self, net: Network, outputs: str | Sequence[str] | None = None, batch_size: int = 64, *,
                 stops: Sequence[Stop] | None = None, recorders: Sequence[Recorder] | None = None,
                 run_dir: str | Path | None = None, save_if_murdered: bool = True, seed: int | None = None,
                 order: str = "simultaneous", hyperparameters: dict | None = None, notes: str | None = None,
                 eval_batch_size: int = 1024, checkpoint_every: int = 1, keep_checkpoints: int = 3,
                 best: Sequence[str] | None = None, accumulate: int = 1, ema: float | None = None, device: Any = "auto",
                 precision: Any = "32", compile: bool | str = False, resume: Any = False, strategy: Any = "auto") -> None:
        if not isinstance(net, Network):
            raise TypeError(f"Trainer expects a mariana Network first, but received {type(net).__name__}.")
        arguments = {key: value for key, value in locals().items() if key not in ("self", "net")}  # the signature's keywords
        self.net = net
        self.strategy: Strategy = strategy_for(strategy)
        self.settings = RunSettings.checked(net, **{**arguments, "strategy": self.strategy.name if isinstance(strategy, Strategy)
                                                    else strategy})
        self.strategy.check_batch_size(self.settings.batch_size)
        self.hardware = Hardware(net, self.strategy.device(device), precision, compile)  # an unknown or missing device fails here
        self.run_directory = RunDirectory(self.run_dir, keep_checkpoints) if self.run_dir is not None else None
        self.classifiers = [name for name in self.outputs if getattr(net[name], "is_classifier", False)]
        self.interrupts = Interrupts(enabled=self.can_save, run_dir=self.run_dir)
        self.progress = Progress(self.outputs, self.classifiers, net.device)
        self.best: tuple[str, str, str] | None = self.settings.best  #: the monitor of the best checkpoint (resolved at start)
        self.average: WeightAverage | None = None  # made when the network is in place (start, resume)
        self.streams: dict[str, DatasetMapper] = {}  #: set up by start/resume
        self._prepared: dict[str, PreparedStream | FileStream] = {}
        self._eval_plan: CostPlan | None = None
        self._step_plans: list[tuple[tuple[str, ...], TrainingPlan]] = []
        self._started = False
        self._recorders: list[Recorder] = []  # the ones that run here: file writers on rank 0 only
        self._step_recorders: list[Recorder] = []
        self._step_stops: list[tuple[int, Stop]] = []
        self._in_step = False
        self._rng_before_step: tuple[torch.Tensor, list | None] | None = None  # CPU state, and CUDA's on a GPU
        self._emergency_written = False

    # -- the settings and the progress, as users read them --------------------------------
    outputs = property(lambda self: list(self.settings.outputs))
    batch_size = property(lambda self: self.settings.batch_size)
    order = property(lambda self: self.settings.order)
    run_dir = property(lambda self: self.settings.run_dir)
    stops = property(lambda self: list(self.settings.stops))
    history = property(lambda self: self.progress.history, doc="The run's history so far.")
    stop_reason = property(lambda self: self.progress.stop_reason, doc="Why the run stopped (None while it runs).")
    epoch = property(lambda self: self.progress.epoch, doc="Completed epochs.")
    distributed = property(lambda self: self.strategy, doc="The strategy: ``rank``, ``world_size``, ``is_writer``.")

    @property
    def recorders(self) -> list[Recorder]:
        return list(self.settings.recorders)

    @recorders.setter
    def recorders(self, recorders: Sequence[Recorder]) -> None:
        checked = checked_list(recorders, Recorder, "recorders", "mariana.training.recorders")
        self.settings = dataclasses.replace(self.settings, recorders=tuple(checked))

    @property
    def can_save(self) -> bool:
        """Whether an interrupted run writes an emergency checkpoint (``save_if_murdered`` with a ``run_dir``)."""
        return self.settings.save_if_murdered and self.run_directory is not None

    # -- public API ---------------------------------------------------------------------
    def start(self, train: Any, valid: Any = None, test: Any = None) -> History:
        """Train until a stop fires; returns the history (also kept as ``trainer.history``)."""
        if self._started:
            raise RuntimeError("This Trainer has already run; create a new Trainer (or Trainer.resume(run_dir)) to train again.")
        streams = {name: as_mapper(data, name) for name, data in (("train", train), ("valid", valid), ("test", test))}
        if streams["train"] is None:
            raise ValueError("Trainer.start: the train stream is required.")
        self.strategy.setup(self.settings.device)  # under torchrun: joins the process group
        # Killed before a checkpoint: reused. Rank 0 decides for every process.
        continuing = self.strategy.broadcast(self.run_directory is not None and self.run_directory.holds_run())
        if continuing and self.settings.resume != "auto":
            raise ValueError(
                f"run_dir {str(self.run_dir)!r} already holds a run. Resume it with Trainer.resume({str(self.run_dir)!r}) "
                f"(mariana resume {self.run_dir}), pass resume='auto' to continue it, or choose a new run_dir."
            )
        self._setup({k: v for k, v in streams.items() if v is not None})
        self._started = True
        if continuing:
            return self._continue()
        seed = self.strategy.agree_seed(self.settings.seed)  # every process visits the same orders
        if seed is not None:
            seed_everything(seed)
        self.streams["train"].sampler.start()
        self.progress.order_rng = np.random.Generator(np.random.PCG64(int(torch.randint(0, 2**62, (1,)))))
        self.strategy.seed_process(seed)
        for stop in self.stops:
            stop.begin(self)
        self.net.record("training", phase="start", **self.describe())
        if self.run_directory is not None:
            if self.strategy.is_writer:
                run = {"format": RUN_FORMAT, "network": self.net.get_config(), "trainer": self.settings.config(self.best),
                       "environment": environment(), "created": time.time()}
                self.run_directory.write_run(run, self.streams)
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
        strategy = strategy_for("auto")
        strategy.setup(recorded_device(run_dir))
        point = strategy.in_turn(lambda first: read_resume_point(run_dir, given, stops, recorders, first))
        trainer = cls(point.net, **{**point.settings, "run_dir": run_dir, "strategy": strategy})
        trainer._setup(point.streams)
        trainer._started = True
        trainer._carry_on(point.state, point.threads)
        return trainer

    def _continue(self) -> History:
        """resume="auto": carry on the unfinished run in run_dir (or return a finished one's history)."""
        current = {"network": self.net.get_config(), "trainer": self.settings.config(self.best)}
        state, threads = self.strategy.in_turn(lambda first: read_continuation(self.run_directory, current, self.streams, first))
        restore_network(self.net, state, self.run_directory)
        return self._carry_on(state, threads)

    def _carry_on(self, state: dict, threads: int) -> History:
        """Continue from a checkpoint's ``state`` with the thread count the run used (a finished run: nothing to do)."""
        try:
            self.load_state_dict(state)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as error:
            raise ValueError(f"{str(self.run_dir)!r}: its checkpoint cannot be resumed ({type(error).__name__}: {error}); "
                             f"the file was damaged or forged. Restore it from a copy, or start a new run.") from None
        self.net.record("training", phase="resume", epoch=self.epoch + 1, step=self.progress.step, run_dir=str(self.run_dir))
        if self.stop_reason is None:
            with torch_threads(threads):
                self._run(resumed=True)
        return self.history

    def describe(self) -> dict:
        """The run's settings as JSON (kept in the generation log and file headers)."""
        return self.settings.describe({name: len(mapper) for name, mapper in self.streams.items()})

    def running_metrics(self) -> dict[str, dict[str, float]]:
        """This epoch's train metrics so far (a host sync: for progress displays, not every step)."""
        return self.progress.sums.means()

    # -- the state a checkpoint holds ------------------------------------------------------
    def state_dict(self, reason: str = "") -> dict:
        """Everything a resumed run needs, at the current step boundary (tensors are not copied)."""
        pending = self.progress.pending_end
        rng = capture_rng()
        if self._in_step:  # the step that failed may have drawn random numbers; the boundary is before it
            rng["torch"], cuda = self._rng_before_step
            if cuda is not None:
                rng["cuda"] = list(cuda)
        log = self.net.log[:pending["log"]] if pending is not None else self.net.log
        return {
            "reason": reason, **self.progress.state_dict(), "rng": rng, "sampler": self.streams["train"].sampler.state_dict(),
            "stops": pending["stops"] if pending is not None else states(self.stops),
            "recorders": pending["recorders"] if pending is not None else states(self.recorders),
            "weights": self.net.state_dict(), "optimizer": self.net.optimizer_state_dict(),
            "ema": None if self.average is None else self.average.state_dict(), "hardware": self.hardware.state_dict(),
            "gradients": {name: p.grad for name, p in self.net.module.named_parameters() if p.grad is not None},
            "log": json.loads(json.dumps(log, default=str)), "environment": environment(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s output (after the streams are set up); restores the random states last.

        Under several processes each takes its own random states, running sums and pending gradients (``Strategy.own``).
        """
        check_state(state)
        state = self.strategy.own(state)
        check_state(state)  # what this process took from its part, too
        self.progress.load_state_dict(state, len(self.net.log))
        self.hardware.load_state_dict(state.get("hardware", {}))
        if self.average is not None and state.get("ema") is not None:
            self.average.load_state_dict(state["ema"])
        parameters = dict(self.net.module.named_parameters())
        for name, gradient in state.get("gradients", {}).items():  # mid-group of an accumulation
            parameters[name].grad = gradient.to(parameters[name].device)
        self.streams["train"].sampler.load_state_dict(state["sampler"])
        load_states(self.stops, state["stops"])
        load_states(self.recorders, state["recorders"])
        restore_rng(state["rng"])  # last: nothing may draw random numbers after this

    def shared_state(self, reason: str) -> dict:
        """:meth:`state_dict` with every process's own part (a collective call: all processes make it together)."""
        state = self.state_dict(reason)
        own = {"rng": state["rng"], "sums": self.progress.sums.state_dict(), "gradients": state["gradients"]}
        return self.strategy.shared_state(state, own)

    # -- setup --------------------------------------------------------------------------
    def _setup(self, streams: dict[str, DatasetMapper]) -> None:
        net = self.net
        self.hardware.place(net)
        self.progress.sums = EpochSums(self.outputs, self.classifiers, net.device)
        self.average = WeightAverage(net.module, self.settings.ema) if self.settings.ema is not None else None
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
        watched = next(((s.stream, s.output, s.metric) for s in self.stops if isinstance(s, EarlyStopping)), None)
        self.best = best_monitor(self.settings.best, watched, list(streams), self.outputs, self.classifiers)
        self.progress.best_value = BestValue(self.best)
        self.streams = streams
        self._eval_plan = eval_plan
        self._prepared = {name: self.hardware.prepare(eval_plan, mapper, self.classifiers) for name, mapper in streams.items()}
        if self.order == "simultaneous":
            self._step_plans = [(tuple(self.outputs), net.training_plan(self.outputs))]
        else:
            self._step_plans = [((name,), net.training_plan(name)) for name in self.outputs]
        self.strategy.prepare(net.module, self.hardware.device, [plan for _, plan in self._step_plans])
        for _, plan in self._step_plans:
            for scenario in plan.scenari():
                if scenario.schedule is not None:
                    scenario.schedule.check(list(streams), self.outputs)

    # -- the loop -----------------------------------------------------------------------
    def _run(self, resumed: bool) -> History:
        self.progress.begin_session()
        self.interrupts.install()
        writer = self.strategy.is_writer
        self._recorders = [recorder for recorder in self.recorders if writer or not recorder.writes_files]
        self._step_recorders = [r for r in self._recorders if type(r).on_step is not Recorder.on_step]
        self._step_stops = [(index, stop) for index, stop in enumerate(self.stops) if type(stop).update_step is not Stop.update_step]
        was_training = self.net.module.training
        self._emergency_written = False
        try:
            for recorder in self._recorders:
                recorder.on_start(self, resumed)
            while self.stop_reason is None:
                if self.progress.pending_end is None:
                    self._train_epoch()
                self._end_epoch()
            if self.run_directory is not None:
                self.run_directory.drain()
            if self._interrupted():  # a signal during the last epoch's end: still exit as asked
                self.interrupts.raise_pending(self._emergency)
            return self.history
        except BaseException as error:
            if self.strategy.saves_on_error and not (self._emergency_written or self.interrupts.stopped_at_once) and self.can_save:
                attach_message(error, self._emergency(type(error).__name__))
            if not self._emergency_written:  # the other processes learn it as its connections close
                self.strategy.failed()
            raise
        finally:
            self.net.module.train(was_training)
            self.interrupts.restore()
            for recorder in self._recorders:
                recorder.close()
            for stream in self._prepared.values():
                stream.close()
            if self.run_directory is not None:
                self.run_directory.close()

    def _train_epoch(self) -> None:
        mapper, progress = self.streams["train"], self.progress
        if progress.epoch_order is None:
            if self._interrupted():
                self.interrupts.raise_pending(self._emergency)
            progress.begin_epoch(mapper.sampler.epoch_order(mapper), self.net.device)
        stream = self._prepared["train"]
        rows = self.hardware.on_device(stream, stream.in_order(torch.from_numpy(progress.epoch_order).to(stream.device)))
        total = len(progress.epoch_order)
        steps = math.ceil(total / self.batch_size)
        for recorder in self._recorders:
            recorder.on_epoch_start(self, self.epoch + 1, steps)
        self.net.module.train(True)
        keep_rng = self.can_save  # for a checkpoint at the boundary before a step that fails
        peers, interrupts, size = self.strategy.interrupt_check(self.interrupts), self.interrupts, self.batch_size
        for step in range(progress.step, steps):
            if interrupts.pending is not None if peers is None else peers():
                interrupts.raise_pending(self._emergency)
            if keep_rng:
                self._rng_before_step = (torch.get_rng_state(),
                                         torch.cuda.get_rng_state_all() if self.hardware.device.type == "cuda" else None)
            self._in_step = True
            low, high = self.strategy.share(step * size, min((step + 1) * size, total))
            # A process whose share of a last, short batch is empty still joins the gradient average, with weight 0.
            stepped = self._step(rows(low, high) if high > low else rows(0, 1), step, steps, total, high - low)
            self._in_step = False
            progress.step = step + 1
            for recorder in self._step_recorders:
                recorder.on_step(self, step + 1, steps)
            if stepped and self._step_stops and self._stopped_at_step():
                break  # the partial epoch is evaluated and recorded as the last
        # Until the epoch's end is fully handled, a checkpoint describes the state before it.
        progress.pending_end = {"stops": states(self.stops), "recorders": states(self.recorders), "history": len(self.history),
                                "log": len(self.net.log)}

    def _step(self, batch: PreparedStream, step: int, steps: int, total: int, rows: int) -> bool:
        """One batch (on the device): an update per plan ("random" order: one plan drawn), metrics added on the device.
        Returns whether the optimizers stepped.

        ``rows``: this process's rows of the batch; 0 for a process whose share of a last, short batch is
        empty (``batch`` is then one row that weighs nothing and counts in no metric).

        With ``accumulate=k`` each batch adds its share of its group's rows times its gradient and
        the optimizers step on the group's last batch (``mariana.training.loop.accumulation``; with
        class weights, each batch's share is by rows, not by weight). Called every step: kept lean.
        """
        settings, plans, sums = self.settings, self._step_plans, self.progress.sums  # attributes, not properties: every step
        size = settings.batch_size
        if settings.order == "random":
            plans = [plans[int(self.progress.order_rng.integers(len(plans)))]]
        batch_rows = min(total, (step + 1) * size) - step * size  # all processes' rows
        accumulate = settings.accumulate
        stepped, group_rows = (True, batch_rows) if accumulate == 1 else group_of(step, steps, total, size, accumulate)
        counted = rows > 0
        share = self.strategy.world_size * rows / group_rows  # DDP averages over processes
        for names, plan in plans:
            result = self.strategy.forward_backward(self.hardware, plan, batch, stepped, share, batch_rows, counted)
            if stepped:
                self.hardware.apply(plan)
            for name in names if counted else ():
                sums.add(name, result.losses[name], rows, result.logits[name], batch.class_ids.get(name), result.counts.get(name))
        if stepped:
            self.progress.optimizer_steps += 1
            if self.average is not None:
                self.average.update()
        return stepped

    def _stopped_at_step(self) -> bool:
        """Whether a step-level stop (``Stop.update_step``) ends the run now; every process agrees (any one stops all)."""
        reasons = [[index, reason] for index, stop in self._step_stops
                   if (reason := stop.update_step(self, self.progress.optimizer_steps)) is not None]
        agreed = _merged(self.strategy.gather(reasons))
        self.progress.step_stops = agreed
        return bool(agreed)

    def _evaluate(self, stream: str) -> dict[str, dict[str, float]]:
        self.net.module.train(False)
        with self.average.swapped_in() if self.average is not None else contextlib.nullcontext():
            prepared = self._prepared[stream]
            return evaluate(self._eval_plan, prepared, self.outputs, self.classifiers, self.settings.eval_batch_size,
                            run=lambda plan, batch: self.hardware.evaluate(plan, self.hardware.batch(batch)),
                            span=self.strategy.share(0, len(prepared)), summed=self.strategy.summed)

    def _end_epoch(self) -> None:
        progress = self.progress
        self.strategy.share_buffers()  # every process evaluates (and keeps) rank 0's running statistics
        entry: dict[str, Any] = {"epoch": self.epoch + 1, "time": progress.elapsed(),
                                 "train": self.strategy.summed(progress.sums).means()}
        for stream in ("valid", "test"):
            if stream in self.streams:
                entry[stream] = self._evaluate(stream)
        entry = self.strategy.broadcast(entry)  # rank 0's clock: every process's stops decide alike
        with self.average.swapped_in() if self.average is not None else contextlib.nullcontext():
            reasons = [stop.update(self, entry) for stop in self.stops]  # a stop keeps the weights that were evaluated
        self.history.append(entry)
        self.net.record("epoch", history=entry)  # so a saved network still has its curves (net.to_html)
        for recorder in self._recorders:
            recorder.on_epoch_end(self, entry)
        local = progress.step_stops + [[index, reason] for index, reason in enumerate(reasons) if reason is not None]
        fired = [(self.stops[index], reason) for index, reason in _merged(self.strategy.gather(local))]  # any process stops all
        progress.end_epoch()
        for scenario in {id(s): s for _, plan in self._step_plans for s in plan.scenari()}.values():
            if scenario.schedule is not None:
                scenario.schedule.observe(entry)  # ReduceLROnPlateau; after the epoch end is committed, so a resume never repeats it
        improved = progress.best_value.improved(entry)
        if fired:
            self._finish(entry, fired, improved)
        elif self.run_directory is not None and self.settings.checkpoint_every and self.epoch % self.settings.checkpoint_every == 0:
            self._checkpoint("periodic", best=improved)

    def _finish(self, entry: dict, fired: list[tuple[Stop, str]], improved: bool) -> None:
        if self.average is not None:
            self.average.copy_to_model()  # the model keeps the averaged weights (a stop that restores weights wins)
        for stop, _ in fired:
            stop.finish(self)
        self.progress.stop_reason = "; ".join(reason for _, reason in fired)
        final = {k: v for k, v in entry.items() if k != "time"}
        self.net.record("training", phase="end", epochs=self.epoch, metrics=final, reason=self.stop_reason)
        if self.run_directory is not None:
            self._checkpoint("final", best=improved)
        for recorder in self._recorders:
            recorder.on_end(self, self.stop_reason)

    # -- checkpoints and interrupts --------------------------------------------------------
    def _checkpoint(self, reason: str, best: bool = False) -> None:
        state = self.shared_state(reason)
        if self.strategy.is_writer:
            self.run_directory.save_checkpoint(state, self.epoch, self.progress.step, best)

    def _interrupted(self) -> bool:
        """At an epoch boundary: whether a signal on any process asks every process to stop here (all agree now)."""
        pending = self.interrupts.pending is not None
        if not self.interrupts.enabled or not self.strategy.any(pending):
            return pending
        self.interrupts.pending = self.interrupts.pending or "SIGTERM"  # another process's signal: stop and save with it
        return True

    def _emergency(self, cause: str) -> str:
        """Write a checkpoint at this step boundary now; returns the message telling how to resume."""
        self._emergency_written = True
        where = (f"epoch {self.epoch + 1}, after step {self.progress.step}" if self.progress.pending_end is None
                 else f"end of epoch {self.epoch + 1}")
        state = self.shared_state(f"emergency: {cause}")
        if self.strategy.is_writer:
            self.run_directory.save_now(state, self.epoch, self.progress.step)
        self.strategy.barrier()  # the checkpoint is complete before any process exits
        if not self.strategy.is_writer:
            return ""  # rank 0 says it, once for the run
        stopped = f"mariana: training stopped by {cause} at {where}; checkpoint saved in {self.run_dir}. "
        if self.strategy.world_size > 1:  # `mariana resume` would carry on in one process
            rerun = "Rerun the same torchrun command" + (" to carry on from it (resume='auto')." if self.settings.resume == "auto" else
                                                         " with resume='auto' in the script's Trainer to carry on from it.")
            return stopped + rerun
        return stopped + f"Resume with `mariana resume {self.run_dir}` or Trainer.resume({str(self.run_dir)!r})."


def _merged(parts: list[list[list]]) -> list[list]:
    """The ``[stop index, reason]`` pairs of every process, once each, in the stops' order."""
    return [[index, reason] for index, reason in sorted({index: reason for part in parts for index, reason in part}.items())]
