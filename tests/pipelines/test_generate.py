"""pipelines.generate and the ``generate`` CLI on a tiny trained model: shapes and flags,
dataset files that pass the reader, reproducibility, rejection, the gamma rule, the
MC-judged report, the distance statistics, config validation, one-line CLI errors."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from mcsim.clitools import UserError
from mcsim.config import SimConfig
from mcsim.io import read_dataset
from mcsim.run import run_simulation
from pipelines.generate import (
    GenerateConfig,
    compare_sets,
    fit_priors,
    generate_configurations,
    latest_checkpoint,
    relax_configurations,
    run_generation,
    training_latents,
    write_generated,
)
from pipelines.generate.cli import main
from vae.checkpoint import load_model
from vae.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.priors import PRIORS, PriorError
from vae.training import prepare_data, train

N, BOX = 8, 8.0
SMALL_FLOW = {"flow_transforms": 1, "flow_hidden": (16,), "flow_epochs": 2}


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """A tiny VAE (latent 3) trained 2 epochs on 2 x 60 short MC runs, N = 8."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen")
    sim = SimConfig(n_particles=N, box=BOX, gammas=(0.4, 1.0), n_samples=60, sweeps=30,
                    seed=0)
    data = root / "data.h5"
    run_simulation(sim, data, n_threads=1, n_traces=0, check_samples=0, progress=False)
    cfg = RunConfig(DataConfig(), ModelConfig(latent_dim=3, channels=(4, 8)),
                    LossConfig(weight=1e-3), TrainConfig(epochs=2, batch_size=16, lr=1e-2))
    train(cfg, prepare_data(cfg, [data]), root / "runs" / "tiny", progress=False)
    return root / "runs" / "tiny" / "best.pt"


@pytest.fixture(scope="session")
def trained(model):
    return load_model(model)


@pytest.fixture(scope="session")
def latents(trained):
    return training_latents(trained)


@pytest.fixture(scope="session")
def priors(latents):
    return fit_priors(PRIORS, latents, GenerateConfig(gmm_components=2, **SMALL_FLOW))


def test_training_latents_match_the_split(trained, latents):
    assert latents.mu_train.shape == (trained.split.train.size, 3)
    assert set(np.unique(latents.gamma_train)) == {0.4, 1.0}
    assert latents.potential.kind == "lj" and latents.sim[0.4].sweeps == 30
    assert latents.held_out("test", 0.4).shape[1:] == (N, 2)


@pytest.mark.parametrize("name", PRIORS)
def test_generated_sets_have_shapes_flags_and_scores(trained, latents, priors, name):
    gs = generate_configurations(trained, priors[name], 25, 0.4, seed=1,
                                 potential=latents.potential)
    assert gs.positions.shape == (25, N, 2) and len(gs) == 25 and gs.n_drawn == 25
    assert np.all(np.isfinite(gs.positions)) and np.all(np.isfinite(gs.energy))
    assert np.all((gs.residual >= 0) & (gs.residual <= 1))
    d = np.linalg.norm(gs.positions[:, :, None] - gs.positions[:, None], axis=-1)
    d[:, np.arange(N), np.arange(N)] = np.inf
    np.testing.assert_allclose(gs.min_distance, d.min(axis=(1, 2)))
    np.testing.assert_array_equal(gs.overlap, gs.min_distance < 0.8)
    inside = np.all((gs.positions >= 0) & (gs.positions <= BOX), axis=(1, 2))
    assert np.all(gs.outside | inside)
    assert gs.placement == "thermal" and gs.temperature == 0.75
    low = generate_configurations(trained, priors[name], 25, 0.4, seed=1, placement="lowest")
    fit = ~low.outside
    assert np.all(low.positions[fit, :, 1].min(axis=1) == pytest.approx(0.0, abs=1e-9))
    assert gs.rate > 0 and set(gs.seconds) == {"prior", "decode", "reconstruct", "checks"}


def test_distance_decoders_take_the_gram_path(trained, priors):
    """The default (pair) decoder does not place particles: no direct path, and its
    generated sets carry the Gram scores."""
    from vae.checkpoint import CheckpointError

    assert not trained.places_particles
    with pytest.raises(CheckpointError, match="places particles|place particles"):
        trained.decode_positions(np.zeros((2, 3)), gamma=0.4)
    gen = generate_configurations(trained, priors["normal"], 20, 0.4, seed=0)
    assert gen.residual.max() > 0


