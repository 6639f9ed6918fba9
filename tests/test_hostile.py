"""Hostile inputs: every command refuses a bad request with exit code 2 and one line on
stderr naming the problem, without a traceback, and leaves the file system exactly as
it was (checksums of every file before and after). Plus crafted files for
``read_dataset``, ``write_dataset``, ``SimConfig.from_json`` and checkpoint loading.

The commands run in-process (their ``main``), in one shared workspace holding a tiny
Monte Carlo dataset (N = 6), a tiny trained VAE and the crafted files; a few cases run
as subprocesses to show the same at the process level.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mcsim.config import SimConfig
from mcsim.io import DatasetError, read_dataset, write_dataset
from mcsim.run import run_simulation
from pipelines.anomaly.config import AnomalyConfig, AnomalyConfigError
from vae.checkpoint import CheckpointError, load_model
from vae.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.training import prepare_data, train

REPO = Path(__file__).resolve().parents[1]
MAINS = {"simulate": "mcsim.cli", "reconstruct": "reconstruct.cli", "train-vae": "vae.cli",
         "anomaly-test": "pipelines.anomaly.cli", "generate": "pipelines.generate.cli",
         "reproduce-study": "pipelines.reproduce", "score": "pipelines.anomaly.score_cli"}
TINY = "--no-progress --latent-dim 2 --channels 2 4 --hidden 8 4 --embed-dim 2 --pair-hidden 4"
CK = "--checkpoint run/best.pt"


# --------------------------------------------------------------------- crafted files
def _set_attr(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


def _extra_is_dataset(f):
    f["extra"] = np.zeros(60)


def _positions_is_group(f):
    del f["positions"]
    f.create_group("positions")["x"] = np.zeros(3)


def _energy_is_group(f):
    del f["energy"]
    f.create_group("energy")


def _row_value(name, row, value):
    def edit(f):
        f[name][row] = value
    return edit


def _extra_wrong_rows(f):
    f.create_group("extra")["score"] = np.zeros(7)


def _drop(name):
    def edit(f):
        del f[name]
    return edit


def _del_attr(name):
    return lambda f: f.attrs.__delitem__(name)


#: name -> (edit of a valid file, words of the expected error)
CRAFTED_DATASETS = {
    "n_done_negative": (_set_attr("n_done", -5), "n_done"),
    "n_done_short": (_set_attr("n_done", 55), "n_done"),
    "n_done_string": (_set_attr("n_done", "60"), "n_done"),
    "complete_string": (_set_attr("complete", "False"), "complete"),
    "complete_int": (_set_attr("complete", 1), "complete"),
    "box_negative": (_set_attr("box", -1.0), "box"),
    "box_string": (_set_attr("box", "abc"), "box"),
    "box_nan": (_set_attr("box", np.nan), "box"),
    "box_missing": (_del_attr("box"), "box"),
    "format_version_string": (_set_attr("format_version", "1"), "format_version"),
    "format_version_newer": (_set_attr("format_version", 99), "newer"),
    "n_particles_mismatch": (_set_attr("n_particles", 7), "n_particles"),
    "n_particles_float": (_set_attr("n_particles", 6.0), "n_particles"),
    "temperature_negative": (_set_attr("temperature", -0.75), "temperature"),
    "config_not_object": (_set_attr("config", "[]"), "config"),
    "config_bad_json": (_set_attr("config", "{"), "config"),
    "extra_is_dataset": (_extra_is_dataset, "extra"),
    "extra_wrong_rows": (_extra_wrong_rows, "extra/score"),
    "positions_is_group": (_positions_is_group, "positions"),
    "energy_is_group": (_energy_is_group, "energy"),
    "gamma_missing": (_drop("gamma"), "gamma"),
    "positions_nan": (_row_value("positions", 3, np.nan), "NaN"),
    "gamma_negative": (_row_value("gamma", 0, -3.0), "gamma"),
    "acceptance_above_one": (_row_value("acceptance", 0, 2.0), "acceptance"),
    "energy_minus_inf": (_row_value("energy", 0, -np.inf), "energy"),
    "not_ljvae": (_set_attr("format", "other"), "not an ljvae dataset"),
}


def _info(key, value):
    def edit(d):
        i = json.loads(d["data_info"])
        i[key] = value
        d["data_info"] = json.dumps(i)
    return edit


def _conf(section, key, value):
    def edit(d):
        c = json.loads(d["config"])
        c[section][key] = value
        d["config"] = json.dumps(c)
    return edit


def _grid(cell):
    def edit(d):
        c = json.loads(d["config"])
        c["data"].update(representation="grid", grid_cell=cell)
        c["model"]["arch"] = "conv"
        d["config"] = json.dumps(c)
    return edit


def _put(key, value):
    return lambda d: d.__setitem__(key, value)


#: name -> (edit of a valid checkpoint dict, words of the expected error)
CRAFTED_CHECKPOINTS = {
    "format_version_string": (_put("format_version", "1"), "format_version"),
    "format_version_bool": (_put("format_version", True), "format_version"),
    "format_version_newer": (_put("format_version", 99), "newer"),
    "n_particles_negative": (_info("n_particles", -5), "n_particles"),
    "n_particles_huge": (_info("n_particles", 10**9), "n_particles"),
    "box_negative": (_info("box", -1.0), "box"),
    "box_string": (_info("box", "10"), "box"),
    "data_info_unknown_field": (_info("evil", 1), "unknown field"),
    "latent_dim_huge": (_conf("model", "latent_dim", 10**9), "latent_dim"),
    "latent_dim_negative": (_conf("model", "latent_dim", -3), "latent_dim"),
    "hidden_huge": (_conf("model", "hidden", [10**6]), "hidden"),
    "trunk_mismatch": (_conf("model", "hidden", [60000, 60000]), "do not match"),
    "hidden_too_many": (_conf("model", "pair_hidden", [4] * 1000), "pair_hidden"),
    "grid_cell_tiny": (_grid(1e-300), "memory"),
    "grid_cell_small": (_grid(1e-4), "memory"),
    "config_not_string": (_put("config", 5), "config"),
    "model_not_dict": (_put("model", [1, 2]), "model"),
    "split_float": (_put("split", {"train": torch.zeros(3), "val": torch.zeros(2).long(),
                                   "test": torch.zeros(2).long()}), "split.train"),
    "split_out_of_range": (_put("split", {"train": torch.tensor([10**6]),
                                          "val": torch.zeros(2).long(),
                                          "test": torch.zeros(2).long()}), "split.train"),
    "epoch_negative": (_put("epoch", -1), "epoch"),
    "history_not_list": (_put("history", "{}"), "history"),
    "missing_config": (lambda d: d.pop("config"), "config"),
}


class _Evil:  # a pickle payload that would leave a marker file if it ever ran
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _craft_h5(src: Path, dst: Path, edit) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _craft_ckpt(src: Path, dst: Path, edit) -> Path:
    d = torch.load(src, weights_only=True)
    edit(d)
    torch.save(d, dst)
    return dst


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Workspace: d.h5 (N = 6, gammas 0.4 and 1, 30 each), run/best.pt, crafted files."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hostile")
    sim = SimConfig(n_particles=6, box=10.0, gammas=(0.4, 1.0), n_samples=30, sweeps=5)
    run_simulation(sim, root / "d.h5", n_threads=1, n_traces=0, check_samples=0,
                   progress=False)
    cfg = RunConfig(DataConfig(), ModelConfig(latent_dim=2, channels=(2, 4), hidden=(8, 4),
                                              embed_dim=2, pair_hidden=(4,)),
                    LossConfig(weight=1e-3), TrainConfig(epochs=1, batch_size=16, lr=1e-2))
    train(cfg, prepare_data(cfg, [str(root / "d.h5")]), root / "run", progress=False)
    (root / "bin.bin").write_bytes(bytes(range(256)) * 4)
    (root / "list.json").write_text("[1, 2]")
    (root / "unknown.toml").write_text("n = 5\n")
    (root / "sweeps0.toml").write_text("[data]\nsweeps = 0\n")
    (root / "left.h5.partial").write_bytes(b"junk from an interrupted run")
    np.save(root / "ok.npy", np.zeros((2, 3, 3)))
    np.save(root / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (root / "trunc.npy").write_bytes((root / "ok.npy").read_bytes()[:-20])
    tri = np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])
    np.save(root / "huge.npy", tri[None] * 1e200)
    np.save(root / "tiny.npy", tri[None] * 1e-200)
    for name in ("n_done_negative", "complete_string", "box_negative", "extra_is_dataset",
                 "positions_is_group"):
        _craft_h5(root / "d.h5", root / f"c_{name}.h5", CRAFTED_DATASETS[name][0])
    for name in ("format_version_string", "n_particles_negative", "box_negative",
                 "latent_dim_huge", "split_float", "config_not_string"):
        _craft_ckpt(root / "run" / "best.pt", root / f"k_{name}.pt",
                    CRAFTED_CHECKPOINTS[name][0])
    d = torch.load(root / "run" / "best.pt", weights_only=True)
    d["history"] = _Evil(root / "PWNED")
    torch.save(d, root / "k_pickle.pt")
    return root


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


# ------------------------------------------------------------------------ the table
# (command, arguments, words the one-line error must contain)
CASES = [
    # simulate: outputs on one path, folders, leftovers (classes 1, 7)
    ("simulate", "--n-samples 10 --sweeps 10 --out s/c.h5 --xyz s/c.h5 --overwrite",
     "same path"),
    ("simulate", "--n-samples 10 --sweeps 10 --out s/c.h5 --plot s/c.h5", "same path"),
    ("simulate", "--n-samples 2 --sweeps 1 --out a.h5 --plot a.png --xyz a.png", "same path"),
    ("simulate", "--n-samples 2 --sweeps 1 --out d.h5", "exists"),
    ("simulate", "--n-samples 2 --sweeps 1 --out run", "is a directory"),
    ("simulate", "--n-samples 2 --sweeps 1 --out run/best.pt/x.h5", "is a file"),
    ("simulate", "--n-samples 2 --sweeps 1 --out left.h5", "interrupted run"),
    ("simulate", "--n-samples 2 --sweeps 1 --out left.h5 --resume", "corrupt partial"),
    # simulate: values (class 2, 3) and resources (class 5)
    ("simulate", "--n-samples 0", "--n-samples"),
    ("simulate", "--sweeps 0", "--sweeps"),
    ("simulate", "--gamma nan", "--gamma"),
    ("simulate", "--chunk-size 0", "--chunk-size"),
    ("simulate", "--temperature 1e-320 --n-samples 1 --sweeps 1", "--temperature"),
    ("simulate", "--cutoff 1e-320 --n-samples 1 --sweeps 1", "--cutoff"),
    ("simulate", "--box 1e300 --n-samples 1 --sweeps 1", "--step"),
    ("simulate", "--seed 99999999999999999999999 --n-samples 1 --sweeps 1 --out s.h5",
     "--seed"),
    ("simulate", "--n-particles 100000 --n-samples 1 --sweeps 1 --out b.h5", "memory"),
    ("simulate", "--n-samples 1000000000000 --sweeps 1 --out b.h5", "disk"),
    ("simulate", "--n-samples 100000 --sweeps 100000000000 --out b.h5", "days"),
    # reconstruct
    ("reconstruct", "d.h5 -o o.h5 --xyz o.h5", "same path"),
    ("reconstruct", "d.h5 -o d.h5 --overwrite", "also the input"),
    ("reconstruct", "d.h5 -o o.h5 --threads 0", "--threads"),
    ("reconstruct", "ok.npy -o o.h5 --originals o.h5", "also the input"),
    ("reconstruct", "d.h5 -o run", "is a directory"),
    ("reconstruct", "d.h5 -o new/o.h5 --potential morse", "potential"),
    ("reconstruct", "c_n_done_negative.h5 -o o.h5", "n_done"),
    ("reconstruct", "c_complete_string.h5 -o o.h5", "complete"),
    ("reconstruct", "c_box_negative.h5 -o o.h5", "box"),
    ("reconstruct", "c_extra_is_dataset.h5 -o o.h5", "extra"),
    ("reconstruct", "c_positions_is_group.h5 -o o.h5", "positions"),
    ("reconstruct", "trunc.npy -o o.h5", "truncated"),
    ("reconstruct", "obj.npy -o o.h5", "Python objects"),
    ("reconstruct", "huge.npy -o o.h5", "too large"),
    ("reconstruct", "tiny.npy -o o.h5", "too small"),
    ("reconstruct", "bin.bin -o o.h5", "cannot read"),
    ("reconstruct", "d.h5 -o o.h5 --box 1e-300", "--box"),
    ("reconstruct", "ok.npy -o o.h5 --gamma -1", "--gamma"),
    ("reconstruct", "d.h5 -o o.h5 --n-boot 100000000000", "memory"),
    # train-vae
    ("train-vae", "--data d.h5 --out r --config bin.bin", "not a text file"),
    ("train-vae", "--data d.h5 --out r --config list.json", "JSON object"),
    ("train-vae", "--data d.h5 --out r --representation grid --grid-cell 1e-9", "memory"),
    ("train-vae", "--data d.h5 --out r --latent-dim 1000000000", "latent_dim"),
    ("train-vae", "--data d.h5 --out r --channels 60000 60000", "memory"),
    ("train-vae", "--data c_positions_is_group.h5 --out r", "positions"),
    ("train-vae", "--data c_extra_is_dataset.h5 --out r", "extra"),
    ("train-vae", "--data bin.bin --out r", "not an HDF5 file"),
    ("train-vae", "--data d.h5 --out d.h5", "not a directory"),
    ("train-vae", "--data run/config.json --out run --overwrite", "input --data"),
    ("train-vae", "--data d.h5 --out r --resume", "nothing to resume"),
    ("train-vae", f"--data d.h5 --out r --lr 1e30 --epochs 1 --no-analysis {TINY}",
     "diverged"),
    # anomaly-test
    ("anomaly-test", f"{CK} --config bin.bin", "not a text file"),
    ("anomaly-test", f"{CK} --config list.json", "table"),
    ("anomaly-test", f"{CK} --out d.h5", "not a directory"),
    ("anomaly-test", f"{CK} --data-dir d.h5", "not a directory"),
    ("anomaly-test", "--checkpoint k_latent_dim_huge.pt", "latent_dim"),
    ("anomaly-test", "--checkpoint k_format_version_string.pt", "format_version"),
    ("anomaly-test", "--checkpoint k_pickle.pt", "never loaded"),
    ("anomaly-test", "--checkpoint d.h5", "not a loadable checkpoint"),
    ("anomaly-test", f"{CK} --sets unseen-gamma --sweeps 0 --n 5", "sweeps"),
    ("anomaly-test", f"{CK} --sets unseen-gamma --temperature 1e-320", "temperature"),
    ("anomaly-test", f"{CK} --sets uniform --n 100000000000000", "days"),
    ("anomaly-test", f"{CK} --sets uniform --n 5 --bootstrap 100000000000", "memory"),
    ("anomaly-test", f"{CK} --sets blackout --blackout 100@0", "does not fit"),
    ("anomaly-test", f"{CK} --sets uniform --n 5 --train-data c_n_done_negative.h5",
     "n_done"),
    # generate
    ("generate", f"{CK} --out g.h5 --xyz g.h5 --overwrite", "same path"),
    ("generate", f"{CK} --out g.h5 --save-prior g.h5 --overwrite", "same path"),
    ("generate", f"{CK} --out g.h5 --evaluate d.h5", "not a directory"),
    ("generate", f"{CK} --out d.h5 --overwrite", "training data"),
    ("generate", f"{CK} --out g.h5 --load-prior bin.bin", "not a prior file"),
    ("generate", f"{CK} --out g.txt", ".h5"),
    ("generate", f"{CK} --out g.h5 --n 100000000000000", "memory"),
    ("generate", f"{CK} --out g.h5 --reject-unphysical --max-draw-factor 1e300", "days"),
    ("generate", "--checkpoint k_n_particles_negative.pt --out g.h5", "n_particles"),
    ("generate", "--checkpoint k_box_negative.pt --out g.h5", "box"),
    ("generate", "--checkpoint k_split_float.pt --out g.h5", "split"),
    ("generate", "--checkpoint k_config_not_string.pt --out g.h5", "config"),
    ("generate", "--checkpoint k_pickle.pt --out g.h5", "never loaded"),
    # score
    ("score", f"missing.h5 {CK} --out s.h5", "no such file"),
    ("score", f"d.h5 {CK} --out s.h5 --config bin.bin", "not a text file"),
    ("score", "d.h5 --checkpoint k_pickle.pt --out s.h5", "never loaded"),
    ("score", "d.h5 --checkpoint d.h5 --out s.h5", "not a loadable checkpoint"),
    ("score", f"d.h5 {CK} --out d.h5", "d.h5"),
    ("score", f"c_positions_is_group.h5 {CK} --out s.h5", "positions"),
    ("score", f"d.h5 {CK} --out s.h5 --fpr 0.7", "--fpr"),
    ("score", f"d.h5 {CK} --out s.h5 --iwae-k 0", "--iwae-k"),
    ("score", f"d.h5 {CK} --out s.h5 --threads 0", "--threads"),
    # reproduce-study
    ("reproduce-study", "--config bin.bin --out st", "not a text file"),
    ("reproduce-study", "--config list.json --out st", "TOML"),
    ("reproduce-study", "--config unknown.toml --out st", "unknown key"),
    ("reproduce-study", "--config sweeps0.toml --out st", "sweeps"),
    ("reproduce-study", "--out d.h5", "not a directory"),
    ("reproduce-study", "--out run", "not empty"),
    ("reproduce-study", "--threads 0 --out st", "--threads"),
]


@pytest.mark.parametrize("command,args,words", CASES,
                         ids=[f"{c}:{a[:60]}" for c, a, _ in CASES])
def test_hostile_input_is_refused(ws, monkeypatch, capsys, command, args, words):
    monkeypatch.chdir(ws)
    before = _snapshot(ws)
    main = importlib.import_module(MAINS[command]).main
    rc = main(shlex.split(args))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{command}: error:"), lines[0]
    assert words in lines[0], lines[0]
    assert "Traceback" not in err
    assert _snapshot(ws) == before
    assert not (ws / "PWNED").exists()


def test_cases_cover_every_command():
    counts = {c: sum(1 for cmd, _, _ in CASES if cmd == c) for c in MAINS}
    assert min(counts.values()) >= 7, counts


@pytest.mark.parametrize("argv,words", [
    ([sys.executable, "-m", "mcsim.cli", "--n-samples", "0", "--out", "x.h5"], "--n-samples"),
    ([sys.executable, "-m", "vae.cli", "--data", "d.h5", "--out", "r", "--config", "bin.bin"],
     "not a text file"),
    ([sys.executable, "-m", "reconstruct.cli", "c_positions_is_group.h5", "-o", "o.h5"],
     "positions"),
])
def test_no_traceback_at_process_level(ws, argv, words):
    before = _snapshot(ws)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert _snapshot(ws) == before


# ---------------------------------------------------------------- crafted files
@pytest.mark.parametrize("name", sorted(CRAFTED_DATASETS))
def test_read_dataset_refuses_crafted_file(ws, tmp_path, name):
    edit, words = CRAFTED_DATASETS[name]
    path = _craft_h5(ws / "d.h5", tmp_path / "x.h5", edit)
    with pytest.raises(DatasetError, match=None) as exc:
        read_dataset(path)
    assert words in str(exc.value), str(exc.value)


def test_read_dataset_accepts_the_valid_file(ws):
    ds = read_dataset(ws / "d.h5")
    assert len(ds) == 60 and ds.n_particles == 6 and ds.box == 10.0


@pytest.mark.parametrize("change,words", [
    ({"positions": np.full((2, 3, 2), np.nan)}, "NaN"),
    ({"gamma": -1.0}, "gamma"),
    ({"acceptance": np.array([0.5, 1.5])}, "acceptance"),
    ({"attrs": {"box": -1.0}}, "box"),
    ({"attrs": {"box": 10.0, "temperature": "warm"}}, "temperature"),
    ({"attrs": {"box": 10.0, "seed": 2**70}}, "cannot be stored"),
    ({"extra": {"score": np.zeros(5)}}, "extra/score"),
])
def test_write_dataset_refuses_what_the_reader_would(tmp_path, change, words):
    kw = {"positions": np.ones((2, 3, 2)), "gamma": 0.4, "attrs": {"box": 10.0}}
    kw.update(change)
    with pytest.raises(ValueError) as exc:
        write_dataset(tmp_path / "w.h5", kw.pop("positions"), kw.pop("gamma"), kw.pop("attrs"),
                      **kw)
    assert words in str(exc.value), str(exc.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text,words", [
    ("[]", "JSON object"),
    ('"x"', "JSON object"),
    ("{", ""),
    ('{"gammas": 5}', "gammas"),
    ('{"potential": "lj"}', "potential"),
    ('{"potential": {"kind": []}}', "potential"),
    ('{"potential": {"kind": "lj", "evil": 1}}', "potential"),
    ('{"n_samples": 0}', "n_samples"),
    ('{"box": "10"}', "box"),
    ('{"seed": 1e30}', "seed"),
    ('{"sweeps": 0}', "sweeps"),
    ('{"colour": "red"}', "unknown"),
])
def test_simconfig_from_json_is_strict(text, words):
    with pytest.raises(ValueError) as exc:
        SimConfig.from_json(text)
    assert words in str(exc.value)


def test_simconfig_round_trip_still_works():
    c = SimConfig(gammas=(0.1, 0.4), n_samples=3, sweeps=2)
    assert SimConfig.from_json(c.to_json()) == c


@pytest.mark.parametrize("name", sorted(CRAFTED_CHECKPOINTS))
def test_load_model_refuses_crafted_checkpoint(ws, tmp_path, name):
    edit, words = CRAFTED_CHECKPOINTS[name]
    path = _craft_ckpt(ws / "run" / "best.pt", tmp_path / "x.pt", edit)
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    assert words in str(exc.value), str(exc.value)


def test_pickle_payload_never_runs(ws):
    with pytest.raises(CheckpointError, match="never loaded"):
        load_model(ws / "k_pickle.pt")
    assert not (ws / "PWNED").exists()


def test_valid_checkpoint_still_loads(ws):
    m = load_model(ws / "run" / "best.pt")
    assert m.info.n_particles == 6 and m.model.latent_dim == 2


# ------------------------------------------------- options that block valid requests
def test_defaults_of_unrequested_sets_never_block():
    # N = 6: the default 30x30 blackout block and corrupt K do not fit, but are not asked for
    AnomalyConfig(sets=("uniform",), corrupt_k=10).check_system(6, 10.0)
    AnomalyConfig(sets=("corrupted",), corrupt_k=4).check_system(6, 10.0)
    with pytest.raises(AnomalyConfigError, match="blackout"):
        AnomalyConfig(sets=("blackout",)).check_system(6, 10.0)


def test_threads_are_clamped_with_a_note(capsys):
    from mcsim.clitools import available_cores, clamp_threads

    n = available_cores()
    assert clamp_threads(n + 5, "x") == n
    assert "note" in capsys.readouterr().err
    assert clamp_threads(1, "x") == 1 and clamp_threads(None, "x") is None
    assert capsys.readouterr().err == ""
