"""vae.models and vae.loss: shapes, plausible decoded matrices, gradients, the KL identity."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vae.config import DataConfig, LossConfig, ModelConfig, RunConfig
from vae.data import input_shape
from vae.loss import kl_standard_normal, kl_weight, vae_loss
from vae.models import ConvVAE, PairVAE, StudyConvVAE, build_model, count_parameters

CASES = [  # (representation, arch, N)
    ("distance", "pair", 6),
    ("distance", "pair", 2),  # a single pair
    ("distance", "conv", 6),
    ("distance", "conv", 7),  # not a multiple of the patch size
    ("distance", "study", 6),
    ("distance", "fc", 6),
    ("coords", "fc", 6),
    ("grid", "conv", 6),
    ("grid", "fc", 6),
]


def _cfg(rep, arch, latent=4):
    return RunConfig(DataConfig(representation=rep, grid_cell=1.0),
                     ModelConfig(arch=arch, latent_dim=latent, channels=(4, 8), hidden=(16, 8),
                                 embed_dim=3, pair_hidden=(5, 4)))


@pytest.mark.parametrize(("rep", "arch", "n"), CASES)
def test_output_shapes(rep, arch, n):
    cfg = _cfg(rep, arch)
    model = build_model(cfg, n, 10.0)
    shape = input_shape(cfg.data, n, 10.0)
    x = torch.rand(3, *shape)
    out = model(x)
    assert out.x_hat.shape == x.shape
    assert out.mu_z.shape == out.logvar_z.shape == out.z.shape == (3, 4)
    assert model.decode(torch.randn(5, 4)).shape == (5, *shape)
    assert (out.logits is not None) == (rep == "grid")


@pytest.mark.parametrize("n", [6, 7, 30])
def test_default_decoder_gives_plausible_distance_matrices(n):
    torch.manual_seed(0)
    model = ConvVAE(n, latent_dim=5, channels=(4, 8), d_max=1.0)
    z = 10 * torch.randn(64, 5)  # far from the prior too
    with torch.no_grad():
        d = model.decode(z)[:, 0]
    assert torch.equal(d, d.transpose(1, 2))  # exactly symmetric
    assert torch.all(torch.diagonal(d, dim1=1, dim2=2) == 0)
    assert torch.all(d >= 0) and torch.all(d <= 1.0)


@pytest.mark.parametrize("n", [2, 7, 30])
def test_pair_decoder_gives_plausible_distance_matrices(n):
    torch.manual_seed(0)
    model = PairVAE(n, latent_dim=5, hidden=(16, 8), embed_dim=4, pair_hidden=(8,), d_max=1.5,
                    direct=True)
    z = 10 * torch.randn(64, 5)
    with torch.no_grad():
        d = model.decode(z)[:, 0]
    assert d.shape == (64, n, n)
    assert torch.equal(d, d.transpose(1, 2))
    assert torch.all(torch.diagonal(d, dim1=1, dim2=2) == 0)
    assert torch.all(d >= 0) and torch.all(d <= 1.5)
    assert torch.all(d + torch.eye(n) > 0)  # off-diagonal entries strictly positive


@pytest.mark.parametrize("direct", [False, True])
def test_pair_decoder_matches_its_definition(direct):
    """D_ij = d_max sigmoid(g([e_i + e_j, |e_i - e_j|])), written out pair by pair with the
    unsplit first layer of g, and the encoder reads the upper triangle only."""
    torch.manual_seed(1)
    n, k = 5, 3
    model = PairVAE(n, latent_dim=2, hidden=(6,), embed_dim=k, pair_hidden=(4, 4), d_max=2.0,
                    direct=direct, encoder="mlp")  # the MLP encoder reads the upper triangle
    model.eval()
    z = torch.randn(3, 2, dtype=torch.float64)
    model.double()
    with torch.no_grad():
        d = model.decode(z)[:, 0]
        t = model.trunk(z)
        e = model.embed(t).view(3, n, k)
        e = (e - e.mean(-1, keepdim=True)) / torch.sqrt(e.var(-1, unbiased=False, keepdim=True)
                                                        + model.embed_norm.eps)
        e = e * model.embed_norm.weight + model.embed_norm.bias
        w = torch.cat([model.pair_sum.weight, model.pair_abs.weight, model.pair_sq.weight],
                      dim=1)  # (h, 3k): the unsplit first layer of g
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                dij = e[:, i] - e[:, j]
                f = torch.cat([e[:, i] + e[:, j], dij.abs(), dij ** 2], dim=1)
                logit = model.pair_mlp(f @ w.T + model.pair_abs.bias)[:, 0]
                if direct:
                    a, b = min(i, j), max(i, j)
                    p = a * n - a * (a + 1) // 2 + (b - a - 1)  # row-major upper triangle
                    logit = logit + model.direct(t)[:, p]
                ref = 2.0 * torch.sigmoid(logit)
                torch.testing.assert_close(d[:, i, j], ref, rtol=1e-12, atol=1e-12)
        x = torch.rand(3, 1, n, n, dtype=torch.float64)
        lower = torch.tril(torch.rand(3, 1, n, n, dtype=torch.float64))
        mu_a, _ = model.encode(x)
        mu_b, _ = model.encode(x + lower)  # changes below and on the diagonal are ignored
    torch.testing.assert_close(mu_a, mu_b, rtol=0, atol=0)


@pytest.mark.parametrize(("rep", "arch", "n"), CASES)
def test_every_parameter_gets_a_gradient(rep, arch, n):
    cfg = _cfg(rep, arch)
    model = build_model(cfg, n, 10.0)
    x = torch.rand(4, *input_shape(cfg.data, n, 10.0))
    if rep == "grid":
        x = (x > 0.5).float()
    parts = vae_loss(model(x, generator=torch.Generator().manual_seed(0)), x, cfg.loss,
                     recon=cfg.recon)
    parts.total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_study_architecture_matches_reference_size():
    """docs/reference.md: the study's network has about 4.6 M parameters for N = 30."""
    n_par = count_parameters(StudyConvVAE(30, 40))
    assert 4.55e6 < n_par < 4.7e6