def test_same_seed_same_configurations(trained, priors):
    a = generate_configurations(trained, priors["flow"], 2100, 1.0, seed=4)
    b = generate_configurations(trained, priors["flow"], 2100, 1.0, seed=4, batch_size=7)
    c = generate_configurations(trained, priors["flow"], 2100, 1.0, seed=5)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c.positions)


def test_buffer_with_no_spread_decodes_training_means(trained, latents):
    """alpha = smudge = 0: the generated configurations are exactly the VAE's
    reconstructions of the training configurations it drew."""
    from pipelines.generate import _process
    from vae.priors import DensityBuffer

    buf = DensityBuffer(0.0, 0.0).fit(latents.mu_train, latents.logvar_train,
                                      latents.gamma_train)
    z, idx = buf.draw(10, 0.4, seed=0)
    gs = generate_configurations(trained, buf, 10, 0.4, seed=0, placement="lowest")
    direct = _process(trained, latents.mu_train[idx], BOX * math.sqrt(2), BOX, 0.8, {},
                      {"placement": "lowest"})
    np.testing.assert_array_equal(gs.positions, direct[0])


def test_rejection_returns_only_physical_configurations(trained, priors):
    gs = generate_configurations(trained, priors["buffer"], 20, 0.4, seed=0, overlap=0.02,
                                 reject_unphysical=True, max_draw_factor=50)
    assert len(gs) == 20 and not gs.unphysical.any() and gs.n_drawn >= 20
    with pytest.raises(UserError, match="reject-unphysical: only 0 of 5"):
        generate_configurations(trained, priors["buffer"], 5, 0.4, overlap=50.0,
                                reject_unphysical=True, max_draw_factor=3)


def test_unseen_gamma_is_refused(trained, priors):
    with pytest.raises(PriorError, match="trained gammas: 0.4, 1"):
        generate_configurations(trained, priors["buffer"], 5, 0.7)
    with pytest.raises(PriorError, match="interpolates only inside"):
        generate_configurations(trained, priors["flow"], 5, 3.0)


def test_written_files_pass_the_reader_and_are_reproducible(trained, latents, priors,
                                                            tmp_path):
    def make(path):
        sets = [generate_configurations(trained, priors["gmm"], 12, g, seed=2,
                                        potential=latents.potential) for g in (0.4, 1.0)]
        return write_generated(path, sets, attrs={"checkpoint_fingerprint": "f00"},
                               xyz=path.with_suffix(".xyz"))

    a, b = make(tmp_path / "a.h5"), make(tmp_path / "b.h5")
    ds = read_dataset(a)
    assert len(ds) == 24 and ds.n_particles == N and ds.box == BOX
    np.testing.assert_array_equal(ds.gamma, np.repeat([0.4, 1.0], 12))
    assert ds.attrs["source"] == "generate" and ds.attrs["prior"] == "gmm"
    assert ds.attrs["seed"] == 2 and ds.attrs["checkpoint_fingerprint"] == "f00"
    assert ds.attrs["decoder_precision"] == "float32"
    assert json.loads(ds.attrs["prior_params"])["n_components"] == 2
    assert set(ds.extra) == {"gram_residual", "gram_negative", "min_distance", "overlap",
                             "outside"}
    db = read_dataset(b)
    for k in ("positions", "energy", "gamma"):
        np.testing.assert_array_equal(getattr(ds, k), getattr(db, k))
    for k in ds.extra:
        np.testing.assert_array_equal(ds.extra[k], db.extra[k])
    skip = {"created"}
    assert {k: v for k, v in ds.attrs.items() if k not in skip} == \
        {k: v for k, v in db.attrs.items() if k not in skip}
    assert a.with_suffix(".xyz").read_text() == b.with_suffix(".xyz").read_text()
    with pytest.raises(UserError, match="exists"):
        make(tmp_path / "a.h5")


