"""One job line of reproduce.sh as a submitit callable: run it, pass stop signals on, requeue it.

Why a callable of our own: submitit runs a pickled Python callable inside each scheduler job and, when SLURM
signals that the job will be preempted or reach its time limit, calls the callable's ``checkpoint()`` and requeues
what it returns. The job itself stays the same shell command a local run uses (docs/design.md "Where new things
go": the launcher only decides where a job runs); it runs in its own process group with ``DPT_SAVE_ON_SIGNAL`` set,
so on a stop signal ``train.py`` saves its last finished epoch and exits (dpt/launch/preemption.py), and the
requeued command resumes from there.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Optional

from dpt.launch.preemption import SAVE_ON_SIGNAL_ENV

if TYPE_CHECKING:  # submitit is optional: imported where it is used
    from submitit.helpers import DelayedSubmission

# Seconds a stopped run may take to save and exit before its process group is killed (SLURM's default
# warning comes 90 s before the kill).
STOP_TIMEOUT_S = 60
# Seconds to wait, after the run ended on a stop signal, for the scheduler's own signal to requeue this job.
REQUEUE_GRACE_S = 10


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is alive (zombies, which no reaper may collect, do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            return True
    return False


def _wait_group(process: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until every process of ``process``'s group ended; False if some still run after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        process.poll()  # reap the leader, which would otherwise stay a zombie of this process
        if not _group_alive(process.pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _signal_group(process: Optional[subprocess.Popen], signum: int) -> None:
    if process is None:
        return
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


class ShellJob:
    """``bash -c COMMAND`` in ``cwd`` as one submitit job (every task of it, under DDP).

    Args:
        number: the job's number in reproduce.sh's job file (for the log lines).
        command: the shell command, e.g. ``bash scripts/dpt.sh eurosat 16 1``.
        cwd: the folder relative paths in ``command`` and its environment (DATA, OUTPUT) refer to.
    """

    def __init__(self, number: int, command: str, cwd: str) -> None:
        self.number = number
        self.command = command
        self.cwd = cwd
        self._process: Optional[subprocess.Popen] = None

    def __call__(self) -> int:
        from submitit import JobEnvironment
        from submitit.helpers import TorchDistributedEnvironment

        stop_signals = (signal.Signals[f"SIG{JobEnvironment.USR_SIG}"], signal.SIGTERM)  # USR2 unless configured
        if JobEnvironment().num_tasks > 1:  # one task per GPU: torchrun's variables, read by the engine's DDP
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               SAVE_ON_SIGNAL_ENV: " ".join(sig.name for sig in stop_signals)}
        print(f"[job {self.number}] {self.command}", flush=True)
        previous = {sig: signal.getsignal(sig) for sig in stop_signals}

        def pass_on(signum: int, frame) -> None:
            """Tell the run first (it saves its last epoch), then let submitit checkpoint and requeue."""
            _signal_group(self._process, signum)
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)

        for sig in stop_signals:
            signal.signal(sig, pass_on)
        self._process = subprocess.Popen(["bash", "-c", self.command], cwd=self.cwd, env=env,
                                         start_new_session=True)
        try:
            code = self._process.wait()
            _wait_group(self._process, STOP_TIMEOUT_S)  # e.g. train.py still saving after its bash parent died
        except BaseException:  # cancelled, or requeued by submitit's handler: nothing of the run may stay
            _signal_group(self._process, signal.SIGKILL)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if code in {-sig for sig in stop_signals} | {128 + sig for sig in stop_signals}:
            time.sleep(REQUEUE_GRACE_S)  # the scheduler's signal may reach this process just after the run's
            raise RuntimeError(f"job {self.number} stopped by signal (its last finished epoch is saved; the "
                               f"same command resumes it): {self.command}")
        if code != 0:
            raise RuntimeError(f"job {self.number} exited with status {code}: {self.command}")
        return code

    def checkpoint(self) -> "DelayedSubmission":
        """submitit's hook on a stop signal: wait until the run saved and exited, then requeue the same job."""
        from submitit.helpers import DelayedSubmission

        if self._process is not None and not _wait_group(self._process, STOP_TIMEOUT_S):
            _signal_group(self._process, signal.SIGKILL)
        print(f"[job {self.number}] stopped for a requeue; the requeued job resumes from the last finished epoch",
              flush=True)
        return DelayedSubmission(ShellJob(self.number, self.command, self.cwd))
