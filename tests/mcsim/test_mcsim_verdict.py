"""The equilibration verdict: autocorrelation times, equilibrium references (their
error bars against repeats, an exact ideal-gas value, caching) and the verdict's
power on the study's protocol; --sweeps auto and --sample-every auto."""

import json
import math

import h5py
import numpy as np
import pytest

from mcsim import _kernels as K
from mcsim.config import SimConfig
from mcsim.io import read_dataset
from mcsim.potentials import Potential
from mcsim.reference import (
    ReferenceSettings,
    equilibration_verdict,
    equilibrium_reference,
    integrated_autocorr_time,
)
from mcsim.run import run_simulation
from mcsim.sampler import Chain, sample

SMALL_REF = ReferenceSettings(n_chains=2, burn_sweeps=2000, sweeps=6000, record_every=5)


def _ar1(phi, n, n_chains, seed):
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n_chains, n))
    x = np.empty_like(eps)
    x[:, 0] = eps[:, 0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + eps[:, t]
    return x


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_integrated_autocorr_time_of_ar1(phi):
    # exact: tau = (1 + phi) / (1 - phi); the estimate's relative error is about
    # sqrt(2 (2 W + 1) / n) with window W ~ 5 tau (Sokal) -> 3 % here; allow 4 sigma
    x = _ar1(phi, 20_000, 4, seed=1)
    tau = integrated_autocorr_time(x)
    exact = (1 + phi) / (1 - phi)
    rel = math.sqrt(2 * (10 * exact + 1) / x.size)
    assert abs(tau / exact - 1) < 4 * rel


def test_ideal_gas_reference_matches_barometric_law():
    # non-interacting particles: <y> = 1/b - H / (e^{bH} - 1), b = gamma / T (exact)
    # (a large step decorrelates the heights quickly)
    cfg = SimConfig(potential=Potential.parse("ideal", None), temperature=1.0, delta=2.0)
    ref = equilibrium_reference(cfg, 0.4, SMALL_REF, cache=False)
    b, h = 0.4, 10.0
    exact = 1 / b - h / math.expm1(b * h)
    assert abs(ref.mean["y_mean"] - exact) < 4 * ref.err["y_mean"]
    assert ref.err["y_mean"] < 0.05


def test_reference_is_cached_and_reused(tmp_path, monkeypatch):
    cfg = SimConfig(n_particles=8)
    a = equilibrium_reference(cfg, 1.0, SMALL_REF, cache=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1

    def boom(*args):
        raise AssertionError("recomputed a cached reference")

    monkeypatch.setattr(K, "_reference_chains", boom)
    assert equilibrium_reference(cfg, 1.0, SMALL_REF, cache=tmp_path) == a
    # another system is a cache miss
    with pytest.raises(AssertionError, match="recomputed"):
        equilibrium_reference(cfg.replace(temperature=1.0), 1.0, SMALL_REF, cache=tmp_path)


def test_run_stores_reference_and_verdict_in_the_file(tmp_path):
    cfg = SimConfig(n_particles=8, gammas=(1.0,), n_samples=40, sweeps=200, seed=3)
    out = tmp_path / "d.h5"
    summ = run_simulation(cfg, out, verdict=True, reference=SMALL_REF,
                          reference_cache=False, n_traces=0, progress=False)
    v = summ.verdicts[1.0]
    with h5py.File(out) as f:
        g = f["diagnostics/gamma_0"]
        ref = json.loads(g.attrs["reference"])
        stored = json.loads(g.attrs["verdict"])
        assert bool(g.attrs["passed"]) == v.passed
    assert stored["z"] == v.z and ref["settings"]["n_chains"] == 2
    # the verdict's data mean is the file's
    ds = read_dataset(out)
    assert v.data_mean["energy"] == pytest.approx(ds.energy.mean(), rel=1e-12)


@pytest.mark.slow
def test_reference_error_bar_agrees_with_spread_over_repeats():
    # 8 references with independent seeds: sum (m_r - mean)^2 / err_r^2 follows chi2
    # with 7 degrees of freedom if the error bars are right; 0.1 % .. 99.9 % bounds
    cfg = SimConfig()
    settings = [ReferenceSettings(n_chains=4, burn_sweeps=5000, sweeps=20_000, seed=s)
                for s in range(8)]
    refs = [equilibrium_reference(cfg, 1.0, s, cache=False) for s in settings]
    for k in ("energy", "y_mean"):
        m = np.array([r.mean[k] for r in refs])
        e = np.array([r.err[k] for r in refs])
        w = 1 / e**2
        chi2 = float(np.sum(w * (m - np.sum(w * m) / np.sum(w)) ** 2))
        assert 0.6 < chi2 < 24.3, (k, chi2)


@pytest.mark.slow
def test_verdict_fails_on_study_protocol_at_gamma_01():
    # the study's 2500 sweeps from uniform starts: E/N ~ -0.47 vs ~ -0.53 at equilibrium
    cfg = SimConfig(sweeps=2500, seed=11)
    ref = equilibrium_reference(cfg, 0.1)
    s = sample(cfg, 0.1, 500)
    v = equilibration_verdict(s.positions, s.energy, ref, sweeps=2500)
    assert not v.passed
    assert max(abs(z) for z in v.z.values()) > 4


@pytest.mark.slow
@pytest.mark.parametrize("gamma", [0.1, 0.7])
def test_verdict_passes_equilibrated_chain_samples(gamma):
    # chain samples spaced by the reference's autocorrelation time, after a long
    # burn-in: equilibrated by construction; the data errors come from their own tau
    cfg = SimConfig(protocol="chain", equil_sweeps=30_000, seed=21)
    ref = equilibrium_reference(cfg, gamma)
    every = math.ceil(max(ref.tau_sweeps.values()))
    s = Chain(cfg.replace(sample_every=every), gamma).produce(300)
    v = equilibration_verdict(s.positions, s.energy, ref, correlated=True)
    assert v.passed, v.verdict()


def test_auto_sweeps_doubles_until_pass_and_equals_fixed_run(tmp_path):
    cfg = SimConfig(n_particles=12, gammas=(1.0,), n_samples=60, sweeps=10, seed=4)
    out = tmp_path / "auto.h5"
    summ = run_simulation(cfg, out, auto_sweeps=True, reference=SMALL_REF,
                          reference_cache=False, n_traces=0, progress=False)
    s_auto = summ.sweeps[1.0]
    with h5py.File(out) as f:
        tried = json.loads(f["diagnostics/gamma_0"].attrs["auto_sweeps"])
        assert int(f["diagnostics/gamma_0"].attrs["sweeps"]) == s_auto
        assert list(f.attrs["sweeps_per_gamma"]) == [s_auto]
    assert [t["sweeps"] for t in tried] == [10 * 2**k for k in range(len(tried))]
    assert tried[-1]["passed"] and not any(t["passed"] for t in tried[:-1])
    assert len(tried) >= 2  # 10 sweeps from a uniform start cannot pass
    fixed = tmp_path / "fixed.h5"
    run_simulation(cfg.replace(sweeps=s_auto), fixed, verdict=False, n_traces=0,
                   progress=False)
    a, b = read_dataset(out), read_dataset(fixed)
    assert np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.energy, b.energy)
    assert np.array_equal(a.acceptance, b.acceptance)


def test_auto_sample_every_uses_reference_tau(tmp_path):
    cfg = SimConfig(n_particles=8, gammas=(1.0,), n_samples=30, protocol="chain",
                    equil_sweeps=500, seed=2)
    out = tmp_path / "chain.h5"
    summ = run_simulation(cfg, out, auto_sample_every=True, reference=SMALL_REF,
                          reference_cache=False, n_traces=0, progress=False)
    ref = equilibrium_reference(cfg, 1.0, SMALL_REF, cache=False)
    every = math.ceil(max(ref.tau_sweeps.values()))
    assert summ.sample_every[1.0] == every > 1
    with h5py.File(out) as f:
        assert int(f["diagnostics/gamma_0"].attrs["sample_every"]) == every
        assert f["diagnostics/gamma_0"].attrs["chain_tau_sweeps"] > 0
    direct = Chain(cfg.replace(sample_every=every), 1.0).produce(30)
    assert np.array_equal(read_dataset(out).positions, direct.positions)
