"""Mirror augmentation (``TrainConfig.mirror``): each training configuration replaced by
its mirror image x -> L - x with probability p per step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mcsim.io import write_dataset
from vae.checkpoint import load_checkpoint
from vae.cli import main
from vae.config import ConfigError, DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.training import prepare_data, train

N = 6
BOX = 10.0


def _positions(m=120, seed=0):
    rng = np.random.default_rng(seed)
    gamma = np.repeat([0.1, 0.4, 0.7, 1.0], m // 4)
    pos = rng.uniform(0, BOX, (m, N, 2))
    pos[..., 0] *= 0.3 + 0.7 * rng.uniform(size=(m, 1))  # not mirror-symmetric: x < L/2 more
    pos[..., 1] *= np.exp(-1.5 * gamma)[:, None]
    return pos, gamma


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The toy data and the same configurations mirrored, x -> L - x."""
    d = tmp_path_factory.mktemp("mirror")
    pos, gamma = _positions()
    mirrored = pos.copy()
    mirrored[..., 0] = BOX - mirrored[..., 0]
    write_dataset(d / "toy.h5", pos, gamma, {"box": BOX, "source": "test"})
    write_dataset(d / "toy_mirrored.h5", mirrored, gamma, {"box": BOX, "source": "test"})
    return d / "toy.h5", d / "toy_mirrored.h5"


def _cfg(mirror, epochs=2, arch="pair", **loss):
    model = ModelConfig(arch=arch, latent_dim=3, channels=(4, 8),
                        hidden=(16, 16) if arch == "coord" else None)
    return RunConfig(DataConfig(), model, LossConfig(weight=1e-3, **loss),
                     TrainConfig(epochs=epochs, batch_size=16, lr=1e-2, mirror=mirror))


@pytest.mark.parametrize(("arch", "loss"), [("pair", {}), ("coord", {"gravity_weight": 1.0})])
def test_mirror_one_trains_exactly_on_the_mirror_images(files, tmp_path, arch, loss):
    """p = 1 on the data is training with p = 0 on the mirrored data (same split, same
    batches): the mirrored inputs, and the sorted coordinates the gravity term compares
    with, are those of the mirror images, re-sorted."""
    toy, toy_mirrored = files
    a = prepare_data(_cfg(1.0, arch=arch, **loss), [toy])
    b = prepare_data(_cfg(0.0, arch=arch, **loss), [toy_mirrored])
    assert np.array_equal(a.split.train, b.split.train)
    assert not np.array_equal(a.x[a.split.train], b.x[b.split.train])  # mirroring changes them
    ra = train(_cfg(1.0, arch=arch, **loss), a, tmp_path / "a", progress=False)
    rb = train(_cfg(0.0, arch=arch, **loss), b, tmp_path / "b", progress=False)
    assert [h["train_loss"] for h in ra.history] == [h["train_loss"] for h in rb.history]
    wa = load_checkpoint(tmp_path / "a" / "last.pt").state_dict
    wb = load_checkpoint(tmp_path / "b" / "last.pt").state_dict
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # validation is never mirrored: the same weights, judged on other validation inputs
    assert [h["val_loss"] for h in ra.history] != [h["val_loss"] for h in rb.history]


def test_mirror_half_differs_from_none_and_all(files, tmp_path):
    toy, _ = files
    data = prepare_data(_cfg(0.0), [toy])
    losses = {p: [h["train_loss"] for h in
                  train(_cfg(p), data, tmp_path / str(p), progress=False).history]
              for p in (0.0, 0.5, 1.0)}
    assert losses[0.5] != losses[0.0] and losses[0.5] != losses[1.0]


def test_mirrored_runs_are_deterministic_and_resume_exactly(files, tmp_path):
    """The draws of which configurations are mirrored are part of the saved training
    state: a run resumed after epoch 2 ends where an uninterrupted one does."""
    toy, _ = files
    data = prepare_data(_cfg(0.5), [toy])
    full = train(_cfg(0.5, epochs=4), data, tmp_path / "full", progress=False)
    again = train(_cfg(0.5, epochs=4), data, tmp_path / "again", progress=False)
    train(_cfg(0.5, epochs=2), data, tmp_path / "part", progress=False)
    resumed = train(_cfg(0.5, epochs=4), data, tmp_path / "part", resume=True, progress=False)
    for key in ("train_loss", "val_loss"):
        assert ([h[key] for h in full.history] == [h[key] for h in again.history]
                == [h[key] for h in resumed.history]), key
    a = load_checkpoint(tmp_path / "full" / "last.pt").state_dict
    b = load_checkpoint(tmp_path / "part" / "last.pt").state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "0.5", True])
def test_mirror_out_of_range_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="train.mirror"):
        TrainConfig(mirror=bad)


@pytest.mark.parametrize("bad", ["1.5", "-1", "nan", "half"])
def test_mirror_flag_out_of_range_is_a_one_line_error(files, tmp_path, capsys, bad):
    out = tmp_path / "out"
    assert main(["--data", str(files[0]), "--out", str(out), "--mirror", bad,
                 "--no-progress", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train-vae: error:") and "mirror" in err[0], err
    assert not out.exists()
