"""Fixtures shared by the anomaly tests (one quick-trained model per session)."""

from __future__ import annotations

import pytest
import torch

from mcsim import SimConfig, run_simulation
from vae.config import ModelConfig, RunConfig, TrainConfig
from vae.training import prepare_data, set_seed, train


@pytest.fixture(scope="session")
def anomaly_trained(tmp_path_factory):
    """A quick model on 2 x 400 MC configurations (N = 30, L = 10) at gamma 1 and 2:
    the folder holding ``data.h5`` and ``run/best.pt``."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("anomaly")
    sim = SimConfig(gammas=(1.0, 2.0), n_samples=400, sweeps=300, seed=1)
    run_simulation(sim, root / "data.h5", n_threads=1, n_traces=0, check_samples=0,
                   progress=False)
    cfg = RunConfig(model=ModelConfig(latent_dim=8, channels=(8, 16)),
                    train=TrainConfig(epochs=10, lr=3e-3, batch_size=64, patience=0))
    data = prepare_data(cfg, [root / "data.h5"])
    set_seed(0)
    train(cfg, data, root / "run", progress=False)
    return root