def test_relaxation_is_seeded_and_separates_overlaps(trained, latents, priors):
    gs = generate_configurations(trained, priors["buffer"], 10, 1.0, seed=0,
                                 potential=latents.potential)
    sim = latents.sim[1.0]
    p1, e1, _ = relax_configurations(gs.positions, sim, 1.0, 20, seed=3)
    p2, e2, _ = relax_configurations(gs.positions, sim, 1.0, 20, seed=3)
    np.testing.assert_array_equal(p1, p2)
    from mcsim.potentials import total_energy

    np.testing.assert_allclose(e1, total_energy(p1, 1.0, latents.potential), rtol=1e-9)
    assert np.median(e1) < np.median(gs.energy)


def test_compare_sets_identities():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 5, (200, 6, 2))
    b = a + [0.0, 0.5]
    e = rng.normal(size=200)
    d = compare_sets({"mc": {"positions": a, "energy": e},
                      "same": {"positions": a.copy(), "energy": e.copy()},
                      "up": {"positions": b, "energy": e + 1.0}}, "mc", 5.0, n_boot=20)
    assert d["same"]["energy"].w1 == 0 and d["same"]["pair_distance"].w1 == 0
    assert d["same"]["height"].js == 0
    assert d["up"]["energy"].w1 == pytest.approx(1.0)
    assert d["up"]["height"].w1 == pytest.approx(0.5)  # every height shifted by 0.5
    assert d["up"]["pair_distance"].w1 == pytest.approx(0.0, abs=1e-12)  # rigid shift
    iu = np.triu_indices(6, 1)
    r = np.linalg.norm(a[:, iu[0]] - a[:, iu[1]], axis=-1).ravel()
    c = rng.uniform(0, 5, (150, 6, 2))
    rc = np.linalg.norm(c[:, iu[0]] - c[:, iu[1]], axis=-1).ravel()
    d2 = compare_sets({"mc": {"positions": a, "energy": e},
                       "c": {"positions": c, "energy": e[:150]}}, "mc", 5.0, n_boot=50)
    assert d2["c"]["pair_distance"].w1 == pytest.approx(wasserstein_distance(rc, r))
    assert 0 < d2["c"]["pair_distance"].w1_err < d2["c"]["pair_distance"].w1 + 0.1


def test_run_generation_writes_the_report(model, tmp_path):
    cfg = GenerateConfig(priors=("normal", "buffer", "flow"), n=12, n_boot=5,
                         relax_sweeps=5, **SMALL_FLOW)
    s = run_generation(model, tmp_path / "rep", cfg, progress=False)
    assert s["n_per_gamma"] == 12 and set(s["gammas"]) == {"0.4", "1"}
    for gres in s["gammas"].values():
        assert set(gres["priors"]) == {"normal", "buffer", "flow"}
        assert set(gres["postprocessed"]) == {"normal+mc5", "buffer+mc5", "flow+mc5",
                                              "uniform+mc5"}
        assert gres["floor"]["energy"]["w1"] > 0
        r = gres["priors"]["buffer"]["ratios"]
        assert set(r) == {f"{o}_{m}" for o in ("energy", "pair_distance", "height")
                          for m in ("w1", "js")}
    assert s["speed"]["sampler_rate_per_s"] > 0 and s["speed"]["ratio"] > 0
    rep = tmp_path / "rep"
    for f in ("generate.json", "generate.md", "fig_gamma_0.4.png", "fig_gamma_1.png",
              "priors/flow.npz", "sets/buffer_gamma_0.4.h5", "sets/mc_floor_gamma_1.h5"):
        assert (rep / f).is_file(), f
    assert read_dataset(rep / "sets/mc_floor_gamma_1.h5").attrs["seed"] == cfg.mc_seed
    assert "| 0.4 | buffer |" in (rep / "generate.md").read_text()
    assert json.loads((rep / "generate.json").read_text())["config"] == cfg.to_dict()
    with pytest.raises(UserError, match="exists"):
        run_generation(model, rep, cfg, progress=False)


def test_config_round_trip_and_validation():
    cfg = GenerateConfig(priors=("flow", "buffer"), gammas=(0.4,), buffer_alpha=0.5,
                         pca_components=3, flow_hidden=(8, 8))
    assert GenerateConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad, field in (({"n": 0}, "n:"), ({"priors": ("vamp",)}, "priors:"),
                       ({"overlap": -1.0}, "overlap:"), ({"floor": "x"}, "floor:"),
                       ({"gammas": (float("nan"),)}, "gammas:"),
                       ({"flow_passes": 1}, "flow_passes:"),
                       ({"decoder_precision": "float16"}, "decoder_precision:")):
        with pytest.raises(UserError, match=field):
            GenerateConfig(**bad)
    with pytest.raises(UserError, match="colour: unknown setting"):
        GenerateConfig.from_dict({"colour": 1})


