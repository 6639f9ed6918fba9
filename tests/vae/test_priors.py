"""vae.priors: shapes, gamma conditioning and the gamma rule, the density buffer's exact
means, PCA scaled by standard deviations (not variances), exact save/load, no code
executed on load, reproducible seeds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vae.priors import (
    PRIORS,
    DensityBuffer,
    FlowPrior,
    GammaInterpolationWarning,
    GMMPrior,
    PCAGaussianPrior,
    PriorError,
    StandardNormalPrior,
    build_prior,
    load_prior,
)

GAMMAS = (0.1, 0.4, 1.0)
D = 4
SPREAD = 0.3


def _centre(g: float) -> np.ndarray:
    return np.array([10.0 * g, -5.0 * g, 0.0, 1.0])


@pytest.fixture(scope="module")
def latents():
    """Latent means clustered by gamma (centre _centre(g), std SPREAD per dimension),
    log-variances log(0.2^2)."""
    rng = np.random.default_rng(7)
    gamma = np.repeat(GAMMAS, [300, 200, 250])
    mu = np.stack([_centre(g) for g in gamma]) + SPREAD * rng.standard_normal((gamma.size, D))
    logvar = np.full_like(mu, np.log(0.2**2))
    return mu.astype(np.float32), logvar.astype(np.float32), gamma


_SETTINGS = {
    "normal": {},
    "pca": {},
    "gmm": {"n_components": 2},
    "buffer": {"alpha": 1.0, "smudge": 0.0},
    "flow": {"transforms": 2, "hidden": (32, 32), "epochs": 25, "batch_size": 64,
             "lr": 3e-3, "patience": 0},
}


@pytest.fixture(scope="module")
def fitted(latents):
    mu, lv, g = latents
    return {name: build_prior(name, **_SETTINGS[name]).fit(mu, lv, g) for name in PRIORS}


@pytest.mark.parametrize("name", PRIORS)
def test_each_prior_samples_n_by_d(fitted, name):
    p = fitted[name]
    assert p.name == name and p.gammas == GAMMAS and p.latent_dim == D
    for gamma in (None, 0.4):
        z = p.sample(37, gamma, seed=1)
        assert z.shape == (37, D) and z.dtype == np.float64 and np.all(np.isfinite(z))
    assert p.sample(0, 0.4).shape == (0, D)


@pytest.mark.parametrize("name", ["pca", "gmm", "buffer", "flow"])
def test_conditioned_priors_sample_their_gamma(latents, fitted, name):
    """The cluster centres are 3 to 9 latent units apart along dimension 0; each prior
    must put the mean of its draws at the mean of that gamma's training latents.
    Tolerance: 5 standard errors (draws and training sample) for the exact priors,
    0.5 units for the flow (fitted by 25 epochs of SGD)."""
    mu, _, gamma = latents
    p = fitted[name]
    n = 2000
    for g in GAMMAS:
        train = mu[gamma == g]
        z = p.sample(n, g, seed=3)
        var = SPREAD**2 + (0.2**2 if name == "buffer" else 0.0)
        se = np.sqrt(var / n + SPREAD**2 / len(train))
        tol = 0.5 if name == "flow" else 5 * se
        np.testing.assert_allclose(z.mean(axis=0), train.mean(axis=0), atol=tol)


def test_unconditioned_draws_follow_the_training_frequencies(fitted):
    z = fitted["buffer"].sample(6000, None, seed=0)
    nearest = np.argmin([np.abs(z[:, 0] - _centre(g)[0]) for g in GAMMAS], axis=0)
    frac = np.bincount(nearest, minlength=3) / z.shape[0]
    expect = np.array([300, 200, 250]) / 750
    assert np.all(np.abs(frac - expect) < 5 * np.sqrt(expect * (1 - expect) / z.shape[0]))


def test_buffer_alpha0_smudge0_returns_exactly_the_stored_means(latents):
    mu, lv, g = latents
    buf = DensityBuffer(alpha=0.0, smudge=0.0).fit(mu, lv, g)
    z, idx = buf.draw(500, 0.4, seed=11)
    assert np.all(g[idx] == 0.4)
    assert np.array_equal(z, mu[idx].astype(np.float64))
    # the same through sample(): every row is a stored mean of gamma 0.4
    rows = {r.tobytes() for r in mu[g == 0.4].astype(np.float64)}
    assert all(r.tobytes() in rows for r in buf.sample(200, 0.4, seed=2))


def test_buffer_spread_is_alpha_sigma_plus_smudge(latents):
    mu, lv, g = latents
    buf = DensityBuffer(alpha=2.0, smudge=0.1).fit(mu, lv, g)
    z, idx = buf.draw(20000, 1.0, seed=5)
    assert np.all(g[idx] == 1.0)
    resid = z - mu[idx]
    sd = 2.0 * 0.2 + 0.1
    se = sd / np.sqrt(2 * resid.size)  # standard error of a sample standard deviation
    assert abs(resid.std() - sd) < 5 * se
    assert abs(resid.mean()) < 5 * sd / np.sqrt(resid.size)


def test_pca_scales_components_by_standard_deviations():
    """Latent means with standard deviations 2, 1, 0.5 along known axes: the PCA prior
    must reproduce the variances 4, 1, 0.25 (the study's code used the variances as
    standard deviations: 16, 1, 0.0625)."""
    rng = np.random.default_rng(0)
    m = 4000
    axes = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    x = (rng.standard_normal((m, 3)) * [2.0, 1.0, 0.5]) @ axes.T + [1.0, 2.0, 3.0]
    p = PCAGaussianPrior().fit(x, np.zeros_like(x), np.zeros(m))
    z = p.sample(40000, 0.0, seed=1)
    var_axes = np.var(z @ axes, axis=0)
    ref_axes = np.var(x @ axes, axis=0)
    np.testing.assert_allclose(var_axes, ref_axes, rtol=0.03)  # sampling error ~1 %
    np.testing.assert_allclose(z.mean(axis=0), x.mean(axis=0), atol=0.05)
    # truncation to K components keeps the leading variance, drops the rest
    p1 = PCAGaussianPrior(n_components=1).fit(x, np.zeros_like(x), np.zeros(m))
    z1 = p1.sample(20000, 0.0, seed=2)
    sv = np.linalg.svd(z1 - z1.mean(axis=0), compute_uv=False)
    assert sv[1] < 1e-10 * sv[0]  # all on one line
    lam1 = np.linalg.eigvalsh(np.cov(x, rowvar=False))[-1]
    assert np.var(z1, axis=0).sum() == pytest.approx(lam1, rel=0.05)


def test_pca_aggregate_adds_the_encoder_variance(latents):
    mu, lv, g = latents
    p = PCAGaussianPrior(aggregate=True).fit(mu, lv, g)
    z = p.sample(30000, 0.1, seed=0)
    np.testing.assert_allclose(z.var(axis=0), SPREAD**2 + 0.2**2, rtol=0.15)


@pytest.mark.parametrize("name", ["normal", "pca", "gmm", "buffer"])
def test_unseen_gamma_is_refused_listing_the_trained_ones(fitted, name):
    for g in (0.55, 2.0):
        with pytest.raises(PriorError, match=r"not seen in training \(trained gammas: "
                                             r"0\.1, 0\.4, 1\)"):
            fitted[name].sample(5, g)


def test_flow_interpolates_inside_the_range_and_refuses_outside(fitted):
    flow = fitted["flow"]
    with pytest.warns(GammaInterpolationWarning, match="interpolates"):
        z = flow.sample(2000, 0.7, seed=0)
    # between the 0.4 and 1.0 clusters along dimension 0 (centres 4 and 10)
    assert 4.0 < z[:, 0].mean() < 10.0
    for g in (0.05, 1.5):
        with pytest.raises(PriorError, match=r"interpolates only inside \[0\.1, 1\]"):
            flow.sample(3, g)
    with pytest.raises(PriorError, match="finite number >= 0"):
        flow.sample(3, float("nan"))


def test_trained_gamma_matches_up_to_rounding(fitted):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = fitted["flow"].sample(10, 0.1 + 1e-13, seed=4)
    np.testing.assert_array_equal(a, fitted["flow"].sample(10, 0.1, seed=4))


@pytest.mark.parametrize("name", PRIORS)
def test_same_seed_same_draws_other_seed_other_draws(fitted, name):
    p = fitted[name]
    a = p.sample(50, 0.4, seed=9)
    p.sample(17, 1.0, seed=9)  # other calls in between change nothing
    np.testing.assert_array_equal(a, p.sample(50, 0.4, seed=9))
    assert not np.array_equal(a, p.sample(50, 0.4, seed=10))


@pytest.mark.parametrize("name", PRIORS)
def test_save_load_round_trip_is_exact(fitted, name, tmp_path):
    p = fitted[name]
    p.provenance = {"checkpoint_fingerprint": "abc"}
    path = p.save(tmp_path / f"{name}.npz")
    q = load_prior(path)
    assert type(q) is type(p) and q.params() == p.params()
    assert q.gammas == p.gammas and q.counts == p.counts and q.latent_dim == p.latent_dim
    assert q.provenance == {"checkpoint_fingerprint": "abc"}
    for g in (None, 0.1, 1.0):
        np.testing.assert_array_equal(q.sample(64, g, seed=5), p.sample(64, g, seed=5))
    with pytest.raises(Exception, match="exists"):
        p.save(path)  # no overwrite without asking
    assert type(q).load(path).name == name


def test_loading_refuses_pickles_and_foreign_files(tmp_path, fitted):
    bad = tmp_path / "obj.npz"
    with open(bad, "wb") as fh:
        np.savez(fh, meta=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(PriorError):
        load_prior(bad)
    other = tmp_path / "other.npz"
    with open(other, "wb") as fh:
        np.savez(fh, a=np.zeros(3))
    with pytest.raises(PriorError, match="not a prior file"):
        load_prior(other)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(PriorError, match="not a prior file"):
        load_prior(junk)
    with pytest.raises(PriorError, match="no such prior file"):
        load_prior(tmp_path / "missing.npz")
    path = fitted["gmm"].save(tmp_path / "gmm.npz")
    with pytest.raises(PriorError, match="holds a 'gmm' prior"):
        DensityBuffer.load(path)


def test_build_prior_validates_names_and_settings():
    with pytest.raises(PriorError, match="unknown prior 'vampprior'"):
        build_prior("vampprior")
    with pytest.raises(PriorError, match="unknown setting 'beta'"):
        build_prior("buffer", beta=1.0)
    with pytest.raises(PriorError, match="alpha"):
        build_prior("buffer", alpha=-1.0)
    with pytest.raises(PriorError, match="kind"):
        FlowPrior(kind="glow")
    with pytest.raises(PriorError, match="n_components"):
        GMMPrior(n_components=0)
    with pytest.raises(PriorError, match="not fitted"):
        StandardNormalPrior().sample(3)


def _mixture_moments(prior: GMMPrior, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the i-th gamma's mixture: sum_c w_c mu_c and
    sum_c w_c (L_c L_c^T + mu_c mu_c^T) - mean mean^T."""
    w = prior._weights[i] / prior._weights[i].sum()
    mu, chol = prior._means[i], prior._chol[i]
    mean = w @ mu
    second = np.einsum("c,cij->ij", w, chol @ chol.transpose(0, 2, 1)
                       + mu[:, :, None] * mu[:, None, :])
    return mean, second - np.outer(mean, mean)


