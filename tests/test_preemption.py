"""Stop signals (DPT_SAVE_ON_SIGNAL): the run saves its last finished epoch, exits 128 + signal, and the same
command resumes to the result of an uninterrupted run. The submitit path end to end is in test_launch.py."""
from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from dpt.engine.checkpoint import load_checkpoint
from dpt.engine.trainer import TrainerX
from dpt.launch.preemption import Preempted, raise_on_signals, stop_signals_from_env
from dpt.reporting.logparse import parse_metric
from dpt.train import main
from helpers import argv

EPOCHS = 4


def _signal_during(monkeypatch, epoch: int, batch: int, signum: int = signal.SIGUSR2) -> None:
    """Send ``signum`` to this process when batch ``batch`` of epoch ``epoch`` (0-based) starts."""
    real = TrainerX.parse_batch_train

    def parse_then_signal(self, data):
        if (self.epoch, self.batch_idx) == (epoch, batch):
            os.kill(os.getpid(), signum)
        return real(self, data)

    monkeypatch.setattr(TrainerX, "parse_batch_train", parse_then_signal)


def test_stop_signal_saves_the_last_finished_epoch_and_the_same_command_resumes_exactly(
        eurosat_root, tiny_clip_path, tmp_path, monkeypatch, capsys):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(argv("CoOp", eurosat_root, full, tiny_clip_path, epochs=EPOCHS)) == 0
    assert sorted(os.listdir(full / "prompt_learner")) == ["checkpoint", f"model.pth.tar-{EPOCHS}"]

    monkeypatch.setenv("DPT_SAVE_ON_SIGNAL", "USR2 TERM")
    _signal_during(monkeypatch, epoch=2, batch=1)  # mid third epoch: epoch 2 is the last finished one
    capsys.readouterr()
    assert main(argv("CoOp", eurosat_root, cut, tiny_clip_path, epochs=EPOCHS)) == 128 + signal.SIGUSR2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "stopped by SIGUSR2 (DPT_SAVE_ON_SIGNAL); run the same command to resume"
    assert "Stopped by SIGUSR2: saved epoch 2/4; the same command resumes the run" in (cut / "log.txt").read_text()
    assert sorted(os.listdir(cut / "prompt_learner")) == ["checkpoint", "model.pth.tar-2"]
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # the handlers are put back

    monkeypatch.undo()
    assert main(argv("CoOp", eurosat_root, cut, tiny_clip_path, epochs=EPOCHS)) == 0
    resumed = sorted(cut.glob("log.txt-*"))[-1].read_text()
    assert "Previous epoch: 2" in resumed and "train from scratch" not in resumed
    assert parse_metric(str(sorted(cut.glob("log.txt-*"))[-1])) == parse_metric(str(full / "log.txt"))
    a = load_checkpoint(str(full / "prompt_learner" / f"model.pth.tar-{EPOCHS}"))["state_dict"]
    b = load_checkpoint(str(cut / "prompt_learner" / f"model.pth.tar-{EPOCHS}"))["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stop_before_the_first_epoch_ends_saves_nothing(eurosat_root, tiny_clip_path, tmp_path, monkeypatch,
                                                        capsys):
    monkeypatch.setenv("DPT_SAVE_ON_SIGNAL", "TERM")
    _signal_during(monkeypatch, epoch=0, batch=0, signum=signal.SIGTERM)
    assert main(argv("CoOp", eurosat_root, tmp_path, tiny_clip_path, epochs=EPOCHS)) == 128 + signal.SIGTERM
    assert "Stopped by SIGTERM: no epoch finished, nothing saved" in (tmp_path / "log.txt").read_text()
    assert not (tmp_path / "prompt_learner").exists()


def test_bad_signal_name_is_one_line_error(eurosat_root, tiny_clip_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPT_SAVE_ON_SIGNAL", "USR2 PREEMPT")
    assert main(argv("CoOp", eurosat_root, tmp_path / "run", tiny_clip_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: environment variable DPT_SAVE_ON_SIGNAL='USR2 PREEMPT': unknown signal 'PREEMPT'; "
                   "expected names such as USR2 TERM"]
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("DPT_SAVE_ON_SIGNAL", "sigusr2, 15")
    assert stop_signals_from_env() == [signal.SIGUSR2, signal.SIGTERM]


def test_only_the_first_signal_and_only_the_installing_process_stop():
    """DataLoader workers are forked with the handler: they ignore the signal; a second signal is ignored too
    (SLURM signals every process of the job, and the launcher passes the signal on once more)."""
    with raise_on_signals([signal.SIGUSR2]):
        child = os.fork()
        if child == 0:  # a forked worker: the signal must not raise here
            try:
                os.kill(os.getpid(), signal.SIGUSR2)
                time.sleep(0.05)
            except BaseException:
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with pytest.raises(Preempted) as stop:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(1)
        assert stop.value.exit_code == 128 + signal.SIGUSR2 and str(stop.value) == "SIGUSR2"
        os.kill(os.getpid(), signal.SIGUSR2)  # ignored
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
