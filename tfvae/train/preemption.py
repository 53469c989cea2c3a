"""Graceful preemption: SIGTERM or SIGINT ends training with a checkpoint at the current step.

Kubernetes, Slurm and preemptible cloud machines stop a job with SIGTERM and
a grace period (Ctrl-C sends SIGINT). While ``train_and_evaluate`` runs,
the first such signal only sets a flag; the loop finishes the compiled block
it is in, writes a checkpoint at that step and raises ``TrainingPreempted``
(scripts/train.py exits with ``128 + signal number``: 143 for SIGTERM, 130
for SIGINT, the shell's convention for a job ended by a signal). A second
signal acts as it would without tfvae (SIGINT raises KeyboardInterrupt).
Rerunning the command resumes exactly, as from any checkpoint.

With several workers the flags are summed across workers after every block
(``distribute.any_worker``), so all of them stop and save at the same step,
whichever one was signalled.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["SIGNALS", "SignalWatch", "TrainingPreempted"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingPreempted(Exception):
    """Training stopped on a signal after writing a checkpoint; rerun to resume.

    Attributes:
      signal_number: the signal that stopped it.
      exit_code: 128 + signal_number.
    """

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number


class SignalWatch:
    """While entered, records the first SIGTERM/SIGINT instead of dying of it.

    Outside the main thread (where Python cannot install handlers) it
    watches nothing and ``signal_number`` stays None.
    """

    def __init__(self, signals=SIGNALS):
        self.signals = tuple(signals)
        self.signal_number: int | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    def _handle(self, signal_number, frame) -> None:
        del frame
        if self.signal_number is None:
            self.signal_number = signal_number
        for number, handler in self._previous.items():  # a second signal acts as usual
            signal.signal(number, handler)

    def __enter__(self) -> SignalWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.signals}
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