def test_gmm_samples_have_the_mixture_moments(latents):
    """The vectorised sampler (one product per component): the per-sample form's draws
    to round-off, and the mixture's mean and covariance within 5 standard errors
    (each from the sample itself: sd(x_i) / sqrt(n), sd((x_i - m_i)(x_j - m_j)) /
    sqrt(n))."""
    mu, lv, g = latents
    prior = GMMPrior(n_components=3, seed=0).fit(mu, lv, g)
    i = prior.gammas.index(0.4)
    rng = np.random.default_rng(11)
    got = prior._sample_gamma(i, 5000, rng)
    rng = np.random.default_rng(11)  # the per-sample form with the same draws
    w = prior._weights[i]
    comp = rng.choice(w.size, size=5000, p=w / w.sum())
    eps = rng.standard_normal((5000, D))
    want = prior._means[i][comp] + np.einsum("nij,nj->ni", prior._chol[i][comp], eps)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    n = 200_000
    z = prior.sample(n, 0.4, seed=5)
    np.testing.assert_array_equal(z, prior.sample(n, 0.4, seed=5))
    mean, cov = _mixture_moments(prior, i)
    assert np.all(np.abs(z.mean(0) - mean) < 5 * z.std(0) / np.sqrt(n))
    dz = z - mean
    prod = dz[:, :, None] * dz[:, None, :]
    se = prod.std(0) / np.sqrt(n)
    assert np.all(np.abs(prod.mean(0) - cov) < 5 * se + 1e-12)
    # the test has the power to see a covariance 10% off
    assert np.any(np.abs(prod.mean(0) - cov * 0.9) > 5 * se)
