"""vae.matching.match_slots and LossConfig.match_slots: decoded particles compared with
the true particles they are matched to (rigid alignment + optimal assignment) instead
of slot by slot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae.config import ConfigError, DataConfig, LossConfig, ModelConfig, RunConfig
from vae.loss import vae_loss
from vae.matching import match_slots, permute_slots
from vae.models import VAEOutput
from vae.physical import align_rigid, pair_distance_matrix


def _configurations(b: int, seed: int) -> torch.Tensor:
    """(b, 30, 2) jittered 6 x 5 lattices (spacing 1.1 sigma, jitter 0.15): no two
    points closer than ~0.6 sigma, so a small perturbation has one right matching."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(6), np.arange(5)), -1).reshape(-1, 2) * 1.1
    c = grid[None] + rng.uniform(-0.15, 0.15, size=(b, 30, 2))
    return torch.as_tensor(c)


def _rigid(c: torch.Tensor, angle: float, flip: bool, shift) -> torch.Tensor:
    rot = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]],
                       dtype=c.dtype)
    if flip:
        c = c * torch.tensor([-1.0, 1.0], dtype=c.dtype)
    return c @ rot.T + torch.tensor(shift, dtype=c.dtype)


def _random_perms(b: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n, generator=g) for _ in range(b)])


@pytest.mark.parametrize("flip", [False, True], ids=["rotated", "mirrored"])
def test_match_slots_undoes_a_permutation_and_a_rigid_motion(flip):
    """Decoded = the true configuration with its slots shuffled, rotated (mirrored),
    shifted and displaced by 0.05 sigma per axis: the matching is the inverse shuffle
    for every configuration."""
    c = _configurations(64, seed=1)
    p = _random_perms(64, 30, seed=2)
    noise = 0.05 * torch.randn(c.shape, generator=torch.Generator().manual_seed(3),
                               dtype=c.dtype)
    c_hat = _rigid(permute_slots(c, p), 2.1, flip, [4.0, -1.0]) + noise
    perm = match_slots(c_hat, c)
    assert torch.equal(perm, torch.argsort(p, dim=1))
    matched = align_rigid(permute_slots(c_hat, perm), c)
    assert (matched - c).norm(dim=-1).max() < 0.25


@pytest.mark.parametrize("seed", range(4))
def test_match_slots_does_not_depend_on_the_slot_order(seed):
    """Property: shuffling the decoded slots leaves the matched decoded configuration
    unchanged, and shuffling the true slots shuffles it the same way, also for decoded
    shapes far from the true ones (0.5 sigma noise, where the matching is ambiguous)."""
    c = _configurations(32, seed=10 + seed)
    gen = torch.Generator().manual_seed(20 + seed)
    c_hat = _rigid(c, 0.3 * seed, seed % 2 == 1, [1.0, 2.0]) \
        + 0.5 * torch.randn(c.shape, generator=gen, dtype=c.dtype)
    matched = permute_slots(c_hat, match_slots(c_hat, c))
    q = _random_perms(32, 30, seed=30 + seed)
    shuffled = permute_slots(c_hat, q)
    assert torch.equal(permute_slots(shuffled, match_slots(shuffled, c)), matched)
    c_q = permute_slots(c, q)
    assert torch.equal(permute_slots(c_hat, match_slots(c_hat, c_q)),
                       permute_slots(matched, q))


def _output(c_hat: torch.Tensor) -> VAEOutput:
    b = c_hat.shape[0]
    zeros = torch.zeros(b, 4, dtype=c_hat.dtype)
    return VAEOutput(pair_distance_matrix(c_hat).unsqueeze(1), zeros, zeros, zeros, None,
                     c_hat)