# ---------------------------------------------------------------------------------
# CLI
def _code(argv: list[str]) -> int:
    """Exit code of the CLI (argparse errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _one_line_error(capsys, what: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("generate: error:") and what in err[0], err[0]


def test_cli_writes_a_readable_file_and_refuses_to_overwrite(model, tmp_path, capsys):
    out = tmp_path / "g.h5"
    argv = ["--checkpoint", str(model), "--gamma", "0.4", "--n", "15", "--out", str(out),
            "--xyz", "--no-progress", "--seed", "3"]
    assert main(argv) == 0
    line = capsys.readouterr().out
    assert "15 configurations (prior buffer, gamma 0.4, seed 3)" in line
    assert "unphysical" in line and "configurations/s" in line
    ds = read_dataset(out)
    assert len(ds) == 15 and ds.attrs["prior"] == "buffer" and out.with_suffix(".xyz").is_file()
    before = out.read_bytes()
    assert main(argv) == 2
    _one_line_error(capsys, "exists (use --overwrite")
    assert out.read_bytes() == before


def test_cli_bad_input_exits_2_with_one_line(model, tmp_path, capsys, monkeypatch):
    base = ["--checkpoint", str(model), "--no-progress", "--out", str(tmp_path / "x.h5")]
    cases = [
        (["--gamma", "0.7"], "not seen in training (trained gammas: 0.4, 1)"),
        (["--gamma", "0.4", "--prior", "vamp"], "unknown prior 'vamp'"),
        (["--gamma", "-1"], "argument --gamma"),
        (["--n", "0"], "argument --n"),
        (["--gamma", "0.4", "--relax-sweeps", "5"], "--relax-sweeps: only with --evaluate"),
        (["--load-prior", str(tmp_path / "none.npz")], "no such prior file"),
        (["--gamma", "0.4", "--decoder-precision", "bfloat16"],
         "--decoder-precision: decoder precision bfloat16: needs arch coord"),
        (["--gamma", "0.4", "--decoder-precision", "half"], "argument --decoder-precision"),
    ]
    for extra, what in cases:
        assert _code(base + extra) == 2, extra
        _one_line_error(capsys, what)
        assert not (tmp_path / "x.h5").exists()
        assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.tmp"))
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--out",
                 str(tmp_path / "y.h5")]) == 2
    _one_line_error(capsys, "missing.pt: no such file")
    monkeypatch.chdir(tmp_path)
    assert main(["--gamma", "0.4"]) == 2
    _one_line_error(capsys, "no best.pt found under runs/")


def test_cli_save_and_load_prior(model, tmp_path, capsys):
    base = ["--checkpoint", str(model), "--gamma", "1.0", "--n", "8", "--no-progress",
            "--prior", "pca"]
    assert main(base + ["--out", str(tmp_path / "a.h5"), "--save-prior",
                        str(tmp_path / "pca.npz")]) == 0
    assert main(base + ["--out", str(tmp_path / "b.h5"), "--load-prior",
                        str(tmp_path / "pca.npz")]) == 0
    np.testing.assert_array_equal(read_dataset(tmp_path / "a.h5").positions,
                                  read_dataset(tmp_path / "b.h5").positions)
    assert main(base + ["--out", str(tmp_path / "c.h5"), "--load-prior",
                        str(tmp_path / "pca.npz"), "--prior", "gmm"]) == 2
    _one_line_error(capsys, "holds a 'pca' prior, not 'gmm'")


def test_latest_checkpoint_picks_the_newest(tmp_path):
    for i, name in enumerate(("a", "b/c")):
        p = tmp_path / "runs" / name / "best.pt"
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        os.utime(p, (1000 + i, 1000 + i))
    assert latest_checkpoint(tmp_path / "runs") == tmp_path / "runs" / "b" / "c" / "best.pt"
    shutil.rmtree(tmp_path / "runs")
    with pytest.raises(UserError, match="no best.pt"):
        latest_checkpoint(tmp_path / "runs")
