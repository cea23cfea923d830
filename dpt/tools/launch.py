"""``python -m dpt.tools.launch JOBFILE --launcher slurm|submitit-local``: a reproduce.sh job file through submitit.

Only the jobs with work left are submitted: finished ones are skipped (asked of the method scripts, see jobs.py)
and so are jobs still queued or running from an earlier call (the ledger ``FOLDER/submitted.json``). With
``slurm`` the rest becomes one SLURM array job (``--array=0-N%PARALLELISM``); with ``submitit-local`` submitit's
local executor runs them on this machine, PARALLELISM at a time: the same callable, environment and requeue
path, so tests and CI exercise what a cluster runs. Each job is a ``ShellJob`` (shell_job.py): on SLURM's
warning signal the run saves its last finished epoch and the job is requeued, resuming from there. Jobs with
several tasks (NODES x GPUS_PER_NODE > 1) run the engine's DDP, one task per GPU.

The launcher then waits until none of the phase's jobs is queued or running and lists those not finished
(exit status 1 if any). Logs: ``FOLDER/<job id>_<task>_log.out``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple, Union

from dpt.errors import ArgumentParser, cli_main
from dpt.launch.jobs import Job, active_job_ids, job_state, read_job_file, read_ledger, record_jobs
from dpt.launch.shell_job import ShellJob

if TYPE_CHECKING:  # submitit is optional: imported where it is used
    from submitit import AutoExecutor

LAUNCHERS = {"slurm": "slurm", "submitit-local": "local"}  # our name -> submitit's cluster name
DEFAULT_PARALLELISM = {"slurm": 256, "submitit-local": 1}  # 256: submitit's default for SLURM arrays
POLL_S = {"slurm": 60.0, "submitit-local": 0.5}
MINIMUM = {"nodes": 1, "gpus_per_node": 0, "tasks_per_node": 1, "cpus_per_task": 1, "timeout_min": 1,
           "max_timeouts": 0, "array_parallelism": 1}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m dpt.tools.launch", description=__doc__.split("\n")[0])
    parser.add_argument("job_file", help="reproduce.sh job file: '<number> <command>' lines")
    parser.add_argument("--launcher", choices=sorted(LAUNCHERS), required=True)
    parser.add_argument("--folder", required=True, help="submitit's folder: job logs, pickles and the ledger")
    parser.add_argument("--nodes", type=int, default=1, help="nodes per job (default 1)")
    parser.add_argument("--gpus-per-node", type=int, default=1,
                        help="GPUs per node and job, one task (process) each when > 1 (default 1)")
    parser.add_argument("--tasks-per-node", type=int,
                        help="processes per node and job (default: one per GPU, at least one); > 1 in all: DDP")
    parser.add_argument("--cpus-per-task", type=int, default=8, help="CPUs per task (default 8)")
    parser.add_argument("--mem-gb", type=float, help="memory per node in GB (default: the cluster's)")
    parser.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    parser.add_argument("--timeout-min", type=int, default=1440,
                        help="minutes per job; a job reaching it saves its last epoch and is requeued (default 1440)")
    parser.add_argument("--max-timeouts", type=int, default=3,
                        help="requeues after a time limit, per job (preemptions do not count; default 3)")
    parser.add_argument("--array-parallelism", type=int,
                        help="jobs running at once (default: 256 on SLURM, 1 with submitit-local)")
    parser.add_argument("--sbatch", default="", metavar="OPTIONS",
                        help="more sbatch options, e.g. '--account=lab --qos=high --exclusive'")
    parser.add_argument("--single-task", action="store_true",
                        help="one task with at most one GPU per job, whatever --nodes/--gpus-per-node say "
                             "(evaluation-only phases)")
    parser.add_argument("--failed-list", metavar="FILE", help="append the numbers of the jobs not finished to FILE")
    parser.add_argument("--poll-s", type=float, help="seconds between queue checks (default: 60 SLURM, 0.5 local)")
    return parser


def sbatch_options(text: str) -> Dict[str, Union[str, bool]]:
    """'--account=lab --exclusive' -> {"account": "lab", "exclusive": True} (submitit's additional_parameters)."""
    options: Dict[str, Union[str, bool]] = {}
    for word in shlex.split(text):
        key, eq, value = word.partition("=")
        if not key.startswith("--") or len(key) < 3 or (eq and not value):
            raise ValueError(f"sbatch option {word!r}: expected --name=value or --flag (long form)")
        options[key[2:]] = value if eq else True
    return options


def make_executor(args: argparse.Namespace) -> "AutoExecutor":
    """submitit's AutoExecutor for ``args.launcher`` with the job resources of ``args``."""
    import submitit

    for name, low in MINIMUM.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} {value}: expected a whole number >= {low}")
    nodes, gpus = (1, min(args.gpus_per_node, 1)) if args.single_task else (args.nodes, args.gpus_per_node)
    tasks = 1 if args.single_task else args.tasks_per_node or max(gpus, 1)
    if args.launcher == "submitit-local" and nodes > 1:
        raise ValueError(f"--nodes {nodes}: submitit-local runs on this machine only; use 1 (or LAUNCHER=slurm)")
    cluster = LAUNCHERS[args.launcher]
    executor = submitit.AutoExecutor(args.folder, cluster=cluster, **{f"{cluster}_max_num_timeout": args.max_timeouts})
    executor.update_parameters(
        name=f"dpt_{os.path.splitext(os.path.basename(args.job_file))[0]}",
        timeout_min=args.timeout_min, nodes=nodes, gpus_per_node=gpus, tasks_per_node=tasks,
        cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, stderr_to_stdout=True,
        slurm_partition=args.partition,
        slurm_array_parallelism=args.array_parallelism or DEFAULT_PARALLELISM["slurm"],
        slurm_additional_parameters={"requeue": True, **sbatch_options(args.sbatch)},
    )
    return executor


