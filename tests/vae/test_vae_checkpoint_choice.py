"""The model ``anomaly-test`` and ``generate`` use without ``--checkpoint``: the main
model of the newest run, never a sweep member unless it is the only checkpoint."""

from __future__ import annotations

import os

import pytest

from mcsim.clitools import UserError
from vae.checkpoint import (
    CheckpointError,
    announce_checkpoint,
    default_checkpoint,
    is_sweep_member,
    latest_checkpoint,
)


def _ck(root, rel, t):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    os.utime(p, (t, t))
    return p


def test_a_study_gives_its_train_model_not_the_newer_sweep_runs(tmp_path):
    runs = tmp_path / "runs"
    train = _ck(runs, "study-quick/train/best.pt", 1000)
    sweep = _ck(runs, "study-quick/sweep/ld40_w0.001/best.pt", 2000)
    _ck(runs, "study-quick/sweep/ld10_w0.0001/best.pt", 3000)
    assert is_sweep_member(sweep) and not is_sweep_member(train)
    assert latest_checkpoint(runs) == train
    newer = _ck(runs, "default/best.pt", 1500)  # a train-vae run, newer than the study
    assert latest_checkpoint(runs) == newer


def test_a_lone_sweep_member_is_used_several_are_refused(tmp_path):
    runs = tmp_path / "runs"
    one = _ck(runs, "sw/ld4_w0.1/best.pt", 1000)
    assert latest_checkpoint(runs) == one
    _ck(runs, "sw/ld8_w0.1/best.pt", 1001)
    with pytest.raises(CheckpointError, match="only sweep members"):
        latest_checkpoint(runs)
    with pytest.raises(UserError, match="^--checkpoint: .*only sweep members"):
        default_checkpoint(runs)


def test_the_chosen_model_is_announced(tmp_path, capsys):
    p = _ck(tmp_path / "runs", "r/best.pt", 1000)
    announce_checkpoint("generate", default_checkpoint(tmp_path / "runs"))
    assert capsys.readouterr().err == f"generate: using checkpoint {p}\n"
