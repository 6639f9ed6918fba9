"""The importance-weighted bound against a linear-Gaussian model whose likelihood is
known in closed form."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vae.config import LossConfig
from vae.likelihood import decoder_variance, iwae_bound, iwae_from_log_weights

P, D = 12, 3


class LinearGaussian:
    """Duck-typed TrainedVAE: p(z) = N(0, I_D), p(x|z) = N(W z + c, s^2 I_P), with the
    encoder returning the exact posterior (inflated by ``widen`` in variance)."""

    def __init__(self, widen: float = 1.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(P, D)))
        self.w = q * np.array([2.0, 1.2, 0.7])  # orthogonal columns: diagonal posterior
        self.c = rng.normal(size=P)
        lam = 0.05
        self.config = SimpleNamespace(recon="mse", loss=LossConfig(weight=lam))
        self.input_shape = (P,)
        self.model = SimpleNamespace(latent_dim=D)
        self.s2 = decoder_variance(self)
        self.widen = widen

    def encode(self, x):
        x = np.asarray(x, np.float64)
        prec = 1.0 + (self.w ** 2).sum(axis=0) / self.s2  # diagonal of I + W^T W / s^2
        var = 1.0 / prec
        mu = (x - self.c) @ self.w / self.s2 * var
        lv = np.broadcast_to(np.log(var * self.widen), mu.shape)
        return mu.astype(np.float32), lv.astype(np.float32)

    def decode(self, z, batch_size=None, gamma=None):
        return (np.asarray(z, np.float64) @ self.w.T + self.c).astype(np.float32)

    def log_px(self, x):
        cov = self.w @ self.w.T + self.s2 * np.eye(P)
        _, logdet = np.linalg.slogdet(cov)
        r = x - self.c
        return -0.5 * (np.einsum("mi,ij,mj->m", r, np.linalg.inv(cov), r)
                       + logdet + P * np.log(2 * np.pi))

    def sample(self, m, seed=1):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(m, D))
        return z @ self.w.T + self.c + np.sqrt(self.s2) * rng.normal(size=(m, P))


def test_decoder_variance_is_the_loss_implied_one():
    model = LinearGaussian()
    assert model.s2 == pytest.approx(0.05 * P / (2 * D))


def test_exact_posterior_gives_the_exact_likelihood_for_any_k():
    """With q(z|x) the true posterior every importance weight equals p(x): L_K = log p(x)
    for K = 1 and K = 16 (float32 rounding of mu and x_hat only)."""
    model = LinearGaussian()
    x = model.sample(50)
    exact = model.log_px(x)
    for k in (1, 16):
        res = iwae_bound(model, x, k=k, seed=3)
        np.testing.assert_allclose(res.bound, exact, atol=2e-3)
        if k > 1:
            assert np.all(res.ess > k - 0.01)


def test_bound_tightens_with_k_and_converges():
    """A too-wide q: the mean bound grows with K, stays below log p(x) within its error,
    and at K = 4096 is within 4 standard errors (and 0.02 nats) of it."""
    model = LinearGaussian(widen=3.0)
    x = model.sample(40)
    gap = {}
    for k in (1, 8, 64, 4096):
        res = iwae_bound(model, x, k=k, seed=5)
        gap[k] = (model.log_px(x) - res.bound, res.stderr)
    means = [gap[k][0].mean() for k in (1, 8, 64, 4096)]
    assert means[0] > means[1] > means[2] > means[3] > -0.01
    assert means[0] > 0.3  # the ELBO is visibly loose
    d, se = gap[4096]
    assert np.all(np.abs(d) < 4 * se + 1e-3)
    assert abs(d.mean()) < 0.02


def test_draws_do_not_depend_on_batching():
    model = LinearGaussian(widen=2.0)
    x = model.sample(30)
    whole = iwae_bound(model, x, k=32, seed=9)
    parts = [iwae_bound(model, x[a:a + 7], k=32, seed=9, start=a, batch_size=64)
             for a in range(0, 30, 7)]
    np.testing.assert_array_equal(whole.bound, np.concatenate([p.bound for p in parts]))
    other = iwae_bound(model, x, k=32, seed=10)
    assert not np.array_equal(whole.bound, other.bound)


def test_log_weight_summary_and_bad_k():
    lw = np.log(np.array([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0 + 1e-300, 1e-300, 1e-300]]))
    res = iwae_from_log_weights(lw)
    np.testing.assert_allclose(res.bound, [0.0, np.log(1.0)], atol=1e-12)
    np.testing.assert_allclose(res.ess, [4.0, 1.0])
    model = LinearGaussian()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k:"):
            iwae_bound(model, model.sample(2), k=bad)


def test_no_likelihood_without_kl_weight():
    model = LinearGaussian()
    model.config = SimpleNamespace(recon="mse", loss=LossConfig(weight=0.0))
    with pytest.raises(ValueError, match="KL weight 0"):
        iwae_bound(model, model.sample(2), k=2)


def test_on_a_trained_model_the_bound_is_above_the_plug_in_elbo_estimate():
    """On a real (untrained, tiny) pair VAE: L_K with K = 64 exceeds the mean of K = 1
    estimates (the stochastic ELBO) for every configuration, within errors."""
    from vae.checkpoint import TrainedVAE
    from vae.config import RunConfig
    from vae.models import build_model

    torch.manual_seed(0)
    cfg = RunConfig()
    net = build_model(cfg, 30, 10.0, seed=0)
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 10, (6, 30, 2))
    trained = TrainedVAE(net, cfg, SimpleNamespace(n_particles=30, box=10.0), None)
    x = trained.inputs(pos)
    elbo = np.mean([iwae_bound(trained, x, k=1, seed=s).bound for s in range(8)], axis=0)
    res = iwae_bound(trained, x, k=64, seed=0)
    assert np.all(res.bound > elbo - 4 * res.stderr)
    assert np.all(np.isfinite(res.bound)) and np.all((res.ess >= 1) & (res.ess <= 64))