def test_matched_loss_is_invariant_under_permuting_the_decoded_slots():
    """With match_slots the total loss (reconstruction error and the terms that pair
    particles: gravity, box, thermal profile; the overlap term) does not change when the
    decoded slots are shuffled, while the reported ``recon`` (the sorted-matrix MSE as
    decoded) does; without it the total changes. Gradients reach the decoded positions."""
    scale = 10.0  # input units -> sigma
    c = _configurations(16, seed=5) + 2.0
    gen = torch.Generator().manual_seed(6)
    c_hat = c + 0.2 * torch.randn(c.shape, generator=gen, dtype=c.dtype)
    gamma = torch.full((16,), 0.7, dtype=c.dtype)
    x = pair_distance_matrix(c / scale).unsqueeze(1)
    q = _random_perms(16, 30, seed=7)

    def parts(cfg, decoded):
        return vae_loss(_output(decoded / scale), x, cfg, scale=scale, coords=c / scale,
                        gamma=gamma, box=10.0)

    kw = {"gravity_weight": 0.1, "box_weight": 0.03, "thermal_profile_weight": 0.3,
          "overlap_weight": 0.3}
    on, off = LossConfig(match_slots=True, **kw), LossConfig(**kw)
    a, b = parts(on, c_hat), parts(on, permute_slots(c_hat, q))
    assert b.total.item() == pytest.approx(a.total.item(), rel=1e-9)
    assert b.recon.item() > 10 * a.recon.item()
    gain = parts(off, permute_slots(c_hat, q)).total.item() - parts(off, c_hat).total.item()
    assert gain > 0.5 * (b.recon.item() - a.recon.item())
    leaf = permute_slots(c_hat, q).clone().requires_grad_(True)
    parts(on, leaf).total.backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_match_slots_needs_a_decoder_that_places_particles_and_a_bool():
    with pytest.raises(ConfigError, match="match_slots"):
        RunConfig(DataConfig(), ModelConfig(arch="pair"), LossConfig(match_slots=True))
    with pytest.raises(ConfigError, match="match_slots"):
        LossConfig(match_slots=1)
    c = _configurations(2, seed=0)
    with pytest.raises(ValueError, match="match_slots needs"):
        vae_loss(_output(c), pair_distance_matrix(c).unsqueeze(1),
                 LossConfig(match_slots=True))


def test_train_vae_flag_sets_match_slots(tmp_path):
    """``train-vae --match-slots`` reaches the run config; without it the field stays
    off."""
    from vae.cli import build_parser, config_from_args

    base = ["--data", str(tmp_path / "d.h5"), "--out", str(tmp_path / "run"),
            "--arch", "coord"]
    on, _, _ = config_from_args(build_parser().parse_args([*base, "--match-slots"]))
    off, _, _ = config_from_args(build_parser().parse_args(base))
    assert on.loss.match_slots is True and off.loss.match_slots is False


def test_matched_mse_does_not_count_the_slot_order():
    """vae.training.matched_mse of a 'decoder' that returns each true configuration with
    its slots shuffled and rigidly moved is zero (round-off), while the sorted-matrix
    MSE of the same output is not; a perturbed output scores its perturbation."""
    from vae.training import matched_mse

    c = _configurations(8, seed=4).float() / 10.0
    x = pair_distance_matrix(c).unsqueeze(1)
    shuffled = _rigid(permute_slots(c, _random_perms(8, 30, seed=9)), 1.0, True, [0.3, 0.1])

    class Decoder:
        needs_gamma = False

        def __init__(self, out):
            self.out = out

        def encode(self, xb):
            return torch.arange(xb.shape[0], dtype=torch.float32)[:, None], None

        def decode_coords(self, mu, gamma):
            return self.out[mu[:, 0].long()]

    gamma = torch.zeros(8)
    assert matched_mse(Decoder(shuffled), x, gamma, c) < 1e-10
    assert (pair_distance_matrix(shuffled).unsqueeze(1) - x).pow(2).mean() > 1e-3
    noisy = c + 0.01 * torch.randn(c.shape, generator=torch.Generator().manual_seed(1))
    expected = (pair_distance_matrix(noisy).unsqueeze(1) - x).pow(2).mean().item()
    assert matched_mse(Decoder(noisy), x, gamma, c) == pytest.approx(expected, rel=1e-5)
