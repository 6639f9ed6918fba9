"""vae.physical: the coord decoder (Euclidean by construction), its loss terms (overlap,
Chamfer, the LJ energy and gravity terms), denoising, save/load, every prior, and that the
overlap penalty and the energy term work in short trainings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mcsim.config import SimConfig
from mcsim.potentials import Potential, pair_energy, particle_energy, total_energy
from mcsim.run import run_simulation
from pipelines.generate import (
    GenerateConfig,
    fit_priors,
    generate_configurations,
    training_latents,
)
from vae.checkpoint import CheckpointError, load_model
from vae.config import (
    ConfigError,
    DataConfig,
    LossConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from vae.loss import vae_loss
from vae.models import build_model
from vae.physical import (
    LJ_CUTOFF,
    align_rigid,
    box_loss,
    energy_distribution_loss,
    energy_loss,
    gravity_loss,
    height_distribution_loss,
    overlap_penalty,
    pair_distance_matrix,
    pair_distribution_loss,
    pair_energy_sum,
    particle_energies,
    planar_coordinates,
    row_chamfer,
    soft_lj,
    sorted_rows,
    wasserstein_1d,
)
from vae.priors import PRIORS, GammaInterpolationWarning
from vae.training import prepare_data, train

N, BOX = 12, 6.0
SCALE = BOX * np.sqrt(2.0)  # the study scaling: input units -> sigma


def _cfg(gamma_in=False, epochs=2, seed=0, arch="coord", **loss):
    small = {"hidden": (64, 64)} if arch == "coord" else {
        "hidden": (32,), "embed_dim": 4, "pair_hidden": (8,)}
    return RunConfig(DataConfig(), ModelConfig(arch=arch, latent_dim=4, channels=(4, 8),
                                               decoder_gamma=gamma_in, **small),
                     LossConfig(weight=1e-3, **loss),
                     TrainConfig(epochs=epochs, batch_size=32, lr=3e-3, seed=seed, patience=0))


def small_lj_dataset(path):
    """2 x 150 short MC runs (300 sweeps from uniform starts) of 12 LJ particles in a
    6 x 6 box, written to ``path``: dense enough that a decoder can put pairs too
    close."""
    sim = SimConfig(n_particles=N, box=BOX, gammas=(0.4, 1.0), n_samples=150, sweeps=300,
                    seed=0)
    run_simulation(sim, path, n_threads=1, n_traces=0, check_samples=0, progress=False)
    return path


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """:func:`small_lj_dataset` in a temporary directory."""
    return small_lj_dataset(tmp_path_factory.mktemp("phys") / "small.h5")


def _gram_residual(d: np.ndarray) -> np.ndarray:
    """Spectral weight of the double-centred Gram matrix outside its top two eigenvalues."""
    n = d.shape[-1]
    j = np.eye(n) - 1.0 / n
    g = -0.5 * j @ (d.astype(np.float64) ** 2) @ j
    ev = np.sort(np.abs(np.linalg.eigvalsh(g)), axis=-1)[:, ::-1]
    return ev[:, 2:].sum(-1) / ev.sum(-1)


@pytest.mark.parametrize("arch", ["coord", "pair2d"])
@pytest.mark.parametrize("gamma_in", [False, True])
def test_decoded_matrices_are_2d_euclidean_symmetric_zero_diagonal(gamma_in, arch):
    model = build_model(_cfg(gamma_in, arch=arch), N, BOX).eval()
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        d = model.decode(z, torch.full((64,), 0.7) if gamma_in else None)[:, 0].numpy()
    assert d.shape == (64, N, N)
    assert np.array_equal(d, np.swapaxes(d, 1, 2))
    assert np.all(np.diagonal(d, axis1=1, axis2=2) == 0)
    res = _gram_residual(d)
    assert res.max() < 1e-5  # float32 round-off (measured ~1e-7)
    # the control: a symmetric, zero-diagonal matrix that is not Euclidean fails this
    noisy = d + np.triu(np.random.default_rng(0).uniform(0, 0.05, d.shape), 1)
    noisy = np.triu(noisy, 1) + np.swapaxes(np.triu(noisy, 1), 1, 2)
    assert _gram_residual(noisy).min() > 1e-4


@pytest.mark.parametrize("arch", ["coord", "pair2d"])
def test_decoder_with_gamma_needs_it_and_uses_it(arch):
    model = build_model(_cfg(True, arch=arch), N, BOX).eval()
    z = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="gamma"):
        model.decode(z)
    with torch.no_grad():
        a, b = model.decode(z, 0.1), model.decode(z, 1.0)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("arch", ["coord", "pair2d"])
def test_every_parameter_gets_a_gradient(arch):
    cfg = _cfg(True, arch=arch, overlap_weight=1.0, chamfer_weight=1.0, energy_weight=1.0,
               gravity_weight=1.0)
    model = build_model(cfg, N, BOX)
    rng = np.random.default_rng(0)
    c = torch.as_tensor(rng.uniform(0, 1 / np.sqrt(2), (8, N, 2)), dtype=torch.float32)
    x = pair_distance_matrix(c).unsqueeze(1)
    g = torch.rand(8)
    out = model(x, gamma=g)
    parts = vae_loss(out, x, cfg.loss, scale=SCALE, coords=c, gamma=g)
    parts.total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_overlap_penalty_matches_a_direct_sum(rng):
    pos = rng.uniform(0, 3, (5, N, 2))
    d = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)
    want = np.mean([sum(max(0.95 - d[b, i, j], 0) ** 2 for i in range(N)
                        for j in range(i + 1, N)) for b in range(5)])
    got = overlap_penalty(torch.as_tensor(d), 0.95).item()
    assert got == pytest.approx(want, rel=1e-12)
    assert overlap_penalty(torch.as_tensor(d * 100), 0.95).item() == 0.0


def test_planar_coordinates_recover_a_2d_configuration(rng):
    pos = torch.as_tensor(rng.uniform(0, 1, (6, N, 2)))
    d = pair_distance_matrix(pos)
    start = torch.linalg.qr(torch.as_tensor(rng.standard_normal((N, 2))))[0]
    x = planar_coordinates(d, start, iterations=8)
    assert torch.allclose(pair_distance_matrix(x), d, atol=1e-10)
    # a matrix with a 3D component is not reproduced: the projection is not trivial
    p3 = torch.as_tensor(rng.uniform(0, 1, (6, N, 3)))
    d3 = torch.cdist(p3, p3)
    assert (pair_distance_matrix(planar_coordinates(d3, start)) - d3).abs().max() > 0.05


def test_pair_distance_matrix_has_finite_gradients_for_coincident_points():
    c = torch.zeros(1, 3, 2, requires_grad=True)
    pair_distance_matrix(c).sum().backward()
    assert torch.isfinite(c.grad).all()


@pytest.mark.parametrize("seed", range(5))
def test_row_chamfer_is_invariant_under_slot_permutations(seed):
    rng = np.random.default_rng(seed)
    pa, pb = rng.uniform(0, 1, (2, 4, N, 2))
    da = pair_distance_matrix(torch.as_tensor(pa))
    db = pair_distance_matrix(torch.as_tensor(pb))
    perm = torch.as_tensor(rng.permutation(N))
    da_p = da[:, perm][:, :, perm]
    base = row_chamfer(da, db).item()
    assert base > 0
    assert row_chamfer(da_p, db).item() == pytest.approx(base, rel=1e-12)
    assert row_chamfer(db, da_p).item() == pytest.approx(base, rel=1e-12)
    assert row_chamfer(da_p, da).item() == pytest.approx(0.0, abs=1e-15)
    # the sorted-matrix MSE is not invariant: the property is not trivially true
    assert torch.mean((da_p - da) ** 2).item() > 1e-3
    # a rigid motion changes nothing either (frame independence)
    rot = np.array([[np.cos(1.0), -np.sin(1.0)], [np.sin(1.0), np.cos(1.0)]])
    dr = pair_distance_matrix(torch.as_tensor(pa @ rot.T + 0.3))
    assert row_chamfer(dr, db).item() == pytest.approx(base, rel=1e-9)
    assert sorted_rows(da).shape == (4, N, N - 1)


def _lattice_configurations(rng, m: int, spacing: float = 1.25, jitter: float = 0.1):
    """(m, N, 2) jittered square-lattice configurations, every pair > 1 sigma apart."""
    k = int(np.ceil(np.sqrt(N)))
    grid = np.stack(np.meshgrid(np.arange(k), np.arange(k)), -1).reshape(-1, 2)[:N]
    pos = grid * spacing + 0.3 + rng.uniform(-jitter, jitter, (m, N, 2))
    return pos


def test_soft_lj_is_mcsim_lj_above_the_clip_and_linear_below():
    r = np.concatenate([np.linspace(0.9, 3.5, 261), [LJ_CUTOFF - 1e-9, LJ_CUTOFF]])
    got = soft_lj(torch.as_tensor(r), r_clip=0.9).numpy()
    want = pair_energy(r, Potential("lj", cutoff=LJ_CUTOFF))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert soft_lj(torch.tensor(2 ** (1 / 6), dtype=torch.float64)).item() == pytest.approx(-1.0)
    # below the clip: the tangent at r_clip (value and slope continuous), finite at r = 0
    rc = 0.9
    du = (-48 * rc ** -13 + 24 * rc ** -7)
    below = torch.as_tensor([0.0, 0.3, 0.6, 0.8999], dtype=torch.float64)
    np.testing.assert_allclose(soft_lj(below, rc).numpy(),
                               pair_energy(rc, Potential()) + du * (below.numpy() - rc),
                               rtol=1e-12)
    r0 = torch.tensor([rc - 1e-7, rc + 1e-7], dtype=torch.float64, requires_grad=True)
    soft_lj(r0, rc).sum().backward()
    np.testing.assert_allclose(r0.grad.numpy(), [du, du], rtol=1e-5)
    # no cutoff: the tail beyond 3 sigma counts
    assert soft_lj(torch.tensor(3.5, dtype=torch.float64), cutoff=None).item() == \
        pytest.approx(4 * (3.5 ** -12 - 3.5 ** -6), rel=1e-12)


def test_pair_energy_of_a_matrix_equals_mcsim_energy(rng):
    """U_pair of the distance matrix = mcsim's total energy at gamma = 0 (all pairs above
    the clip), e_i = mcsim's particle energy, sum e_i = 2 U_pair."""
    pos = _lattice_configurations(rng, 6)
    d = pair_distance_matrix(torch.as_tensor(pos))
    assert d[:, ~torch.eye(N, dtype=torch.bool)].min() > 1.0
    pot = Potential("lj", cutoff=LJ_CUTOFF)
    np.testing.assert_allclose(pair_energy_sum(d).numpy(), total_energy(pos, 0.0, pot),
                               rtol=1e-12)
    e = particle_energies(d).numpy()
    np.testing.assert_allclose(e[2], [particle_energy(pos[2], i, 0.0, pot) for i in range(N)],
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(e.sum(1), 2 * pair_energy_sum(d).numpy(), rtol=1e-12)
    # (B, 1, N, N) inputs are accepted, as the decoders give them
    assert torch.equal(pair_energy_sum(d.unsqueeze(1)), pair_energy_sum(d))


def test_energy_loss_modes_have_their_formulas(rng):
    pos = _lattice_configurations(rng, 4)
    d = pair_distance_matrix(torch.as_tensor(pos))
    d_hat = pair_distance_matrix(torch.as_tensor(pos * 1.05))
    kt = 0.75

    def rho(x):  # the robust square: x^2 for small x, 2 |x| for large
        return 2 * (np.sqrt(1 + x * x) - 1)

    assert rho(1e-4) == pytest.approx(1e-8, rel=1e-6) and rho(1e4) == pytest.approx(2e4, 1e-3)
    u, u_hat = pair_energy_sum(d).numpy(), pair_energy_sum(d_hat).numpy()
    assert energy_loss(d, d, "match").item() == 0.0
    assert energy_loss(d_hat, d, "match", kt).item() == pytest.approx(
        np.mean(rho((u_hat - u) / (N * kt))), rel=1e-12)
    e, e_hat = particle_energies(d).numpy(), particle_energies(d_hat).numpy()
    assert energy_loss(d_hat, d, "particle", kt).item() == pytest.approx(
        np.mean(rho((e_hat - e) / kt)) / N, rel=1e-12)
    assert energy_loss(d_hat, d, "boltzmann", kt).item() == pytest.approx(
        np.mean(u_hat / (N * kt)), rel=1e-12)
    with pytest.raises(ValueError, match="mode"):
        energy_loss(d, d, "free")


@pytest.mark.parametrize("mode", ["match", "particle", "boltzmann"])
def test_energy_loss_gradient_is_finite_for_coincident_points(mode):
    c = torch.zeros(2, N, 2, dtype=torch.float64, requires_grad=True)
    c_true = torch.as_tensor(_lattice_configurations(np.random.default_rng(0), 2))
    loss = energy_loss(pair_distance_matrix(c), pair_distance_matrix(c_true), mode)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(c.grad).all()
    # a half-overlapping configuration: finite, and the gradient pushes the pair apart
    c2 = c_true.clone()
    c2[:, 1] = c2[:, 0] + torch.tensor([0.2, 0.0], dtype=torch.float64)
    c2.requires_grad_(True)
    energy_loss(pair_distance_matrix(c2), pair_distance_matrix(c_true), "boltzmann").backward()
    assert torch.isfinite(c2.grad).all() and c2.grad[0, 1, 0] < 0 < c2.grad[0, 0, 0]


@pytest.mark.parametrize("seed", range(4))
def test_align_rigid_undoes_rotations_reflections_and_translations(seed):
    rng = np.random.default_rng(seed)
    c = torch.as_tensor(rng.uniform(0, 6, (3, N, 2)))
    th = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    for mirror in (np.eye(2), np.diag([1.0, -1.0])):
        moved = c @ torch.as_tensor(rot @ mirror).T + torch.as_tensor(rng.normal(0, 5, 2))
        assert torch.allclose(align_rigid(moved, c), c, atol=1e-10)
        g = torch.tensor([0.1, 0.7, 1.0], dtype=torch.float64)
        assert gravity_loss(moved, c, g).item() == pytest.approx(0.0, abs=1e-20)
    # a shape change is not undone: a configuration squashed to half its height costs
    # (its energy above the lowest particle is about halved, ~N * 1.5 sigma of ~N * 3)
    flat = c * torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert gravity_loss(flat, c, 1.0).item() > 0.5


def test_gravity_loss_gradient_is_finite_for_coincident_points():
    c = torch.zeros(1, N, 2, dtype=torch.float64, requires_grad=True)
    c_true = torch.as_tensor(_lattice_configurations(np.random.default_rng(1), 1))
    gravity_loss(c, c_true, torch.ones(1)).backward()
    assert torch.isfinite(c.grad).all()


@pytest.mark.parametrize("seed", range(3))
def test_wasserstein_1d_equals_scipy(seed):
    from scipy.stats import wasserstein_distance

    r = np.random.default_rng(seed)
    a, b = r.normal(0, 1, 500), r.gamma(2.0, 1.0, 500)
    w = wasserstein_1d(torch.as_tensor(a), torch.as_tensor(b)).item()
    assert w == pytest.approx(wasserstein_distance(a, b), rel=1e-12)
    with pytest.raises(ValueError, match="equal size"):
        wasserstein_1d(torch.zeros(3), torch.zeros(4))


def _distribution_batch(seed, b=8):
    r = np.random.default_rng(seed)
    c = torch.as_tensor(r.uniform(0, 8, (b, N, 2)))
    c_hat = c + torch.as_tensor(r.normal(0, 0.4, c.shape))
    g = torch.as_tensor(np.repeat([0.1, 0.4, 0.7, 1.0], b // 4))
    return c_hat, c, g


@pytest.mark.parametrize("seed", range(4))
def test_pair_distribution_loss_is_w1_per_gamma_and_permutation_invariant(seed):
    """The batch W1 of pair distances: scipy's W1 of each gamma's pooled distances,
    weighted by the group sizes; unchanged under permuting the slots of any
    configuration or the configurations within a gamma; changed when configurations
    move between gammas (it is not pooled over gammas)."""
    from scipy.stats import wasserstein_distance

    c_hat, c, g = _distribution_batch(seed)
    d_hat, d = pair_distance_matrix(c_hat), pair_distance_matrix(c)
    loss = pair_distribution_loss(d_hat, d, g).item()
    iu = np.triu_indices(N, 1)
    ref = np.mean([wasserstein_distance(d_hat[g == gv][:, iu[0], iu[1]].ravel().numpy(),
                                        d[g == gv][:, iu[0], iu[1]].ravel().numpy())
                   for gv in np.unique(g)])
    assert loss == pytest.approx(ref, rel=1e-10)
    r = np.random.default_rng(seed + 100)
    perm_slots = torch.as_tensor(r.permutation(N))
    within = torch.as_tensor(np.concatenate([r.permutation(2) + 2 * k for k in range(4)]))
    c_perm = c_hat[within][:, perm_slots]
    assert pair_distribution_loss(pair_distance_matrix(c_perm), d, g).item() == \
        pytest.approx(loss, rel=1e-10)
    assert pair_distribution_loss(d, d, g).item() == 0.0
    across = torch.as_tensor(np.roll(np.arange(8), 2))
    assert pair_distribution_loss(d_hat[across], d, g).item() != pytest.approx(loss, rel=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_height_distribution_loss_ignores_the_decoded_frame(seed):
    """Zero for a rigidly moved (rotated, reflected, translated) copy of the true
    positions; scipy's W1 of the heights above the lowest particle otherwise."""
    from scipy.stats import wasserstein_distance

    c_hat, c, g = _distribution_batch(seed)
    r = np.random.default_rng(seed)
    th = r.uniform(0, 2 * np.pi)
    rot = torch.as_tensor([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    moved = (c * torch.as_tensor([-1.0, 1.0])) @ rot.T + torch.as_tensor(r.normal(0, 5, 2))
    assert height_distribution_loss(moved, c, g).item() == pytest.approx(0.0, abs=1e-9)
    y_hat = align_rigid(c_hat, c)[..., 1]
    h_hat = (y_hat - y_hat.min(1, keepdim=True).values).numpy()
    h = (c[..., 1] - c[..., 1].min(1, keepdim=True).values).numpy()
    ref = np.mean([wasserstein_distance(h_hat[g == gv].ravel(), h[g == gv].ravel())
                   for gv in np.unique(g)])
    assert height_distribution_loss(c_hat, c, g).item() == pytest.approx(ref, rel=1e-10)


def test_energy_distribution_loss_is_w1_of_mcsim_energies_per_gamma(rng):
    """W1 of the configurations' LJ pair energies per particle (mcsim's energies on
    configurations without close pairs), per gamma, weighted by the group sizes."""
    from scipy.stats import wasserstein_distance

    pot = Potential("lj", cutoff=LJ_CUTOFF)
    a, b = _lattice_configurations(rng, 8), _lattice_configurations(rng, 8, jitter=0.2)
    g = np.repeat([0.4, 1.0], 4)
    u_a, u_b = total_energy(a, 0.0, pot) / N, total_energy(b, 0.0, pot) / N
    ref = np.mean([wasserstein_distance(u_a[g == v], u_b[g == v]) for v in (0.4, 1.0)])
    da = pair_distance_matrix(torch.as_tensor(a))
    db = pair_distance_matrix(torch.as_tensor(b))
    got = energy_distribution_loss(da, db, torch.as_tensor(g)).item()
    assert got == pytest.approx(ref, rel=1e-9)
    assert energy_distribution_loss(da, da[torch.as_tensor([1, 0, 3, 2, 5, 4, 7, 6])],
                                    torch.as_tensor(g)).item() == pytest.approx(0, abs=1e-12)


def test_box_loss_is_zero_inside_and_the_squared_overhang_outside(rng):
    """Aligned copies of configurations inside the box cost nothing, whatever the
    decoded frame; moving one particle d sigma past a wall costs d^2 (the alignment of
    the other particles barely moves for small d, so compare with the direct sum)."""
    c = torch.as_tensor(rng.uniform(0.5, BOX - 0.5, (4, N, 2)))
    th = 0.7
    rot = torch.as_tensor([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    assert box_loss(c @ rot.T + 3.0, c, BOX).item() == pytest.approx(0.0, abs=1e-20)
    out = c.clone()
    out[:, 0, 0] = -0.8  # a particle 0.8 sigma beyond the left wall
    a = align_rigid(out, c)
    direct = (torch.relu(-a).pow(2) + torch.relu(a - BOX).pow(2)).sum((1, 2)).mean()
    assert box_loss(out, c, BOX).item() == pytest.approx(direct.item(), rel=1e-12)
    assert box_loss(out, c, BOX).item() > 0.1


def test_distribution_losses_give_finite_gradients():
    c_hat, c, g = _distribution_batch(0)
    c_hat = c_hat.clone().requires_grad_()
    c_hat.data[0, 1] = c_hat.data[0, 0]  # coincident points
    d_hat, d = pair_distance_matrix(c_hat), pair_distance_matrix(c)
    loss = pair_distribution_loss(d_hat, d, g) + height_distribution_loss(c_hat, c, g) \
        + energy_distribution_loss(d_hat, d, g)
    loss.backward()
    assert torch.isfinite(c_hat.grad).all() and c_hat.grad.abs().sum() > 0


def test_physics_terms_are_validated():
    with pytest.raises(ConfigError, match="loss.overlap_weight"):
        LossConfig(overlap_weight=-1.0)
    with pytest.raises(ConfigError, match="loss.energy_weight"):
        LossConfig(energy_weight=-1.0)
    with pytest.raises(ConfigError, match="loss.energy_mode"):
        LossConfig(energy_mode="free")
    with pytest.raises(ConfigError, match="loss.energy_clip"):
        LossConfig(energy_clip=0.0)
    with pytest.raises(ConfigError, match="loss.gravity_weight"):
        RunConfig(DataConfig(), ModelConfig(arch="pair"), LossConfig(gravity_weight=1.0))
    RunConfig(DataConfig(), ModelConfig(arch="coord"), LossConfig(gravity_weight=1.0))
    with pytest.raises(ConfigError, match="loss.pr_weight"):
        LossConfig(pr_weight=float("nan"))
    with pytest.raises(ConfigError, match="loss.height_weight"):
        RunConfig(DataConfig(), ModelConfig(arch="pair"), LossConfig(height_weight=1.0))
    with pytest.raises(ConfigError, match="p\\(r\\)"):
        RunConfig(DataConfig(representation="coords"), ModelConfig(arch="fc"),
                  LossConfig(pr_weight=0.1))
    with pytest.raises(ValueError, match="height term"):
        cfg = _cfg(height_weight=1.0)
        model = build_model(cfg, N, BOX)
        x = torch.rand(2, 1, N, N)
        vae_loss(model(x), x, cfg.loss, scale=SCALE)
    with pytest.raises(ConfigError, match="loss.placed_height_weight"):
        RunConfig(DataConfig(), ModelConfig(arch="pair"),
                  LossConfig(placed_height_weight=1.0))
    with pytest.raises(ConfigError, match="loss.placed_height_weight"):
        LossConfig(placed_height_weight=-0.1)
    with pytest.raises(ConfigError, match="loss.placed_height_draws"):
        LossConfig(placed_height_draws=0)
    with pytest.raises(ValueError, match="placed height term"):
        cfg = _cfg(placed_height_weight=1.0)
        model = build_model(cfg, N, BOX)
        x = torch.rand(2, 1, N, N)
        vae_loss(model(x), x, cfg.loss, scale=SCALE)
    with pytest.raises(ValueError, match="gravity term"):
        cfg = _cfg(gravity_weight=1.0)
        model = build_model(cfg, N, BOX)
        x = torch.rand(2, 1, N, N)
        vae_loss(model(x), x, cfg.loss, scale=SCALE)
    with pytest.raises(ConfigError, match="distance representation"):
        RunConfig(DataConfig(representation="coords"), ModelConfig(arch="fc"),
                  LossConfig(denoise=0.1))
    with pytest.raises(ConfigError, match="decoder_gamma"):
        ModelConfig(arch="pair", decoder_gamma=True)
    with pytest.raises(ConfigError, match="model.arch"):
        RunConfig(DataConfig(representation="grid"), ModelConfig(arch="pair2d"))


@pytest.fixture(scope="module", params=["coord", "pair2d"])
def trained_run(data_file, tmp_path_factory, request):
    """A coord / pair2d VAE with gamma, the overlap, Chamfer and placed-height terms and
    denoising, trained 2 epochs."""
    cfg = _cfg(True, arch=request.param, overlap_weight=1.0, chamfer_weight=1.0,
               denoise=0.05, placed_height_weight=0.1)
    data = prepare_data(cfg, [data_file])
    root = tmp_path_factory.mktemp("phys_run")
    res = train(cfg, data, root / "run", progress=False)
    return res, data, root / "run" / "best.pt"


def test_save_load_reproduces_outputs_exactly(trained_run):
    res, data, path = trained_run
    tv = load_model(path)
    x = data.x[data.split.test]
    g = data.gamma[data.split.test]
    with torch.no_grad():
        xt = torch.as_tensor(x)
        mu, _ = res.model.encode(xt)
        want = res.model.decode(mu, torch.as_tensor(g, dtype=torch.float32)).numpy()
    got = tv.reconstruct(x, gamma=g)
    assert np.array_equal(got, want)
    with pytest.raises(CheckpointError, match="gamma"):
        tv.reconstruct(x)


@pytest.mark.slow
def test_every_prior_generates_with_the_coord_decoder(trained_run):
    _, _, path = trained_run
    tv = load_model(path)
    lat = training_latents(tv)
    cfg = GenerateConfig(gmm_components=2, flow_transforms=1, flow_hidden=(16,),
                         flow_epochs=2)
    priors = fit_priors(PRIORS, lat, cfg)
    for name, prior in priors.items():
        for gamma in (0.4, 1.0):
            gen = generate_configurations(tv, prior, 20, gamma, seed=3,
                                          potential=lat.potential)
            assert gen.positions.shape == (20, N, 2), name
            assert np.all(np.isfinite(gen.positions)) and np.all(np.isfinite(gen.energy))
            assert gen.residual.max() < 1e-5, name  # exact matrices: Gram at round-off
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GammaInterpolationWarning)
        mid = generate_configurations(tv, priors["flow"], 5, 0.7, seed=0)
    assert mid.positions.shape == (5, N, 2)
    with pytest.raises(CheckpointError, match="gamma"):  # mixture: no single gamma
        generate_configurations(tv, priors["buffer"], 5, None, seed=0, placement="lowest")


def test_direct_path_places_the_shapes_of_the_gram_path(trained_run, monkeypatch):
    """Decoded positions -> placement (the generation path of these models) against
    decoded distances -> Gram embedding -> placement: the same shapes (pair distances
    to float32 round-off), the same ``lowest`` placements, the same law of the
    ``thermal`` placement (COM height and width: means within 4 standard errors of
    the difference; the rigid frames differ, so the seeded draws do), and
    generate_configurations never takes the Gram path."""
    from pipelines.generate import sampling
    from reconstruct.pipeline import reconstruct_configurations
    from reconstruct.placement import place

    _, _, path = trained_run
    tv = load_model(path)
    assert tv.places_particles
    lat = training_latents(tv)
    g = 0.4
    z = lat.mu_train[lat.gamma_train == g]
    z = np.concatenate([z] * (3000 // len(z) + 1))[:3000]
    z = z + 0.05 * np.random.default_rng(2).standard_normal(z.shape)  # distinct shapes
    m = len(z)
    coords = tv.decode_positions(z, gamma=g)
    d = tv.decode_distances(z, gamma=g)
    assert coords.shape == (m, N, 2) and coords.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(coords[:, :, None] - coords[:, None], axis=-1),
                               d, rtol=0, atol=1e-5 * BOX)
    box = 3 * BOX  # a box the 2-epoch model's shapes fit in
    low_direct = place(coords, box, "lowest")
    low_gram = reconstruct_configurations(d, box, placement="lowest").tumbled
    both = low_direct.fits & low_gram.fits  # (a window narrower than a bin may be
    assert both.mean() > 0.9  # missed in one frame and not the other)
    assert (low_direct.fits != low_gram.fits).mean() < 0.02
    np.testing.assert_allclose(low_direct.com_height[both], low_gram.com_height[both],
                               rtol=0, atol=1e-5 * BOX)
    same = np.abs(low_direct.positions - low_gram.positions).max(axis=(1, 2)) < 1e-4 * BOX
    assert same[both].mean() > 0.99, same[both].mean()
    kw = {"gamma": g, "temperature": 1.0, "seed": 4}
    th_direct = place(coords, box, "thermal", **kw)
    th_gram = reconstruct_configurations(d, box, placement="thermal", **kw).tumbled
    iu = np.triu_indices(N, 1)
    for t in (th_direct, th_gram):
        r = np.linalg.norm(t.positions[:, iu[0]] - t.positions[:, iu[1]], axis=-1)
        np.testing.assert_allclose(r, d[:, iu[0], iu[1]], rtol=0, atol=1e-5 * BOX)
    assert not np.allclose(th_direct.theta, th_gram.theta)  # independent draws
    for name in ("com_height", "width"):
        a, b = getattr(th_direct, name), getattr(th_gram, name)
        se = np.sqrt(a.var() / m + b.var() / m)
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)

    def no_gram(*args, **kwargs):
        raise AssertionError("the Gram path was taken")

    monkeypatch.setattr(sampling, "reconstruct_configurations", no_gram)
    prior = fit_priors(("buffer",), lat, GenerateConfig())["buffer"]
    gen = generate_configurations(tv, prior, 50, g, seed=1)
    assert gen.positions.shape == (50, N, 2) and np.all(gen.residual == 0)
    inside = ((gen.positions >= 0) & (gen.positions <= BOX)).all(axis=(1, 2))
    assert np.all(inside[~gen.outside])  # flagged where a shape does not fit
    r = np.linalg.norm(gen.positions[:, :, None] - gen.positions[:, None], axis=-1)
    np.testing.assert_allclose(gen.min_distance, r[:, iu[0], iu[1]].min(1), rtol=1e-12)


def _overlap_fraction(cfg, data, tmp_path, name):
    res = train(cfg, data, tmp_path / name, progress=False)
    te = data.split.test
    with torch.no_grad():
        mu, _ = res.model.encode(torch.as_tensor(data.x[te]))
        d = res.model.decode(mu)[:, 0].numpy() * SCALE
    iu = np.triu_indices(N, 1)
    return float((d[:, iu[0], iu[1]].min(1) < 0.8).mean())


def test_overlap_penalty_removes_overlaps_in_a_short_training(data_file, tmp_path):
    """Fraction of decoded test configurations with a pair closer than 0.8 sigma after
    15 epochs. Measured (seeds 0, 1, 2): MSE only 0.77, 0.32, 0.57 (mean 0.55, sd 0.23);
    with the penalty (weight 1) 0.00 for all three. Two seeds per arm: the difference of
    the means has sd ~0.23 / sqrt(2) = 0.16 from the MSE arm, so it must exceed 2 sd."""
    torch.set_num_threads(1)
    fr = {}
    for ow in (0.0, 1.0):
        fr[ow] = [
            _overlap_fraction(_cfg(epochs=15, seed=s, overlap_weight=ow),
                              prepare_data(_cfg(), [data_file]), tmp_path, f"r{ow}_{s}")
            for s in (0, 1)]
    assert np.mean(fr[0.0]) - np.mean(fr[1.0]) > 0.32, fr
    assert max(fr[1.0]) <= 0.05, fr


def _energy_error(cfg, data, tmp_path, name):
    """Mean |U^ - U| / N (epsilon; soft-core LJ, clip 0.9 sigma) and the overlap fraction
    of the decoded test configurations, z = mu_z."""
    res = train(cfg, data, tmp_path / name, progress=False)
    te = data.split.test
    with torch.no_grad():
        x = torch.as_tensor(data.x[te])
        mu, _ = res.model.encode(x)
        d = res.model.decode(mu) * SCALE
        err = ((pair_energy_sum(d) - pair_energy_sum(x * SCALE)).abs() / N).mean().item()
    dd = d[:, 0].numpy()
    iu = np.triu_indices(N, 1)
    return err, float((dd[:, iu[0], iu[1]].min(1) < 0.8).mean())


def test_energy_term_lowers_the_energy_error_in_a_short_training(data_file, tmp_path):
    """|U^ - U| / N of decoded test configurations after 15 epochs, energy term (match,
    weight 1) against MSE alone. Measured (seeds 0, 1, 2): MSE only 3.17, 1.22, 3.00
    (mean 2.46, sd 1.08), overlaps 0.77, 0.32, 0.57; with the term 0.15, 0.24, 0.15 (sd
    0.05), overlaps 0 (test MSE 0.017 -> 0.028-0.033). Three seeds per arm: the difference of
    the means has sd ~1.08 / sqrt(3) = 0.62, so it must exceed 2 sd = 1.25."""
    torch.set_num_threads(1)
    data = prepare_data(_cfg(), [data_file])
    res = {w: [_energy_error(_cfg(epochs=15, seed=s, energy_weight=w), data, tmp_path,
                             f"e{w}_{s}") for s in (0, 1, 2)] for w in (0.0, 1.0)}
    err = {w: [r[0] for r in v] for w, v in res.items()}
    assert np.mean(err[0.0]) - np.mean(err[1.0]) > 1.25, res
    assert max(err[1.0]) < min(err[0.0]), res
    assert max(r[1] for r in res[1.0]) <= 0.05, res


def _decoded_pr_w1(cfg, data, tmp_path, name):
    """W1 (sigma) between the pair distances of decoded (z = mu_z) and true test
    configurations, per gamma, averaged over the gammas (scipy's W1)."""
    from scipy.stats import wasserstein_distance

    res = train(cfg, data, tmp_path / name, progress=False)
    te = data.split.test
    g = data.gamma[te]
    with torch.no_grad():
        x = torch.as_tensor(data.x[te])
        mu, _ = res.model.encode(x)
        d = res.model.decode(mu, gamma=torch.as_tensor(g, dtype=torch.float32))
    d, xt = d[:, 0].numpy() * SCALE, x[:, 0].numpy() * SCALE
    iu = np.triu_indices(N, 1)
    return float(np.mean([wasserstein_distance(d[g == v][:, iu[0], iu[1]].ravel(),
                                               xt[g == v][:, iu[0], iu[1]].ravel())
                          for v in np.unique(g)]))


def test_pair_distribution_term_brings_decoded_p_of_r_to_the_data_in_a_short_training(
        data_file, tmp_path):
    """p(r) W1 of decoded test configurations after 15 epochs (coord, gamma to the
    decoder, overlap penalty 0.3), the p(r) term of weight 1 against none. Measured
    (seeds 0, 1, 2): without 0.209, 0.242, 0.188 (sd 0.027); with 0.054, 0.050, 0.062.
    Two seeds per arm: the difference of the means has sd ~0.027 / sqrt(2) = 0.02 from
    the arm without, so it must exceed 4 sd = 0.08 (measured 0.17)."""
    torch.set_num_threads(1)
    data = prepare_data(_cfg(), [data_file])
    w1 = {w: [_decoded_pr_w1(_cfg(True, epochs=15, seed=s, overlap_weight=0.3, pr_weight=w),
                             data, tmp_path, f"pr{w}_{s}") for s in (0, 1)] for w in (0.0, 1.0)}
    assert np.mean(w1[0.0]) - np.mean(w1[1.0]) > 0.08, w1
    assert max(w1[1.0]) < min(w1[0.0]), w1


def test_anomaly_pass_of_a_gamma_decoder_takes_the_best_trained_gamma(trained_run):
    """pipelines.anomaly's VAE pass of a decoder that takes gamma: per configuration the
    decoding at the trained gamma with the smallest reconstruction error (x_hat, MSE
    and the chosen gamma agree with decoding at each gamma separately), and the -IWAE
    score uses that gamma."""
    from pipelines.anomaly.scores.base import vae_pass
    from vae.likelihood import iwae_bound

    _, data, path = trained_run
    tv = load_model(path)
    x = data.x[data.split.test]
    vp = vae_pass(tv, x)
    mu, _ = tv.encode(x)
    per = {g: tv.decode(mu, gamma=g) for g in tv.info.gammas}
    err = {g: ((per[g] - x).astype(np.float64) ** 2).reshape(len(x), -1).mean(1) for g in per}
    stack = np.stack([err[g] for g in sorted(per)])
    np.testing.assert_allclose(vp.recon, stack.min(0), rtol=1e-6)
    want = np.array(sorted(per))[stack.argmin(0)]
    np.testing.assert_array_equal(vp.gamma, want)
    for i in range(len(x)):
        np.testing.assert_array_equal(vp.x_hat[i], per[float(vp.gamma[i])][i])
    a = iwae_bound(tv, x[:5], 4, seed=0, gamma=vp.gamma[:5]).score
    from pipelines.anomaly.scores import iwae as iwae_score
    from pipelines.anomaly.scores.base import Batch

    b = Batch(tv, vae_pass(tv, x[:5]), np.zeros((5, 1)), np.zeros((5, N, 2)), x=x[:5])
    np.testing.assert_array_equal(iwae_score.score(4, b), a)