def test_build_model_is_seeded_and_leaves_global_rng_alone():
    cfg = _cfg("distance", "conv")
    state = torch.get_rng_state()
    a, b = build_model(cfg, 6, 10.0, seed=1), build_model(cfg, 6, 10.0, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = build_model(cfg, 6, 10.0, seed=2)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(16, 7, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(16, 7, generator=g, dtype=torch.float64) * 1.5
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)),
                        Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    torch.testing.assert_close(kl_standard_normal(mu, logvar), ref, rtol=1e-12, atol=1e-12)
    assert torch.all(kl_standard_normal(torch.zeros(3), torch.zeros(3)) == 0)


def test_loss_forms_and_warmup():
    torch.manual_seed(0)
    model = build_model(_cfg("distance", "conv"), 6, 10.0)
    x = torch.rand(5, 1, 6, 6)
    out = model(x, sample=False)
    lam = vae_loss(out, x, LossConfig(form="lambda", weight=0.5))
    torch.testing.assert_close(lam.total, lam.recon + 0.5 * lam.kl)
    torch.testing.assert_close(lam.recon, ((out.x_hat - x) ** 2).mean())
    beta = vae_loss(out, x, LossConfig(form="beta", weight=0.25))
    torch.testing.assert_close(beta.total, 0.75 * beta.recon + 0.25 * beta.kl)
    warm = LossConfig(weight=1.0, kl_warmup_epochs=4)
    assert kl_weight(warm, 1) == (1.0, 0.25) and kl_weight(warm, 9) == (1.0, 1.0)
    assert vae_loss(out, x, warm, epoch=2).kl_weight == 0.5


def test_bce_uses_logits():
    cfg = _cfg("grid", "conv")
    model = build_model(cfg, 6, 10.0)
    x = (torch.rand(3, *input_shape(cfg.data, 6, 10.0)) > 0.7).float()
    out = model(x, sample=False)
    parts = vae_loss(out, x, cfg.loss, recon="bce")
    p = torch.sigmoid(out.logits)
    ref = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).mean()
    torch.testing.assert_close(parts.recon, ref, rtol=1e-5, atol=1e-6)
    assert math.isfinite(parts.total.item())


def test_reparameterize_uses_generator():
    model = build_model(_cfg("distance", "conv"), 6, 10.0)
    mu, lv = torch.zeros(2, 4), torch.zeros(2, 4)
    a = model.reparameterize(mu, lv, torch.Generator().manual_seed(5))
    b = model.reparameterize(mu, lv, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    z = model.reparameterize(mu, torch.full((2, 4), -80.0))  # sigma = e^-40
    torch.testing.assert_close(z, mu, rtol=0, atol=1e-15)
