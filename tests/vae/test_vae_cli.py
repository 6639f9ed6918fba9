"""The train-vae command: runs on defaults, one-line errors with exit code 2, resume, sweep."""

from __future__ import annotations

import json
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from mcsim.io import write_dataset
from vae.cli import main

N = 6
FAST = ["--channels", "4", "8", "--hidden", "16", "8", "--embed-dim", "3", "--pair-hidden", "8",
        "--latent-dim", "3", "--no-progress", "--threads", "1", "--lr", "0.01"]


def _write(path, n=N, m=60, nan=False):
    rng = np.random.default_rng(0)
    gamma = np.repeat([0.1, 1.0], m // 2)
    pos = rng.uniform(0, 10, (m, n, 2))
    pos[..., 1] *= np.exp(-gamma)[:, None]
    write_dataset(path, pos, gamma, {"box": 10.0, "source": "test"})
    if nan:
        with h5py.File(path, "r+") as f:
            f["positions"][0, 0, 0] = np.nan
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("cli") / "good.h5")


def _one_line_error(capsys, what: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("train-vae: error:") and what in err[0], err[0]


def test_quick_run_writes_everything(good, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--data", str(good), "--out", str(out), "--quick", "--epochs", "2", *FAST]) == 0
    stdout = capsys.readouterr().out
    assert "gamma probe test R^2" in stdout
    for name in ("best.pt", "last.pt", "history.csv", "loss_curve.png", "metrics.json",
                 "config.json"):
        assert (out / name).is_file(), name
    for name in ("pca.png", "tsne.png", "kl_ranking.png", "traversal.png", "origin.png",
                 "probe.png", "reconstructions.png", "latent.json"):
        assert (out / "analysis" / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["data"]["max_per_gamma"] == 200
    # resume with more epochs continues from epoch 2
    assert main(["--data", str(good), "--out", str(out), "--quick", "--epochs", "3",
                 "--resume", "--no-analysis", *FAST]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]


@pytest.mark.parametrize(("make", "args", "what"), [
    ("missing", [], "no such file"),
    ("corrupt", [], "not an HDF5 file"),
    ("nan", [], "NaN"),
    ("mixed", [], "mix particle numbers"),
    ("good", ["--sort", "random"], "invalid choice"),
    ("good", ["--epochs", "0"], "not a positive integer"),
    ("good", ["--beta", "2"], "loss.weight"),
    ("good", ["--representation", "coords", "--arch", "pair"], "model.arch"),
    ("good", ["--representation", "grid", "--arch", "study"], "model.arch"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(good, tmp_path, capsys, make, args,
                                                         what):
    files = [str(good)]
    if make == "missing":
        files = [str(tmp_path / "nope.h5")]
    elif make == "corrupt":
        (tmp_path / "bad.h5").write_bytes(b"\x00" * 100)
        files = [str(tmp_path / "bad.h5")]
    elif make == "nan":
        files = [str(_write(tmp_path / "nan.h5", nan=True))]
    elif make == "mixed":
        files = [str(good), str(_write(tmp_path / "n7.h5", n=7))]
    out = tmp_path / "out"
    argv = ["--data", *files, "--out", str(out), *FAST, *args]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit directly
        code = exc.code
    assert code == 2
    _one_line_error(capsys, what)
    assert not out.exists()


def test_refuses_non_empty_out_and_resume_without_run(good, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["--data", str(good), "--out", str(out), *FAST]) == 2
    _one_line_error(capsys, "--out: ")
    assert main(["--data", str(good), "--out", str(tmp_path / "new"), "--resume", *FAST]) == 2
    _one_line_error(capsys, "--resume: ")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_sweep_table(good, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["--data", str(good), "--out", str(out), "--epochs", "1", *FAST,
            "--latent-dim", "2", "3", "--lambda", "1e-3", "1e-1"]
    assert main(argv) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert {(r["latent_dim"], r["weight"]) for r in rows} == {(2, 1e-3), (2, 0.1), (3, 1e-3),
                                                              (3, 0.1)}
    assert (out / "sweep.csv").is_file() and (out / "sweep.png").is_file()
    assert "mse_falls_with_latent_dim" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("train-vae") is None, reason="console script not installed")
def test_console_script_help():
    res = subprocess.run(["train-vae", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--latent-dim" in res.stdout


def test_cuda_without_a_gpu_is_a_user_error(good, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = tmp_path / "out"
    assert main(["--data", str(good), "--out", str(out), "--device", "cuda", *FAST]) == 2
    _one_line_error(capsys, "cuda")
    assert not out.exists()


def test_config_file_is_a_starting_point(good, tmp_path):
    first = tmp_path / "first"
    assert main(["--data", str(good), "--out", str(first), "--epochs", "1", "--sort", "height",
                 "--no-analysis", *FAST]) == 0
    second = tmp_path / "second"
    assert main(["--data", str(good), "--out", str(second), "--config",
                 str(first / "config.json"), "--epochs", "2", "--no-analysis", *FAST]) == 0
    cfg = json.loads((second / "config.json").read_text())
    assert cfg["data"]["sort"] == "height" and cfg["train"]["epochs"] == 2


@pytest.mark.parametrize(("extra", "arch"), [
    ([], "pair"),
    (["--representation", "coords"], "fc"),
    (["--representation", "grid"], "conv"),
    (["--arch", "study"], "study"),
])
def test_default_architecture_follows_the_representation(extra, arch):
    from vae.cli import build_parser, config_from_args

    cfg, _, _ = config_from_args(build_parser().parse_args(["--data", "d.h5", "--out", "o",
                                                           *extra]))
    assert cfg.model.arch == arch


def test_physics_selection_without_the_simulation_is_a_user_error(good, tmp_path, capsys):
    """--select physics needs the data's potential and temperature (the file's simulation
    config): a file without them fails before any output; a coordinates model refuses."""
    out = tmp_path / "out"
    assert main(["--data", str(good), "--out", str(out), "--select", "physics", *FAST]) == 2
    _one_line_error(capsys, "records no simulation config")
    assert not out.exists()
    assert main(["--data", str(good), "--out", str(out), "--select", "physics",
                 "--representation", "coords", *FAST]) == 2
    _one_line_error(capsys, "train.select")
    assert not out.exists()
