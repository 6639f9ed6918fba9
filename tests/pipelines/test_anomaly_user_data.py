"""Anomaly tests on anyone's data: ``anomaly-test --set``, the PyOD-style
:class:`VAEDetector` and the ``score`` command, on the session's quick model (N = 30,
L = 10, trained at gamma 1 and 2)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from mcsim import SimConfig, run_simulation
from mcsim.clitools import UserError
from mcsim.io import read_dataset
from pipelines.anomaly import SCORES, AnomalyConfig, run_anomaly_test
from pipelines.anomaly.cli import main as anomaly_main
from pipelines.anomaly.config import AnomalyConfigError
from pipelines.anomaly.detector import VAEDetector
from pipelines.anomaly.score_cli import main as score_main
from pipelines.anomaly.score_cli import read_scores
from pipelines.anomaly.user_sets import UserSet, load_positions, parse_set

# small score models (as the anomaly-test tests); every test uses the same settings
FIT = dict(fit_max=500, pca_components=5, iforest_trees=50, ocsvm_nu=0.1, iwae_k=16)
FPR = 0.1


def _auc_null_sd(n_pos: int, n_neg: int) -> float:
    """sd of the Mann-Whitney AUC when both samples come from one distribution."""
    return math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))


@pytest.fixture(scope="module")
def files(anomaly_trained, tmp_path_factory):
    """User data: a fresh in-distribution draw (gamma 1 and 2, another seed), a set at
    gamma = 5, that set as .npy in a box of side 12, and an N = 20 file."""
    d = tmp_path_factory.mktemp("userdata")
    run = dict(n_threads=1, n_traces=0, check_samples=0, progress=False)
    run_simulation(SimConfig(gammas=(1.0, 2.0), n_samples=50, sweeps=300, seed=11),
                   d / "fresh.h5", **run)
    run_simulation(SimConfig(gammas=(5.0,), n_samples=100, sweeps=300, seed=12),
                   d / "hot.h5", **run)
    run_simulation(SimConfig(n_particles=20, gammas=(1.0,), n_samples=5, sweeps=10, seed=3),
                   d / "n20.h5", **run)
    np.save(d / "hot_L12.npy", read_dataset(d / "hot.h5").positions * 1.2)
    return d


@pytest.fixture(scope="module")
def user_report(anomaly_trained, files, tmp_path_factory):
    out = tmp_path_factory.mktemp("user_report")
    cfg = AnomalyConfig(sets=("corrupted",), n=100, bootstrap=200, **FIT)
    sets = [UserSet("fresh", files / "fresh.h5"), UserSet("hot", files / "hot.h5"),
            UserSet("hot L=12", files / "hot_L12.npy", box=12.0)]
    s = run_anomaly_test(anomaly_trained / "run" / "best.pt", out / "out", cfg,
                         data_dir=out / "sets", progress=False, n_threads=1, figures=False,
                         user_sets=sets)
    return s, np.load(out / "out" / "scores.npz")


def test_user_sets_join_the_table_with_every_score(user_report):
    s, _ = user_report
    assert list(s["results"]) == ["corrupt K=4", "fresh", "hot", "hot L=12"]
    assert "iwae" in s["scores"] and "-IWAE" in s["table_md"]
    assert "| fresh |" in s["table_md"] and "| hot L=12 |" in s["table_md"]
    for name in ("fresh", "hot", "hot L=12"):
        assert set(s["results"][name]) == set(s["scores"])
        assert s["sets"][name]["kind"] == "user" and s["sets"][name]["n"] == 100


def test_a_set_at_another_gamma_is_detected(user_report):
    s, _ = user_report
    hot = s["results"]["hot"]
    # clearly above chance for some score: the CI's lower end is above 0.5
    assert max(r["lo"] for r in hot.values()) > 0.5, hot


def test_a_fresh_in_distribution_draw_scores_like_the_test_split(user_report):
    s, _ = user_report
    sd = _auc_null_sd(s["sets"]["fresh"]["n"], s["data"]["n_test"])
    z = 3.0  # two-sided, Bonferroni over the scores (9 scores: 0.3 % each -> 2.8)
    for k, r in s["results"]["fresh"].items():
        assert abs(r["auc"] - 0.5) < z * sd, (k, r)


def test_npy_in_another_box_is_rescaled_with_a_warning(user_report):
    s, arrays = user_report
    notes = [w for w in s["warnings"] if w.startswith("set hot L=12")]
    assert len(notes) == 1 and "L_model/L_file = 0.8333" in notes[0], s["warnings"]
    assert "model's density" in notes[0]
    for k in s["scores"]:
        if k == "iwae":  # its own draws per set
            continue
        np.testing.assert_allclose(arrays[f"hot L=12/{k}"], arrays[f"hot/{k}"],
                                   rtol=1e-5, atol=1e-6, err_msg=k)


def test_load_positions_refuses_bad_data(files, tmp_path):
    kw = dict(n_particles=30, model_box=10.0, what="set x")
    with pytest.raises(UserError, match="N=20 particles but the model was trained on N=30"):
        load_positions(files / "n20.h5", **kw)
    with pytest.raises(UserError, match="give the side of the box"):
        load_positions(files / "hot_L12.npy", **kw)
    with pytest.raises(UserError, match="outside the box"):
        load_positions(files / "hot_L12.npy", box=10.0, **kw)  # positions up to 12
    with pytest.raises(UserError, match="says its box is L=10"):
        load_positions(files / "hot.h5", box=12.0, **kw)
    bad = read_dataset(files / "hot.h5").positions[:3].copy()
    bad[1, 4, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(UserError, match="1 configuration hold NaN"):
        load_positions(tmp_path / "nan.npy", box=10.0, **kw)
    one = load_positions(files / "hot.h5", limit=7, **kw)
    assert one.positions.shape == (7, 30, 2) and one.n_total == 100 and one.note == ""
    with pytest.raises(ValueError, match="NAME=FILE"):
        parse_set("nofile")
    assert parse_set("a=b=c.h5") == UserSet("a", Path("b=c.h5"))


def _one_line(capsys, prog: str, what: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error:") and what in err[0], err[0]
    return err[0]


def test_every_anomaly_setting_has_an_option_and_iwae_k_is_validated():
    from dataclasses import fields

    from pipelines.anomaly.cli import _FIELDS, build_parser, config_from_args

    assert set(_FIELDS.values()) == {f.name for f in fields(AnomalyConfig)}
    assert config_from_args(build_parser().parse_args(["--iwae-k", "4"])).iwae_k == 4
    with pytest.raises(AnomalyConfigError, match="iwae_k"):
        AnomalyConfig(iwae_k=0)


def test_anomaly_test_set_flag_refuses_before_work(anomaly_trained, files, capsys, tmp_path):
    ck = str(anomaly_trained / "run" / "best.pt")
    base = ["--checkpoint", ck, "--out", str(tmp_path / "o"), "--data-dir",
            str(tmp_path / "d"), "--sets", "corrupted", "--no-progress", "--no-figures"]
    cases = [
        (["--set", f"small={files / 'n20.h5'}"], "N=20"),
        (["--set", f"m={files / 'hot_L12.npy'}"], "--box"),
        (["--set", "nothing"], "NAME=FILE"),
        (["--set", f"m={tmp_path / 'missing.h5'}"], "no such file"),
        (["--set", f"a={files / 'hot.h5'}", "--box", "12"], "--box"),
        (["--set", f"test={files / 'hot.h5'}"], "already taken"),
    ]
    for extra, what in cases:
        assert anomaly_main([*base, *extra]) == 2, extra
        _one_line(capsys, "anomaly-test", what)
    assert os.listdir(tmp_path) == []
    # accepted: --box goes to the .npy sets only
    from pipelines.anomaly.cli import _check_user_sets, build_parser

    h5, npy = files / "hot.h5", files / "hot_L12.npy"
    args = build_parser().parse_args(["--set", f"a={h5}", f"b={npy}", "--box", "12"])
    assert _check_user_sets(args) == [UserSet("a", h5), UserSet("b", npy, 12.0)]


# -- the detector ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector(anomaly_trained):
    cfg = AnomalyConfig(**FIT)
    return VAEDetector(anomaly_trained / "run" / "best.pt", score="mse", fpr=FPR,
                       config=cfg).fit()


@pytest.fixture(scope="module")
def test_split(detector, anomaly_trained):
    from vae.training import prepare_data

    m = detector.model_
    data = prepare_data(m.config, [anomaly_trained / "data.h5"])
    return data.positions[m.split.test]


def test_detector_threshold_semantics(detector, test_split):
    det = detector
    assert det.scores_ == list(SCORES)
    np.testing.assert_array_equal(det.labels_, det.decision_scores_ > det.threshold_)
    assert det.threshold_ == det.thresholds_["mse"]
    # on the validation split: floor(fpr n) / n exactly (continuous scores, no ties)
    for k in det.scores_:
        assert det.val_fpr_[k] == math.floor(FPR * det.n_val_) / det.n_val_, k
    # held out (test split): FPR = fpr within the binomial error of both samples
    n_test = len(test_split)
    sd = math.sqrt(FPR * (1 - FPR) * (1 / det.n_val_ + 1 / n_test))
    every = det.score_all(test_split)
    labels = det.labels(every)
    for k in det.scores_:
        np.testing.assert_array_equal(labels[k], every[k] > det.thresholds_[k])
        assert abs(labels[k].mean() - FPR) < 3.0 * sd, (k, labels[k].mean())
    np.testing.assert_array_equal(det.predict(test_split[:30]), labels["mse"][:30])
    # (torch's float32 results depend on the batch in the last bits)
    np.testing.assert_allclose(det.decision_function(test_split[:30]), every["mse"][:30],
                               rtol=1e-6)


def test_detector_scores_do_not_depend_on_batching(detector, test_split):
    whole = detector.score_all(test_split[:60])
    parts = [detector.score_all(test_split[:25], batch_size=7),
             detector.score_all(test_split[25:60], start=25, batch_size=10)]
    for k in detector.scores_:
        np.testing.assert_allclose(np.concatenate([p[k] for p in parts]), whole[k],
                                   rtol=1e-5, atol=1e-6, err_msg=k)


def test_iwae_score_tightens_with_k(detector, test_split):
    """E[L_K] grows with K (Burda et al. 2016, thm. 1): -IWAE at K = 64 lies below K = 1
    on average, by more than 3 standard errors of the paired differences."""
    from pipelines.anomaly.scores import SCORE_INFO, Batch, matrix_features, vae_pass

    m = detector.model_
    x = m.inputs(test_split[:50])

    def iwae_score(model, x, k, seed):  # the registry's score, as the anomaly test calls it
        return SCORE_INFO["iwae"].score(k, Batch(model, vae_pass(model, x), matrix_features(x),
                                                 test_split[:len(x)], x=x, seed=seed))
    d = iwae_score(m, x, 1, seed=5) - iwae_score(m, x, 64, seed=6)
    assert d.mean() > 3.0 * d.std(ddof=1) / math.sqrt(d.size), (d.mean(), d.std())
    np.testing.assert_array_equal(iwae_score(m, x[:5], 4, seed=5),
                                  iwae_score(m, x[:5], 4, seed=5))  # seeded


def test_detector_refuses_bad_settings_and_data(detector, anomaly_trained):
    ck = anomaly_trained / "run" / "best.pt"
    with pytest.raises(ValueError, match="score"):
        VAEDetector(ck, score="likelihood")
    with pytest.raises(AnomalyConfigError, match="fpr"):
        VAEDetector(ck, fpr=0.7)
    with pytest.raises(RuntimeError, match="fit"):
        VAEDetector(ck).decision_function(np.zeros((1, 30, 2)))
    with pytest.raises(UserError, match="N=30"):
        detector.decision_function(np.full((2, 20, 2), 5.0))
    with pytest.raises(UserError, match="NaN"):
        detector.decision_function(np.full((2, 30, 2), np.nan))


# -- the score command -----------------------------------------------------------------

def _small_toml(path):
    path.write_text("".join(f"{k} = {v}\n" for k, v in FIT.items()))
    return path


def test_score_cli_end_to_end(detector, anomaly_trained, files, capsys, tmp_path):
    ck = str(anomaly_trained / "run" / "best.pt")
    toml = str(_small_toml(tmp_path / "small.toml"))
    out = tmp_path / "hot_scores.h5"
    argv = [str(files / "hot_L12.npy"), "--box", "12", "--checkpoint", ck, "--out", str(out),
            "--config", toml, "--fpr", str(FPR), "--no-progress", "--threads", "1"]
    assert score_main(argv) == 0
    cap = capsys.readouterr()
    assert "rescaled by L_model/L_file = 0.8333" in cap.err and "scores:" in cap.out
    scores, labels, attrs = read_scores(out)
    assert list(scores) == sorted(SCORES) and all(v.shape == (100,) for v in scores.values())
    thr = json.loads(attrs["thresholds"])
    assert thr == pytest.approx(detector.thresholds_, rel=1e-9)  # same fit as the API
    for k in scores:
        np.testing.assert_array_equal(labels[k], scores[k] > thr[k])
    assert attrs["scale_factor"] == pytest.approx(10 / 12) and attrs["fpr"] == FPR
    # the gamma = 5 set is flagged far above the false-positive rate by some score
    assert max(labels[k].mean() for k in labels) > 0.5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file
    before = out.stat().st_mtime_ns
    assert score_main(argv) == 2
    _one_line(capsys, "score", "--overwrite")
    assert out.stat().st_mtime_ns == before


def _nan_npy(path):
    a = np.full((3, 30, 2), 5.0)
    a[2, 0, 1] = np.nan
    np.save(path, a)
    return path


@pytest.mark.parametrize("case,what", [
    ("missing-data", "no such file"),
    ("missing-checkpoint", "--checkpoint"),
    ("wrong-n", "N=20"),
    ("nan", "NaN"),
    ("npy-without-box", "--box"),
    ("existing-output", "--overwrite"),
    ("bad-fpr", "--fpr"),
    ("out-is-input", "also the input"),
    ("out-is-folder", "is a directory"),
])
def test_score_cli_hostile_input_is_one_line_exit_2(case, what, anomaly_trained, files,
                                                    capsys, tmp_path):
    ck = str(anomaly_trained / "run" / "best.pt")
    data, out, extra = str(files / "hot.h5"), tmp_path / "s.h5", []
    if case == "missing-data":
        data = str(tmp_path / "none.h5")
    elif case == "missing-checkpoint":
        ck = str(tmp_path / "none.pt")
    elif case == "wrong-n":
        data = str(files / "n20.h5")
    elif case == "nan":
        data, extra = str(_nan_npy(tmp_path / "nan.npy")), ["--box", "10"]
    elif case == "npy-without-box":
        data = str(files / "hot_L12.npy")
    elif case == "existing-output":
        out.write_bytes(b"keep")
    elif case == "bad-fpr":
        extra = ["--fpr", "0.7"]
    elif case == "out-is-input":
        out, extra = files / "hot.h5", ["--overwrite"]
    elif case == "out-is-folder":
        out = tmp_path
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(files))
    assert score_main([data, "--checkpoint", ck, "--out", str(out), "--no-progress",
                       *extra]) == 2
    _one_line(capsys, "score", what)
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(files))) == before
    if case == "existing-output":
        assert out.read_bytes() == b"keep"