def log_path(folder: str, job_id: str) -> str:
    """submitit's log of task 0 of a job (stdout and stderr together)."""
    return os.path.join(folder, f"{job_id}_0_log.out")


def triage(jobs: Sequence[Job], ledger: Dict[str, Dict[str, str]]
           ) -> Tuple[List[Job], List[Job], List[Job], List[Tuple[Job, str]]]:
    """Split jobs into (to submit, finished, still queued or running, cannot run yet with the reason)."""
    states = {job: job_state(job.command) for job in jobs}
    finished = [job for job in jobs if states[job].finished]
    blocked = [(job, states[job].error) for job in jobs if states[job].error]
    recorded = [(ledger[job.command]["launcher"], ledger[job.command]["job_id"])
                for job in jobs if job.command in ledger and not states[job].finished]
    active = active_job_ids(recorded)
    in_flight = [job for job in jobs if job not in finished and ledger.get(job.command, {}).get("job_id") in active]
    todo = [job for job in jobs if job not in finished and job not in in_flight and not states[job].error]
    return todo, finished, in_flight, blocked


def submit_array(executor: "AutoExecutor", args: argparse.Namespace, todo: Sequence[Job]) -> List[Tuple[str, str]]:
    """All of ``todo`` as one SLURM array job; returns (command, job id) pairs."""
    try:
        with executor.batch():
            submitted = [executor.submit(ShellJob(job.number, job.command, os.getcwd())) for job in todo]
    except RuntimeError as err:  # sbatch refused it: partition, account, limits, ...
        lines = str(err).strip().splitlines() or [repr(err)]
        raise RuntimeError(f"sbatch refused the array job: {lines[-1]}") from None
    pairs = [(job.command, sub.job_id) for job, sub in zip(todo, submitted)]
    record_jobs(args.folder, args.launcher, pairs)
    array_id = submitted[0].job_id.split("_")[0]
    parallel = min(args.array_parallelism or DEFAULT_PARALLELISM["slurm"], len(todo))
    logs = (log_path(args.folder, array_id) if len(todo) == 1 else
            f"{log_path(args.folder, f'{array_id}_<i>')}  (i = 0..{len(todo) - 1})")
    print(f"launch: submitted SLURM array job {array_id} ({len(todo)} jobs, at most {parallel} at a time)\n"
          f"  watch:  squeue -j {array_id}   |   sacct -j {array_id} --format=JobID,State,Elapsed,ExitCode\n"
          f"  logs:   {logs}; which job is which: {os.path.join(args.folder, 'submitted.json')}\n"
          f"  cancel: scancel {array_id}; a report of what finished meanwhile: REPORT_ONLY=1 bash "
          f"scripts/reproduce.sh", flush=True)
    return pairs


