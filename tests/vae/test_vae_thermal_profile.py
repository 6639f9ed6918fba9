"""vae.physical.thermal_profile(_loss): the sorted heights above the lowest particle of a
shape, averaged over orientations with the thermal placement's weights, against the
placement itself (Monte Carlo over many placements); the loss's invariances and
gradients; its configuration checks; and a short training with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_vae_physical import BOX, SCALE, _cfg, small_lj_dataset

from vae.config import ConfigError, DataConfig, LossConfig, ModelConfig, RunConfig
from vae.physical import thermal_profile, thermal_profile_loss
from vae.training import prepare_data, train

T = 0.75


def _shapes(seed: int = 3) -> list[np.ndarray]:
    """A compact and an elongated 30-particle shape (sigma)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(30, 2)) * np.array([1.4, 0.8]),
            rng.normal(size=(30, 2)) * np.array([2.5, 0.6])]


@pytest.mark.parametrize("gamma", [0.4, 1.0])
@pytest.mark.parametrize("which", [0, 1], ids=["compact", "elongated"])
def test_thermal_profile_is_the_mean_profile_of_thermal_placements(gamma, which):
    """On a fine grid (1024 angles) the profile equals the mean sorted heights above the
    lowest particle of 20,000 placements by reconstruct.placement (thermal, exact law)
    within 5 standard errors of that mean plus the grid's 1e-3 sigma (measured: at most
    2.5 standard errors, 0.003 sigma)."""
    from reconstruct.placement import place

    q = _shapes()[which]
    n_draws = 20_000
    res = place(np.repeat(q[None], n_draws, axis=0), 10.0, "thermal", gamma=gamma,
                temperature=T, seed=2)
    assert res.fits.all()
    y = res.positions[..., 1]
    h = np.sort(y - y.min(axis=1, keepdims=True), axis=1)
    mean, se = h.mean(axis=0), h.std(axis=0, ddof=1) / np.sqrt(n_draws)
    prof = thermal_profile(torch.as_tensor(q[None]), gamma, 10.0, T, 1024).numpy()[0]
    assert prof[0] == 0.0
    assert np.all(np.abs(prof - mean) <= 5 * se + 1e-3), np.abs(prof - mean).max()


def test_thermal_profile_loss_invariances_and_gradient():
    """Zero for the true shape itself; unchanged by translating, by rotating through a
    multiple of the grid's step (a permutation of the grid) and by mirroring the
    decoded shape; larger for a decoded shape stretched vertically in every
    orientation (scaled up); finite, non-zero gradients."""
    q = torch.as_tensor(np.stack(_shapes()))
    g = torch.tensor([0.4, 1.0], dtype=torch.float64)
    k = 64
    assert thermal_profile_loss(q, q, g, 10.0, T, k).item() == 0.0
    c_hat = q * 1.05
    base = thermal_profile_loss(c_hat, q, g, 10.0, T, k).item()
    assert base > 0
    a = 2 * np.pi * 5 / k
    rot = torch.tensor([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = c_hat @ rot.T + torch.tensor([3.0, -7.0], dtype=torch.float64)
    assert thermal_profile_loss(moved, q, g, 10.0, T, k).item() == pytest.approx(base,
                                                                                  rel=1e-9)
    mirrored = c_hat * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert thermal_profile_loss(mirrored, q, g, 10.0, T, k).item() == pytest.approx(
        base, rel=1e-9)
    assert thermal_profile_loss(q * 1.2, q, g, 10.0, T, k).item() > base
    c_hat = c_hat.clone().requires_grad_(True)
    thermal_profile_loss(c_hat, q, g, 10.0, T, k).backward()
    assert torch.isfinite(c_hat.grad).all() and c_hat.grad.abs().sum() > 0


def test_thermal_profile_of_a_shape_that_never_fits_is_finite():
    """A 15 sigma rod fits in no orientation of the 10 sigma box: all orientations keep
    their Boltzmann weights (none is singled out), the profile and gradients stay
    finite."""
    rod = torch.as_tensor(np.column_stack([np.linspace(0, 15, 30), np.zeros(30)])[None])
    rod = rod.clone().requires_grad_(True)
    prof = thermal_profile(rod, 0.4, 10.0, T, 64)
    assert torch.isfinite(prof).all()
    prof.sum().backward()
    assert torch.isfinite(rod.grad).all()


def test_thermal_profile_weight_needs_a_decoder_that_places_particles():
    with pytest.raises(ConfigError, match="thermal_profile_weight"):
        RunConfig(DataConfig(), ModelConfig(arch="pair"),
                  LossConfig(thermal_profile_weight=1.0))
    with pytest.raises(ConfigError, match="thermal_profile_weight"):
        LossConfig(thermal_profile_weight=-1.0)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return small_lj_dataset(tmp_path_factory.mktemp("tprof") / "small.h5")


def _profile_mse(cfg, data, tmp_path, name) -> float:
    """Mean squared thermal-profile difference (sigma^2) of decoded test shapes (z = mu)
    against their true shapes, after training ``cfg``."""
    res = train(cfg, data, tmp_path / name, progress=False)
    te = data.split.test
    g = torch.as_tensor(data.gamma[te], dtype=torch.float32)
    with torch.no_grad():
        mu, _ = res.model.encode(torch.as_tensor(data.x[te]))
        c_hat = res.model.decode_coords(mu, g).double() * SCALE
    c = torch.as_tensor(data.positions[te], dtype=torch.float64)
    return thermal_profile_loss(c_hat, c, g.double(), BOX, T, 256).item()


def test_thermal_profile_term_brings_decoded_profiles_to_the_data_in_a_short_training(
        data_file, tmp_path):
    """Thermal-profile error (sigma^2) of decoded test shapes after 15 epochs (coord,
    gamma to the decoder, overlap penalty 0.3), the term of weight 1 against none.
    Measured (seeds 0-3): without 0.348, 0.379, 0.284, 0.340 (sd 0.040); with 0.108,
    0.112, 0.102, 0.090 (sd 0.010). Two seeds per arm: the difference of the means has
    sd ~0.029, so it must exceed 4 sd = 0.12 (measured 0.23)."""
    torch.set_num_threads(1)
    data = prepare_data(_cfg(), [data_file])
    err = {w: [_profile_mse(_cfg(True, epochs=15, seed=s, overlap_weight=0.3,
                                 thermal_profile_weight=w), data, tmp_path, f"tp{w}_{s}")
               for s in (0, 1)] for w in (0.0, 1.0)}
    assert np.mean(err[0.0]) - np.mean(err[1.0]) > 0.12, err
    assert max(err[1.0]) < min(err[0.0]), err
