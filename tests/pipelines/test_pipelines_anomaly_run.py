"""The anomaly test end to end on a tiny quick-trained model: report files, a VAE that
separates uniform configurations from its test split, exact EDM imputation, reuse of
generated sets, determinism, and the ``anomaly-test`` command's errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from pipelines.anomaly import SCORES, AnomalyConfig, make_anomaly_sets, run_anomaly_test
from pipelines.anomaly.cli import main

# small everything; every kind of set is exercised
SMALL = dict(n=100, bootstrap=200, fit_max=500, impute_n=20, sweeps=100, fake_sweeps=20,
             blackout_blocks=((10, 0), (30, 0)), mask_fractions=(0.2,), pca_components=5,
             iforest_trees=50, ocsvm_nu=0.1, edm_iters=400)


@pytest.fixture(scope="module")
def trained(anomaly_trained):
    """The session's quick model (tests/pipelines/conftest.py)."""
    return anomaly_trained


@pytest.fixture(scope="module")
def report(trained):
    cfg = AnomalyConfig(**SMALL)
    summary = run_anomaly_test(trained / "run" / "best.pt", trained / "out", cfg,
                               data_dir=trained / "sets", progress=False, n_threads=1,
                               figures=False)
    return cfg, summary


def test_report_files_and_structure(report, trained):
    cfg, s = report
    out = trained / "out"
    for name in ("anomaly.json", "anomaly.md", "scores.npz"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    on_disk = json.loads((out / "anomaly.json").read_text())
    assert on_disk["table_md"] == s["table_md"]
    assert AnomalyConfig.from_dict(on_disk["config"]) == cfg
    names = ["gamma=3", "fake nm:4,2", "uniform", "corrupt K=4", "blackout 10x10@0",
             "blackout 30x30@0", "mask 20%"]
    assert list(s["results"]) == names
    assert s["data"]["n_test"] == 160 and s["data"]["n_val"] == 80
    for row in s["results"].values():
        assert set(row) == set(s["scores"]) and len(s["scores"]) == len(SCORES)
        for r in row.values():
            assert 0 <= r["lo"] <= r["auc"] <= r["hi"] <= 1 and 0 <= r["tpr"] <= 1
    assert set(s["fpr_test"]) == set(s["scores"]) == set(s["thresholds"])
    npz = np.load(out / "scores.npz")
    assert npz["uniform/mse"].shape == (100,) and npz["test/mse"].shape == (160,)
    assert "| uniform |" in (out / "anomaly.md").read_text()


def test_figures_are_written(trained):
    cfg = AnomalyConfig(**{**SMALL, "sets": ("uniform", "blackout"),
                           "blackout_blocks": ((10, 8),)})
    out = trained / "figs"
    s = run_anomaly_test(trained / "run" / "best.pt", out, cfg, data_dir=trained / "sets",
                         progress=False, n_threads=1)
    names = ["mse_hist.png", "latent_pca.png", "roc.png", "auc_heatmap.png", "imputation.png"]
    assert [os.path.basename(f) for f in s["figures"]] == names
    for name in names:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in (out / "anomaly.md").read_text()


def test_quick_model_separates_uniform_configurations(report):
    _, s = report
    r = s["results"]["uniform"]["mse"]
    assert r["auc"] > 0.7 and r["lo"] > 0.6, r
    # the physical energy sees the overlaps of uniform random configurations at once
    assert s["results"]["uniform"]["energy"]["auc"] > 0.99


def test_energy_is_blind_to_missing_data_and_sees_corruption(report, trained):
    _, s = report
    npz = np.load(trained / "out" / "scores.npz")
    # missing data leaves positions unchanged: the energy scores are test energies
    assert np.all(np.isin(npz["blackout 10x10@0/energy"], npz["test/energy"]))
    # 4 particles moved by up to 2.8 sigma create overlaps in most configurations
    assert s["results"]["corrupt K=4"]["energy"]["auc"] > 0.9


def test_edm_completion_is_exact_on_a_blacked_out_block(report):
    _, s = report
    imp = s["imputation"]["blackout 10x10@0"]["rmse_sigma"]
    assert imp["edm"] < 1e-3  # sigma: the 10 particles are pinned by 20 known distances
    assert imp["vae"] > 100 * imp["edm"] and imp["mean"] > 100 * imp["edm"]
    assert s["imputation"]["blackout 30x30@0"]["rmse_sigma"]["edm"] is None


def test_rerun_reuses_sets_and_reproduces_the_results(report, trained):
    cfg, s = report
    files = sorted((trained / "sets").glob("*.h5"))
    assert len(files) == 3
    stamps = {p: p.stat().st_mtime_ns for p in files}
    # a subset of the kinds: same seed -> the same rows, whatever else is selected
    sub = cfg.replace(sets=["unseen-gamma", "fake-potential", "uniform", "random-mask"])
    again = run_anomaly_test(trained / "run" / "best.pt", trained / "out2", sub,
                             data_dir=trained / "sets", progress=False, n_threads=1,
                             figures=False)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing regenerated
    assert list(again["results"]) == ["gamma=3", "fake nm:4,2", "uniform", "mask 20%"]
    for name, row in again["results"].items():
        assert row == s["results"][name], name
    assert again["imputation"]["mask 20%"] == s["imputation"]["mask 20%"]
    assert not (trained / "out2" / "roc.png").exists()
    # a smaller request is served by the same files
    paths = make_anomaly_sets(cfg.replace(n=50), trained / "sets", n_particles=30, box=10.0,
                              progress=False)
    assert sorted(paths.values()) == files
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def _exit_code(argv) -> int:
    """main's return code, or the code of argparse's SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _one_line(capsys, what: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("anomaly-test: error:") and what in err[0], err[0]


@pytest.mark.parametrize("argv,what", [
    (["--checkpoint", "nowhere/best.pt"], "no such file"),
    (["--corrupt", "0"], "--corrupt"),
    (["--corrupt", "four"], "--corrupt"),
    (["--sets", "uniform", "martians"], "--sets"),
    (["--blackout", "10@x"], "--blackout"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, what, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _exit_code(argv) == 2
    _one_line(capsys, what)
    assert os.listdir(tmp_path) == []


def test_cli_errors_that_need_the_model(trained, capsys, tmp_path):
    ck = str(trained / "run" / "best.pt")
    assert main(["--checkpoint", ck, "--corrupt", "31", "--out", str(tmp_path / "a")]) == 2
    _one_line(capsys, "corrupt_k")
    assert main(["--checkpoint", ck, "--unseen-gamma", "2", "--out", str(tmp_path / "b"),
                 "--data-dir", str(tmp_path / "d")]) == 2
    _one_line(capsys, "training gammas")
    assert main(["--checkpoint", str(trained / "data.h5"), "--out", str(tmp_path / "c")]) == 2
    _one_line(capsys, "checkpoint")
    assert not (tmp_path / "a").exists() and not (tmp_path / "d").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("n = 100\nfpr = 2.0\n")
    assert main(["--checkpoint", ck, "--config", str(bad), "--out", str(tmp_path / "e")]) == 2
    _one_line(capsys, "fpr")


def test_cli_runs_on_defaults_prints_the_table_and_refuses_to_overwrite(
        trained, capsys, tmp_path, monkeypatch):
    run = tmp_path / "runs" / "quick"
    run.mkdir(parents=True)
    shutil.copy(trained / "run" / "best.pt", run / "best.pt")
    shutil.copytree(trained / "sets", run / "anomaly_data")  # reuse, no simulation
    (tmp_path / "small.toml").write_text(
        "[anomaly]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in
                                  AnomalyConfig(**SMALL).to_dict().items()
                                  if k not in ("sets",)) + "\n")
    monkeypatch.chdir(tmp_path)
    argv = ["--corrupt", "4", "--config", "small.toml", "--no-progress", "--threads", "1",
            "--sets", "uniform", "corrupted", "--no-figures"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| set |" in out and "| corrupt K=4 |" in out and "| uniform |" in out
    assert (run / "anomaly" / "anomaly.json").is_file()
    before = (run / "anomaly" / "anomaly.json").stat().st_mtime_ns
    assert main(argv) == 2
    _one_line(capsys, "--overwrite")
    assert (run / "anomaly" / "anomaly.json").stat().st_mtime_ns == before
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert json.loads((run / "anomaly" / "anomaly.json").read_text())["config"]["seed"] == 1
    assert set(os.listdir(trained / "sets")) <= set(os.listdir(run / "anomaly_data"))
