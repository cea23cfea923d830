"""Stop signals: a scheduler asks a run to stop, the run saves its last finished epoch and exits.

Why: SLURM signals a job (submitit asks for ``--signal=USR2@90``) some time before it preempts it or the time
limit kills it, and requeues it afterwards. A run normally writes checkpoints at its last epoch only
(TRAIN.CHECKPOINT_FREQ 0), so without this an interrupted run would restart from zero. The launcher lists the
signals in the environment variable ``DPT_SAVE_ON_SIGNAL`` (e.g. ``"USR2 TERM"``); the run keeps the checkpoint
state of each finished epoch in memory (``TrainerX.keep_last_epoch``), and on one of those signals ``train.py``
writes it as an ordinary ``model.pth.tar-<epoch>`` and exits with status 128 + signal number. The same command
then resumes exactly from that epoch (RNG states included), so the result equals an uninterrupted run's.
Without the variable nothing changes: no handler, no copies.
"""
from __future__ import annotations

import contextlib
import os
import signal
from typing import Iterator, List, Sequence

SAVE_ON_SIGNAL_ENV = "DPT_SAVE_ON_SIGNAL"


class Preempted(BaseException):
    """Raised in the main thread when a stop signal arrives.

    A ``BaseException`` (as ``KeyboardInterrupt``) so that no ``except Exception`` on the way turns it into an
    ordinary error.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's status for "ended by this signal"
        super().__init__(signal.Signals(signum).name)


def stop_signals_from_env() -> List[signal.Signals]:
    """The signals named in DPT_SAVE_ON_SIGNAL (``USR2``, ``SIGUSR2`` or ``12``; space- or comma-separated)."""
    raw = os.environ.get(SAVE_ON_SIGNAL_ENV, "")
    found = []
    for word in raw.replace(",", " ").split():
        name = word.upper()
        key = name if name.startswith("SIG") else f"SIG{name}"
        try:
            found.append(signal.Signals(int(name)) if name.isdigit() else signal.Signals[key])
        except (KeyError, ValueError):
            raise ValueError(
                f"environment variable {SAVE_ON_SIGNAL_ENV}={raw!r}: unknown signal {word!r}; "
                f"expected names such as USR2 TERM"
            ) from None
    return found


@contextlib.contextmanager
def raise_on_signals(signals: Sequence[signal.Signals]) -> Iterator[None]:
    """While inside, the first of ``signals`` raises ``Preempted`` in this process; later ones are ignored.

    Only the process that entered reacts: DataLoader workers forked meanwhile inherit the handler and ignore
    the signal (their parent ends them). The previous handlers come back on exit.
    """
    owner = os.getpid()
    fired = []

    def handler(signum, frame):
        if os.getpid() != owner or fired:
            return
        fired.append(signum)
        raise Preempted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
