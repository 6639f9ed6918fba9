"""vae.training and vae.checkpoint: learning, determinism, resume, exact save/load, safety."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mcsim.io import write_dataset
from vae.checkpoint import CheckpointError, load_checkpoint, load_model
from vae.config import ConfigError, DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.latent import active_dimensions, gamma_probe, kl_per_dimension, latent_pca
from vae.models import build_model
from vae.training import RunDirError, evaluate, prepare_data, train

N = 6


def _positions(rng, m, gamma):
    """Uniform x, heights squeezed towards the floor more for larger gamma (a toy
    'sedimentation' the models can pick up)."""
    pos = rng.uniform(0, 10, (m, N, 2))
    pos[..., 1] *= np.exp(-1.5 * gamma)[:, None]
    return pos


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vae") / "toy.h5"
    rng = np.random.default_rng(0)
    gamma = np.repeat([0.1, 0.4, 0.7, 1.0], 40)
    write_dataset(path, _positions(rng, len(gamma), gamma), gamma,
                  {"box": 10.0, "source": "test"})
    return path


def _cfg(epochs=3, **train):
    return RunConfig(DataConfig(), ModelConfig(latent_dim=3, channels=(4, 8)),
                     LossConfig(weight=1e-3), TrainConfig(epochs=epochs, batch_size=16,
                                                          lr=1e-2, **train))


def test_a_few_epochs_lower_the_validation_loss(data_file, tmp_path):
    cfg = _cfg(epochs=6)
    data = prepare_data(cfg, [data_file])
    x_val = torch.as_tensor(data.x[data.split.val])
    before = evaluate(build_model(cfg, N, 10.0), x_val, cfg)["loss"]
    res = train(cfg, data, tmp_path / "run", progress=False)
    after = res.history[-1]["val_loss"]
    assert after < 0.5 * before  # measured: 0.041 -> 0.014
    assert [h["epoch"] for h in res.history] == list(range(1, 7))
    for name in ("config.json", "last.pt", "best.pt", "history.csv", "history.json",
                 "loss_curve.png", "metrics.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert res.metrics["test_mse"] == pytest.approx(res.metrics["test_recon"])


def test_training_is_deterministic_and_resume_continues_exactly(data_file, tmp_path):
    data = prepare_data(_cfg(), [data_file])
    full = train(_cfg(epochs=4), data, tmp_path / "full", progress=False)
    again = train(_cfg(epochs=4), data, tmp_path / "again", progress=False)
    first = train(_cfg(epochs=2), data, tmp_path / "part", progress=False)
    assert load_checkpoint(tmp_path / "part" / "last.pt").epoch == 2
    resumed = train(_cfg(epochs=4), data, tmp_path / "part", resume=True, progress=False)
    assert [h["epoch"] for h in first.history] == [1, 2]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    keys = ("train_loss", "val_loss", "val_kl")
    for h_full, h_again, h_res in zip(full.history, again.history, resumed.history, strict=True):
        for k in keys:
            assert h_full[k] == h_again[k] == h_res[k], k
    last_full = load_checkpoint(tmp_path / "full" / "last.pt").state_dict
    last_res = load_checkpoint(tmp_path / "part" / "last.pt").state_dict
    for k in last_full:
        assert torch.equal(last_full[k], last_res[k]), k


def test_weight_average_is_the_moving_average_of_the_steps(data_file, tmp_path,
                                                              monkeypatch):
    """train.ema: best.pt holds w_ema <- d w_ema + (1 - d) w over every step's weights
    from the initial ones (recomputed here from the weights recorded at each step), the
    history's validation loss is that of the averaged weights, and a resumed run
    continues the average exactly."""
    from vae import training

    data = prepare_data(_cfg(), [data_file])
    d = 0.8
    init: dict[str, torch.Tensor] = {}
    seen: list[dict[str, torch.Tensor]] = []
    update = training._update_average

    def recording(averaged, model, decay):
        if not seen:
            init.update({k: v.clone() for k, v in averaged.state_dict().items()})
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        update(averaged, model, decay)

    monkeypatch.setattr(training, "_update_average", recording)
    res = training.train(_cfg(epochs=2, ema=d, patience=0), data, tmp_path / "ema",
                         progress=False)
    monkeypatch.setattr(training, "_update_average", update)
    best = load_checkpoint(tmp_path / "ema" / "best.pt")
    steps = len(seen) // 2 * best.epoch
    avg = init
    for w in seen[:steps]:
        avg = {k: d * avg[k] + (1 - d) * w[k] if w[k].is_floating_point() else w[k]
               for k in w}
    for k, v in best.state_dict.items():
        torch.testing.assert_close(v, avg[k], rtol=1e-5, atol=1e-7)
    raw = seen[steps - 1]
    assert max(float((best.state_dict[k] - raw[k]).abs().max()) for k in raw
               if raw[k].is_floating_point()) > 1e-3  # the average is not the last step
    x_val = torch.as_tensor(data.x[data.split.val])
    model = load_model(tmp_path / "ema" / "best.pt").model
    assert evaluate(model, x_val, _cfg())["loss"] == pytest.approx(
        res.history[best.epoch - 1]["val_loss"], rel=1e-6)
    # resume: 1 epoch, then on to 2, equals 2 straight, the average included
    training.train(_cfg(epochs=1, ema=d, patience=0), data, tmp_path / "part", progress=False)
    again = training.train(_cfg(epochs=2, ema=d, patience=0), data, tmp_path / "part",
                           resume=True, progress=False)
    assert [h["val_loss"] for h in again.history] == [h["val_loss"] for h in res.history]
    a = load_checkpoint(tmp_path / "ema" / "last.pt").train_state["ema"]
    b = load_checkpoint(tmp_path / "part" / "last.pt").train_state["ema"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="train.ema"):
        TrainConfig(ema=1.0)


def test_resume_refuses_other_settings_or_data(data_file, tmp_path):
    data = prepare_data(_cfg(), [data_file])
    train(_cfg(epochs=1), data, tmp_path / "r", progress=False)
    other = _cfg(epochs=2)
    other.loss.weight = 0.5
    with pytest.raises(Exception, match="loss.weight"):
        train(other, data, tmp_path / "r", resume=True, progress=False)
    with pytest.raises(RunDirError, match="not empty") as err:
        train(_cfg(epochs=2), data, tmp_path / "r", progress=False)
    assert err.value.option == "out" and "--" not in str(err.value)
    with pytest.raises(RunDirError, match="nothing to resume") as err:
        train(_cfg(epochs=2), data, tmp_path / "empty", resume=True, progress=False)
    assert err.value.option == "resume" and "--" not in str(err.value)  # no flag names
    data.info.fingerprint = "0" * 16
    with pytest.raises(Exception, match="fingerprint"):
        train(_cfg(epochs=2), data, tmp_path / "r", resume=True, progress=False)


def test_gradient_clipping_bounds_every_step(data_file, tmp_path, monkeypatch):
    """train.grad_clip: the optimiser only ever sees gradients of global norm <= the
    clip (recorded at each step), and the clip is what limits them (without it the
    same steps have larger norms)."""
    from vae import training

    data = prepare_data(_cfg(), [data_file])
    norms: list[float] = []
    step = torch.optim.Adam.step

    def recording_step(self, *a, **k):
        sq = sum(float(p.grad.pow(2).sum()) for g in self.param_groups for p in g["params"]
                 if p.grad is not None)
        norms.append(sq ** 0.5)
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    training.train(_cfg(epochs=1), data, tmp_path / "free", progress=False)
    free, norms[:] = list(norms), []
    clip = 0.5 * float(np.median(free))
    training.train(_cfg(epochs=1, grad_clip=clip), data, tmp_path / "clip", progress=False)
    assert len(norms) == len(free) > 0
    assert max(norms) <= clip * (1 + 1e-5), (max(norms), clip)
    assert max(free) > 1.5 * clip
    with pytest.raises(ConfigError, match="train.grad_clip"):
        TrainConfig(grad_clip=-1.0)


def test_early_stopping_and_lr_schedule(data_file, tmp_path):
    data = prepare_data(_cfg(), [data_file])
    cfg = _cfg(epochs=10, patience=2, min_delta=1e9, lr_schedule="cosine")
    res = train(cfg, data, tmp_path / "es", progress=False)
    assert res.stopped_early and res.epochs_run == 3 and res.best_epoch == 1
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] == cfg.train.lr and lrs[2] < lrs[1] < lrs[0]


def test_resuming_an_early_stopped_run_reports_it(data_file, tmp_path):
    """Regression: resuming a run that had stopped early reported epochs_run = the
    configured maximum and stopped_early = False."""
    data = prepare_data(_cfg(), [data_file])
    cfg = _cfg(epochs=10, patience=2, min_delta=1e9)
    first = train(cfg, data, tmp_path / "es", progress=False)
    assert first.stopped_early and first.epochs_run == 3
    again = train(cfg, data, tmp_path / "es", resume=True, progress=False)
    assert again.stopped_early and again.epochs_run == 3 and again.best_epoch == 1
    assert [h["epoch"] for h in again.history] == [1, 2, 3]
    assert again.metrics["epochs_run"] == 3 and again.metrics["stopped_early"]


def test_save_load_reproduces_outputs_exactly(data_file, tmp_path):
    cfg = _cfg(epochs=2)
    data = prepare_data(cfg, [data_file])
    res = train(cfg, data, tmp_path / "run", progress=False)
    tv = load_model(tmp_path / "run" / "best.pt")
    assert tv.config == cfg and tv.info.n_particles == N
    np.testing.assert_array_equal(tv.split.test, data.split.test)
    x = torch.as_tensor(data.x[:20])
    with torch.no_grad():
        a = res.model(x, sample=False)
        b = tv.model(x, sample=False)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.mu_z, b.mu_z)
    # the checkpoint alone turns positions into inputs, encodes and decodes
    np.testing.assert_array_equal(tv.inputs(data.positions[:20], 10.0), data.x[:20])
    mu, _ = tv.encode(tv.inputs(data.positions[:20]))
    np.testing.assert_array_equal(mu, a.mu_z.numpy())
    np.testing.assert_array_equal(tv.reconstruct(data.x[:20]), a.x_hat.numpy())


def test_checkpoint_rejects_mismatched_data(data_file, tmp_path):
    cfg = _cfg(epochs=1)
    train(cfg, prepare_data(cfg, [data_file]), tmp_path / "run", progress=False)
    tv = load_model(tmp_path / "run" / "best.pt")
    with pytest.raises(CheckpointError, match="N=7"):
        tv.inputs(np.zeros((2, 7, 2)))
    with pytest.raises(CheckpointError, match="box"):
        tv.inputs(np.ones((2, N, 2)), box=12.0)
    with pytest.raises(CheckpointError, match="'distance' inputs"):
        tv.encode(np.zeros((2, N, 2), np.float32))  # coordinates into a matrix model
    bad = np.zeros((2, 1, N, N), np.float32)
    bad[1, 0, 2, 3] = np.nan
    with pytest.raises(CheckpointError, match="NaN"):
        tv.encode(bad)
    with pytest.raises(CheckpointError, match=r"shape \(M, 3\)"):
        tv.decode(np.zeros((2, 4), np.float32))  # latent dimension is 3
    with pytest.raises(CheckpointError, match="NaN"):
        tv.decode(np.full((1, 3), np.nan, np.float32))
    assert tv.decode(np.zeros((2, 3), np.float32)).shape == (2, 1, N, N)


class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_loading_never_executes_code(tmp_path):
    target = tmp_path / "pwned"
    bad = tmp_path / "bad.pt"
    torch.save({"format": "ljvae-vae-checkpoint", "payload": _Evil(target)}, bad,
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(bad)
    assert not target.exists()
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")


def test_malformed_weights_are_a_checkpoint_error(data_file, tmp_path):
    """Regression: a checkpoint whose weights entry is not a state dict escaped load_model
    as a TypeError (a traceback instead of a one-line error)."""
    cfg = _cfg(epochs=1)
    train(cfg, prepare_data(cfg, [data_file]), tmp_path / "run", progress=False)
    d = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    d["model"] = [1, 2, 3]
    torch.save(d, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_model(tmp_path / "bad.pt")


def test_latent_analysis_functions():
    rng = np.random.default_rng(0)
    gamma = np.repeat([0.0, 1.0], 200)
    mu = rng.normal(size=(400, 5))
    mu[:, 2] += 3 * gamma  # dimension 2 carries gamma
    lv = np.zeros((400, 5))
    lv[:, 4] = np.log(1.0)
    mu[:, 4] = 0.0  # dimension 4 is the prior: KL = 0
    pca = latent_pca(mu, 2)
    assert pca.projected.shape == (400, 2)
    assert abs(pca.explained_variance_ratio.sum() - 1) < 1e-12
    assert abs(pca.components[0, 2]) > 0.9
    kl = kl_per_dimension(mu, lv)
    assert kl[4] == 0 and 4 not in active_dimensions(kl)
    assert active_dimensions(kl)[0] == 2
    probe = gamma_probe(mu[::2], gamma[::2], mu[1::2], gamma[1::2])
    # best linear predictor: R^2 = corr(gamma, mu_2)^2 = 9 Var(g) / (9 Var(g) + 1) = 9/13;
    # sampling error of R^2 with 200 test points is ~0.03
    assert probe.r2 == pytest.approx(9 / 13, abs=0.1)
    noise = gamma_probe(rng.normal(size=(200, 5)), gamma[::2], rng.normal(size=(200, 5)),
                        gamma[1::2])
    assert noise.r2 < 0.2


def test_interrupted_run_resumes_to_the_same_result(data_file, tmp_path, monkeypatch):
    import vae.training as vt

    data = prepare_data(_cfg(), [data_file])
    full = train(_cfg(epochs=3), data, tmp_path / "full", progress=False)
    real_loss, calls = vt.vae_loss, {"n": 0}
    batches_per_epoch = -(-data.split.train.size // 16)

    def interrupting(*args, **kwargs):  # Ctrl-C in the middle of epoch 2
        calls["n"] += 1
        if calls["n"] == batches_per_epoch + 3:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(vt, "vae_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(epochs=3), data, tmp_path / "cut", progress=False)
    monkeypatch.setattr(vt, "vae_loss", real_loss)
    assert load_checkpoint(tmp_path / "cut" / "last.pt").epoch == 1
    resumed = train(_cfg(epochs=3), data, tmp_path / "cut", resume=True, progress=False)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    a = load_checkpoint(tmp_path / "full" / "last.pt").state_dict
    b = load_checkpoint(tmp_path / "cut" / "last.pt").state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("rep", "arch"),
                         [("coords", "fc"), ("grid", "conv"), ("distance", "study")])
def test_analysis_figures_for_every_representation(data_file, tmp_path, rep, arch):
    from vae.data import output_max
    from vae.latent import analyze

    cfg = RunConfig(DataConfig(representation=rep, grid_cell=1.0),
                    ModelConfig(arch=arch, latent_dim=3, channels=(4, 8), hidden=(8,)))
    data = prepare_data(cfg, [data_file])
    model = build_model(cfg, N, 10.0)
    summary = analyze(model, data.x, data.gamma, data.split, tmp_path / "a", representation=rep,
                      vmax=output_max(cfg.data, 10.0), tsne_points=50, n_traverse=2)
    assert len(summary["kl_per_dimension"]) == 3
    for name in ("pca.png", "tsne.png", "kl_ranking.png", "traversal.png", "origin.png",
                 "probe.png", "reconstructions.png", "latent.json"):
        assert (tmp_path / "a" / name).stat().st_size > 0, name
