"""The job files of ``scripts/reproduce.sh``: which jobs still have work, and which were submitted where.

A job file holds one job per line, ``<number> <shell command>``, each command a method script call such as
``bash scripts/coop.sh eurosat 16 1``. Whether a job is finished is asked of the script itself
(``RUN_STATUS=1`` makes ``run_job`` print ``finished|unfinished|new <run folder>`` instead of running), so the
run folders and the finished test live in one place (scripts/common.sh). The launcher (launch.py) records the
scheduler's job id of each submitted command in a ledger, so a later call neither submits a command that is
still queued or running nor forgets to wait for it.

``python -m dpt.tools.jobs JOBFILE... [--ledger DIR]`` prints the jobs that are not finished as a markdown list
(reproduce.sh puts it into report.md).
"""
from __future__ import annotations

import getpass
import json
import os
import subprocess
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from dpt.cache.atomic import write_json_atomic

LEDGER_NAME = "submitted.json"
RUN_STATES = ("finished", "unfinished", "new")


class Job(NamedTuple):
    """One line of a job file."""

    number: int
    command: str


class JobState(NamedTuple):
    """What the script reports for a job: (state, run folder) per run, or why it cannot tell."""

    runs: Tuple[Tuple[str, str], ...]
    error: str = ""

    @property
    def finished(self) -> bool:
        return bool(self.runs) and all(state == "finished" for state, _ in self.runs)

    def describe(self) -> str:
        """``unfinished <dir>`` / ``new <dir>`` for the runs left, or the script's error."""
        if self.error:
            return f"cannot run yet: {self.error}"
        left = [f"{state} {folder}" for state, folder in self.runs if state != "finished"]
        return "; ".join(left) or "the script names no run"


def read_job_file(path: str) -> List[Job]:
    """The jobs of ``path`` (lines ``<number> <command>``; blank lines skipped)."""
    jobs = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            number, _, command = line.strip().partition(" ")
            if not number.isdigit() or not command.strip():
                raise ValueError(f"{path}:{lineno}: expected '<job number> <command>', got {line.strip()!r}")
            jobs.append(Job(int(number), command.strip()))
    return jobs


def job_state(command: str, cwd: Optional[str] = None) -> JobState:
    """Run ``command`` with RUN_STATUS=1 (it runs nothing) and read the runs it names."""
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env={**os.environ, "RUN_STATUS": "1"},
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return JobState((), lines[-1].removeprefix("error: "))
    runs = []
    for line in done.stdout.splitlines():
        state, _, folder = line.partition(" ")
        if state in RUN_STATES and folder:
            runs.append((state, folder))
    return JobState(tuple(runs))


# ----------------------------------------------------------------------------- the ledger
def read_ledger(folder: str) -> Dict[str, Dict[str, str]]:
    """command -> {"launcher": ..., "job_id": ...} of the latest submission of each command ({} when none)."""
    path = os.path.join(folder, LEDGER_NAME)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            ledger = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt job ledger ({err}); delete it if no job of it is queued") from None
    if not isinstance(ledger, dict):
        raise ValueError(f"{path}: expected a JSON object (command -> job), found {type(ledger).__name__}")
    return ledger


def record_jobs(folder: str, launcher: str, submitted: Iterable[Tuple[str, str]]) -> None:
    """Add (command, job id) pairs to the ledger (written to a temporary file, then renamed)."""
    ledger = read_ledger(folder)
    ledger.update({command: {"launcher": launcher, "job_id": job_id} for command, job_id in submitted})
    write_json_atomic(ledger, os.path.join(folder, LEDGER_NAME), indent=1)


def active_job_ids(jobs: Iterable[Tuple[str, str]]) -> Set[str]:
    """The job ids among (launcher, job id) pairs that are still queued or running.

    slurm: listed by ``squeue`` for this user (array tasks one per line, requeued ones included);
    submitit-local: the job id is the pid of submitit's local controller, alive while the job runs.
    """
    jobs = list(jobs)
    active = set()
    slurm_ids = {job_id for launcher, job_id in jobs if launcher == "slurm"}
    if slurm_ids:
        command = ["squeue", "--noheader", "--array", "--format=%i", f"--user={getpass.getuser()}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RuntimeError(f"cannot ask SLURM which jobs are queued ({' '.join(command)}): {err}") from None
        if done.returncode != 0:
            raise RuntimeError(f"cannot ask SLURM which jobs are queued ({' '.join(command)}): "
                               f"{done.stderr.strip() or f'exit status {done.returncode}'}")
        active |= slurm_ids & set(done.stdout.split())
    for launcher, job_id in jobs:
        if launcher == "submitit-local" and _is_local_controller(job_id):
            active.add(job_id)
    return active


def _is_local_controller(pid: str) -> bool:
    """True while ``pid`` is a live (not zombie) submitit local controller."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"submitit.local._local" in f.read()
    except OSError:
        return False


# ----------------------------------------------------------------------------- the listing for report.md
def unfinished_listing(jobs: Sequence[Job], ledger: Dict[str, Dict[str, str]]) -> str:
    """Markdown: how many jobs are finished, then one line per job that is not (with its queued job id)."""
    states = [(job, job_state(job.command)) for job in jobs]
    left = [(job, state) for job, state in states if not state.finished]
    if not left:
        return f"All {len(jobs)} jobs finished."
    entries = [(ledger[job.command]["launcher"], ledger[job.command]["job_id"])
               for job, _ in left if job.command in ledger]
    active = active_job_ids(entries)
    lines = [f"{len(left)} of {len(jobs)} jobs not finished:", ""]
    for job, state in left:
        where = ledger.get(job.command, {})
        queued = f" (queued or running as job {where['job_id']})" if where.get("job_id") in active else ""
        lines.append(f"- job {job.number}{queued}: {state.describe()}  \n  `{job.command}`")
    return "\n".join(lines)