def run_local(executor: "AutoExecutor", args: argparse.Namespace, todo: Sequence[Job], poll_s: float) -> None:
    """``todo`` through submitit's local executor, ``--array-parallelism`` jobs at a time; returns when all ended."""
    parallelism = args.array_parallelism or DEFAULT_PARALLELISM["submitit-local"]
    pending, running = list(todo), []
    while pending or running:
        while pending and len(running) < parallelism:
            job = pending.pop(0)
            sub = executor.submit(ShellJob(job.number, job.command, os.getcwd()))
            record_jobs(args.folder, args.launcher, [(job.command, sub.job_id)])
            print(f"launch: job {job.number} started on this machine as job {sub.job_id} "
                  f"(log {log_path(args.folder, sub.job_id)})", flush=True)
            running.append(sub)
        time.sleep(poll_s)
        running = [sub for sub in running if not sub.done()]


def wait_until_ended(job_ids: Sequence[Tuple[str, str]], poll_s: float) -> None:
    """Block while any of the (launcher, job id) pairs is queued or running (requeued jobs included)."""
    last = None
    while True:
        active = active_job_ids(job_ids)
        if not active:
            return
        if len(active) != last:
            print(f"launch: {time.strftime('%H:%M')} {len(active)} of {len(job_ids)} jobs queued or running",
                  flush=True)
            last = len(active)
        time.sleep(poll_s)


def launch(args: argparse.Namespace) -> int:
    """Submit the job file's jobs with work left, wait for them, list those not finished; the exit status."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise RuntimeError(f"LAUNCHER={args.launcher} needs submitit: pip install -e .[cluster]") from None
    jobs = read_job_file(args.job_file)
    executor = make_executor(args)
    poll_s = args.poll_s if args.poll_s is not None else POLL_S[args.launcher]
    ledger = read_ledger(args.folder)
    todo, finished, in_flight, blocked = triage(jobs, ledger)
    print(f"launch: {os.path.basename(args.job_file)}: {len(jobs)} jobs, {len(finished)} finished, "
          f"{len(in_flight)} still queued or running, {len(blocked)} cannot run yet, {len(todo)} to submit",
          flush=True)
    for job in in_flight:
        print(f"launch: job {job.number} is still queued or running as job {ledger[job.command]['job_id']}")
    waiting = [(ledger[job.command]["launcher"], ledger[job.command]["job_id"]) for job in in_flight]
    if todo and args.launcher == "slurm":
        waiting += [(args.launcher, job_id) for _, job_id in submit_array(executor, args, todo)]
    elif todo:
        run_local(executor, args, todo, poll_s)
    wait_until_ended(waiting, poll_s)

    ledger = read_ledger(args.folder)
    failed = []
    for job in jobs:
        state = job_state(job.command)
        if not state.finished:
            where = f" (log {log_path(args.folder, ledger[job.command]['job_id'])})" if job.command in ledger else ""
            print(f"[FAILED] job {job.number}: {state.describe()}{where}")
            failed.append(job.number)
    if args.failed_list and failed:
        with open(args.failed_list, "a") as f:
            f.write("".join(f"{number}\n" for number in failed))
    print(f"launch: {len(jobs) - len(failed)} of {len(jobs)} jobs finished")
    return 1 if failed else 0


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """0: every job finished; 1: some did not (listed); 2: bad input or submission refused (one line)."""
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
