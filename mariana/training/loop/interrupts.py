"""Interrupts: SIGINT/SIGTERM set a flag; the Trainer acts on it at the next step boundary.

A signal handler only records which signal arrived, because the state is
consistent only between steps. There the Trainer writes its emergency
checkpoint and :meth:`Interrupts.raise_pending` ends the run as the signal
asked: SIGTERM as ``SystemExit(143)``, SIGINT as ``KeyboardInterrupt``. A
second SIGINT while the first is pending stops at once without a new
checkpoint.

Example:
    >>> interrupts = Interrupts(enabled=False, run_dir="runs/demo")
    >>> interrupts.install(); interrupts.pending is None
    True
    >>> interrupts.restore()
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


class Interrupts:
    """The signal flag of one training session (handlers installed only when ``enabled``, on the main thread)."""

    def __init__(self, enabled: bool, run_dir: Any) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self.pending: str | None = None
        self.stopped_at_once = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        self.pending = None
        self.stopped_at_once = False
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.pending is not None and signum == signal.SIGINT:
            self.stopped_at_once = True  # mid-step state is not consistent: keep the last checkpoint instead
            raise KeyboardInterrupt(f"Interrupted twice: stopped at once without a new checkpoint; `mariana resume {self.run_dir}` "
                                    f"continues from the last one.")
        self.pending = signal.Signals(signum).name

    def raise_pending(self, emergency: Callable[[str], str]) -> None:
        """If a signal arrived: ``emergency(signal_name)`` saves and returns a message; then end as the signal asks."""
        if self.pending is None:
            return
        name = self.pending
        message = emergency(name)
        if name == "SIGTERM":
            if message:  # under several processes, only rank 0's says how to carry on
                print(message, file=sys.stderr)  # SystemExit shows no message of its own
            raise SystemExit(143)
        raise KeyboardInterrupt(message)


def attach_message(cause: BaseException, message: str) -> None:
    """Show ``message`` with ``cause``'s traceback (a note on Python >= 3.11, stderr before)."""
    if hasattr(cause, "add_note"):
        cause.add_note(message)
    else:
        print(message, file=sys.stderr)
