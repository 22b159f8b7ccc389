"""Learning scenari: how a layer's parameters learn.

Each layer may carry its own optimizer scenario; a layer without one
inherits the optimizer (and schedule) of the output layer being trained.
``Fixed`` freezes parameters of its own layer and is never inherited.
Optimizers are torch's (``torch.optim``); their state is keyed by
``<layer>.<param>`` when saved.

Example:
    >>> import mariana.layers as ML, mariana.scenari as MS
    >>> out = ML.SoftmaxClassifier(
    ...     2, learning_scenari=[MS.Adam(lr=1e-3, schedule=MS.StepDecay(100, 0.5)), MS.Fixed("b")])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence

import torch

from mariana.checks import int_at_least, real_number
from mariana.registry import Configurable, deserialize, serialize


class Schedule(Configurable):
    """A learning-rate multiplier as a function of the scenario's step count (and, for some, of the metrics)."""

    def factor(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement factor(step).")

    def observe(self, entry: dict) -> None:
        """Called by the Trainer with each epoch's history entry (see ReduceLROnPlateau); default: nothing."""

    def check(self, streams: list[str], outputs: Sequence[str] | None = None) -> None:
        """Raise ``ValueError`` if this schedule cannot follow a run with these streams (and trained ``outputs``); default: nothing to check."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (saved with the optimizer state)."""


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps."""

    hyperparameters = ("step_size", "gamma")

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepDecay: step_size must be an int >= 1, but received {step_size!r}.")
        self.step_size, self.gamma = step_size, float(gamma)

    def factor(self, step: int) -> float:
        return self.gamma ** (step // self.step_size)


class ExponentialDecay(Schedule):
    """Rate times ``decay_rate ** (step / decay_steps)``."""

    hyperparameters = ("decay_rate", "decay_steps")

    def __init__(self, decay_rate: float, decay_steps: int = 1) -> None:
        if not 0 < decay_rate <= 1:
            raise ValueError(f"ExponentialDecay: decay_rate must be in (0, 1], but received {decay_rate!r}.")
        if not isinstance(decay_steps, int) or decay_steps < 1:
            raise ValueError(f"ExponentialDecay: decay_steps must be an int >= 1, but received {decay_steps!r}.")
        self.decay_rate, self.decay_steps = float(decay_rate), decay_steps

    def factor(self, step: int) -> float:
        return self.decay_rate ** (step / self.decay_steps)


class CosineDecay(Schedule):
    """Cosine from 1 down to ``final_factor`` over ``decay_steps``, optional linear warmup."""

    hyperparameters = ("decay_steps", "final_factor", "warmup_steps")

    def __init__(self, decay_steps: int, final_factor: float = 0.0, warmup_steps: int = 0) -> None:
        if not isinstance(decay_steps, int) or decay_steps < 1:
            raise ValueError(f"CosineDecay: decay_steps must be an int >= 1, but received {decay_steps!r}.")
        self.decay_steps, self.final_factor, self.warmup_steps = decay_steps, float(final_factor), int(warmup_steps)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / self.decay_steps)
        return self.final_factor + (1 - self.final_factor) * 0.5 * (1 + math.cos(math.pi * progress))


class ReduceLROnPlateau(Schedule):
    """Multiply the rate by ``factor`` when ``metric`` of ``output`` on ``stream`` stops improving, as torch's does.

    The Trainer shows it each epoch's metrics: an epoch improves when the value
    beats the best so far by more than ``threshold`` (relative); after more than
    ``patience`` epochs without improvement the rate is reduced (never below
    ``min_factor`` times the scenario's lr) and the count starts again. Loss is
    minimised, accuracy maximised. ``output=None``: the first output of the stream.

    Example:
        >>> plateau = ReduceLROnPlateau("valid", patience=0, factor=0.5)
        >>> for loss in (1.0, 1.0, 1.0):
        ...     plateau.observe({"valid": {"out": {"loss": loss}}})
        >>> plateau.factor(0)
        0.25
    """

    hyperparameters = ("stream", "output", "metric", "patience", "threshold", "min_factor")

    def __init__(self, stream: str = "valid", output: str | None = None, metric: str = "loss", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, min_factor: float = 0.0) -> None:
        if not 0 < real_number(factor, "ReduceLROnPlateau: factor") < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), but received {factor!r}.")
        if metric not in ("loss", "accuracy"):
            raise ValueError(f"ReduceLROnPlateau: metric must be 'loss' or 'accuracy', but received {metric!r}.")
        self.stream, self.output, self.metric = stream, output, metric
        self.factor_by, self.patience = float(factor), int_at_least(patience, 0, "ReduceLROnPlateau: patience")
        self.threshold = real_number(threshold, "ReduceLROnPlateau: threshold")
        self.min_factor = real_number(min_factor, "ReduceLROnPlateau: min_factor")
        self.current, self.best, self.bad_epochs = 1.0, None, 0

    def check(self, streams: list[str], outputs: Sequence[str] | None = None) -> None:
        if self.stream not in streams:
            raise ValueError(f"ReduceLROnPlateau follows the {self.stream!r} stream, but the run has {streams}; "
                             f"pass {self.stream}=... to the Trainer, or ReduceLROnPlateau(stream='train').")
        if outputs is not None and self.output is not None and self.output not in outputs:
            raise ValueError(f"ReduceLROnPlateau watches output {self.output!r}, but the run trains outputs {list(outputs)}.")

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor_by}  # `factor` names the method every schedule has

    def factor(self, step: int) -> float:
        return self.current

    def observe(self, entry: dict) -> None:
        stream = entry.get(self.stream)
        if not stream:
            return
        value = stream.get(self.output if self.output is not None else next(iter(stream)), {}).get(self.metric)
        if value is None or math.isnan(value):
            return
        sign = 1.0 if self.metric == "loss" else -1.0
        if self.best is None or sign * value < sign * self.best - abs(self.best) * self.threshold:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.current, self.bad_epochs = max(self.current * self.factor_by, self.min_factor), 0

    def state_dict(self) -> dict:
        return {"current": self.current, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.current, self.best, self.bad_epochs = float(state["current"]), state["best"], int(state["bad_epochs"])


def check_option(scenario: object, label: str, value: object, is_valid: Callable[[float], bool], expected: str) -> None:
    """Refuse, at construction, an optimizer option that torch would only refuse at the first step.

    Example:
        >>> import mariana.scenari as MS
        >>> MS.Adam(eps=-1)
        Traceback (most recent call last):
        ...
        ValueError: Adam: eps must be a number >= 0, but received -1.
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not is_valid(value):
        raise ValueError(f"{type(scenario).__name__}: {label} must be {expected}, but received {value!r}.")


class LearningScenario(Configurable):
    """Base of every scenario."""


class Fixed(LearningScenario):
    """Freeze the named params of this layer, or all of them when none are named."""

    def __init__(self, *param_names: str) -> None:
        for name in param_names:
            if not isinstance(name, str):
                raise TypeError(f"Fixed: expected parameter names (str), but received {name!r}.")
        self.param_names = tuple(param_names)

    def freezes(self, param_name: str) -> bool:
        return not self.param_names or param_name in self.param_names

    def get_config(self) -> dict:
        return {"param_names": list(self.param_names)}

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> Fixed:
        return cls(*config["param_names"])


class OptimizerScenario(LearningScenario):
    """A torch optimizer plus an optional schedule and gradient clipping; counts its own steps.

    ``clip_value`` clips each gradient element to ``[-clip_value, clip_value]``;
    ``clip_norm`` then rescales the gradients of the params this scenario
    updates so their global L2 norm is at most ``clip_norm`` (Keras'
    ``global_clipnorm``). With ``clip_norm``, ``grad_norm`` holds the norm
    before clipping after each step (a 0-d tensor on the params' device; read
    it sparingly, it syncs); ``clip_norm=math.inf`` only measures it.
    """

    torch_class: type[torch.optim.Optimizer]

    def __init__(self, lr: float, schedule: Schedule | None = None, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None:
        check_option(self, "lr", lr, lambda v: v > 0, "a number > 0")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"{type(self).__name__}: schedule must be a mariana.scenari.Schedule, but received {schedule!r}.")
        for label, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0):
                raise ValueError(f"{type(self).__name__}: {label} must be a number > 0 or None, but received {value!r}.")
        self.lr = float(lr)
        self.schedule = schedule
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.grad_norm: torch.Tensor | None = None
        self.steps = 0

    def clip(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Clip the gradients of ``params`` in place (value first, then the global norm), before the step."""
        if self.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, self.clip_value)
        if self.clip_norm is not None:
            self.grad_norm = torch.nn.utils.clip_grad_norm_(params, self.clip_norm)

    def torch_options(self) -> dict:
        """Keyword arguments for ``torch_class`` besides the parameters."""
        return {"lr": self.lr}

    def make_optimizer(self, params: Sequence[torch.nn.Parameter], shared_state: dict) -> torch.optim.Optimizer:
        """A torch optimizer over ``params`` whose per-param state lives in ``shared_state``."""
        optimizer = self.torch_class(list(params), **self.torch_options())
        optimizer.state = shared_state
        return optimizer

    def current_lr(self) -> float:
        return self.lr if self.schedule is None else self.lr * self.schedule.factor(self.steps)

    def config_key(self) -> tuple:
        return (type(self).__name__, repr(sorted(self.get_config().items())))

    def get_config(self) -> dict:
        config = super().get_config()
        config["schedule"] = None if self.schedule is None else serialize(self.schedule)
        config["clip_norm"], config["clip_value"] = self.clip_norm, self.clip_value
        return config

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> OptimizerScenario:
        config = dict(config)
        if config.get("schedule") is not None:
            config["schedule"] = deserialize(config["schedule"], Schedule)
        return cls(**config)

    def state_dict(self) -> dict:
        state: dict = {"steps": self.steps}
        if self.schedule is not None and self.schedule.state_dict():
            state["schedule"] = self.schedule.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        if self.schedule is not None and "schedule" in state:
            self.schedule.load_state_dict(state["schedule"])


class GradientDescent(OptimizerScenario):
    """SGD with optional (Nesterov) momentum."""

    torch_class = torch.optim.SGD
    hyperparameters = ("lr", "momentum", "nesterov")

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, schedule: Schedule | None = None,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        super().__init__(lr, schedule, clip_norm, clip_value)
        check_option(self, "momentum", momentum, lambda v: 0 <= v < 1, "a number in [0, 1)")
        if nesterov and momentum == 0:
            raise ValueError("GradientDescent: nesterov=True needs momentum > 0.")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def torch_options(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(OptimizerScenario):
    torch_class = torch.optim.Adam
    hyperparameters = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, schedule: Schedule | None = None, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None:
        super().__init__(lr, schedule, clip_norm, clip_value)
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            check_option(self, label, beta, lambda v: 0 <= v < 1, "a number in [0, 1)")
        check_option(self, "eps", eps, lambda v: v >= 0, "a number >= 0")
        check_option(self, "weight_decay", weight_decay, lambda v: v >= 0, "a number >= 0")
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)

    def torch_options(self) -> dict:
        return {"lr": self.lr, "betas": (self.beta1, self.beta2), "eps": self.eps, "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay."""

    torch_class = torch.optim.AdamW

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01, schedule: Schedule | None = None, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay, schedule, clip_norm, clip_value)


class RMSProp(OptimizerScenario):
    torch_class = torch.optim.RMSprop
    hyperparameters = ("lr", "alpha", "eps", "momentum")

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 schedule: Schedule | None = None, clip_norm: float | None = None, clip_value: float | None = None) -> None:
        super().__init__(lr, schedule, clip_norm, clip_value)
        check_option(self, "alpha", alpha, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        check_option(self, "eps", eps, lambda v: v >= 0, "a number >= 0")
        check_option(self, "momentum", momentum, lambda v: v >= 0, "a number >= 0")
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)

    def torch_options(self) -> dict:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum}


def split_scenari(owner: str, scenari: Iterable[LearningScenario]) -> tuple[OptimizerScenario | None, tuple[Fixed, ...]]:
    """A layer's scenari as (its optimizer or None, its Fixed entries)."""
    optimizers, fixed = [], []
    for scenario in scenari:
        if isinstance(scenario, Fixed):
            fixed.append(scenario)
        elif isinstance(scenario, OptimizerScenario):
            optimizers.append(scenario)
        else:
            raise TypeError(f"{owner}: learning_scenari expects mariana.scenari objects, but received {scenario!r}.")
    if len(optimizers) > 1:
        raise ValueError(
            f"{owner}: expected at most one optimizer in learning_scenari (plus Fixed entries), "
            f"but received {len(optimizers)}: {optimizers}."
        )
    return (optimizers[0] if optimizers else None), tuple(fixed)
