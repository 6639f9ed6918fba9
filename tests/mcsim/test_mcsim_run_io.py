"""Dataset files, chunked/resumable runs, XYZ export and the simulate CLI."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from mcsim import sampler as sampler_mod
from mcsim.cli import main as simulate_main
from mcsim.config import SimConfig
from mcsim.io import DatasetError, read_dataset, write_dataset, write_xyz
from mcsim.potentials import Potential
from mcsim.run import run_simulation

SMALL = SimConfig(gammas=(0.1, 0.7), n_samples=23, sweeps=60, seed=5)


def _run(path, cfg=SMALL, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("check_samples", 0)
    kw.setdefault("verdict", False)
    return run_simulation(cfg, path, **kw)


def test_round_trip_records_every_parameter(tmp_path):
    out = tmp_path / "d.h5"
    cfg = SMALL.replace(potential=Potential.parse("nm:4,2", None))
    _run(out, cfg, check_samples=10, n_traces=2)
    ds = read_dataset(out)
    assert ds.positions.shape == (46, 30, 2) and ds.positions.dtype == np.float64
    assert np.array_equal(ds.gamma, np.repeat([0.1, 0.7], 23))
    assert SimConfig.from_json(ds.attrs["config"]) == cfg
    for key in ("n_particles", "box", "temperature", "potential", "cutoff", "delta",
                "sweeps", "protocol", "seed", "ljvae_version", "created"):
        assert key in ds.attrs
    assert ds.attrs["potential"] == "nm:4,2" and ds.attrs["cutoff"] == "none"
    # the file alone regenerates itself
    again = tmp_path / "again.h5"
    _run(again, SimConfig.from_json(ds.attrs["config"]))
    assert np.array_equal(read_dataset(again).positions, ds.positions)
    with h5py.File(out) as f:
        assert f["diagnostics/gamma_0/energy_trace"].shape == (2, 60)


def test_output_independent_of_chunks_threads_and_gamma_set(tmp_path):
    _run(tmp_path / "a.h5", chunk_size=5, n_threads=1)
    _run(tmp_path / "b.h5", chunk_size=100, n_threads=2)
    _run(tmp_path / "c.h5", SMALL.replace(gammas=(0.7,)))
    a, b, c = (read_dataset(tmp_path / f"{k}.h5") for k in "abc")
    assert np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.energy, b.energy)
    assert np.array_equal(a.positions[23:], c.positions)


@pytest.mark.parametrize("protocol", ["independent", "chain"])
def test_interrupted_run_leaves_no_complete_file_and_resumes(tmp_path, monkeypatch, protocol):
    cfg = SMALL.replace(protocol=protocol, equil_sweeps=50, sample_every=3)
    ref = tmp_path / "ref.h5"
    _run(ref, cfg, chunk_size=4)
    out = tmp_path / "d.h5"
    calls = {"n": 0}
    real_produce = sampler_mod.Chain.produce
    real_sample = sampler_mod.sample

    def boom(n):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt

    monkeypatch.setattr("mcsim.run.sample", lambda *a, **k: (boom(0), real_sample(*a, **k))[1])
    monkeypatch.setattr(sampler_mod.Chain, "produce",
                        lambda self, n: (boom(n), real_produce(self, n))[1])
    with pytest.raises(KeyboardInterrupt):
        _run(out, cfg, chunk_size=4)
    assert not out.exists()
    partial = tmp_path / "d.h5.partial"
    assert partial.exists()
    with pytest.raises(DatasetError, match="incomplete"):
        read_dataset(partial)
    with h5py.File(partial) as f:
        assert 0 < f.attrs["n_done"] < 46
    monkeypatch.undo()
    _run(out, cfg, chunk_size=4, resume=True)
    assert not partial.exists()
    assert np.array_equal(read_dataset(out).positions, read_dataset(ref).positions)


def test_resume_refuses_other_parameters(tmp_path, monkeypatch):
    out = tmp_path / "d.h5"
    monkeypatch.setattr("mcsim.run.sample", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _run(out)
    monkeypatch.undo()
    with pytest.raises(Exception, match="different parameters"):
        _run(out, SMALL.replace(seed=6), resume=True)


def test_reader_rejects_bad_files(tmp_path):
    txt = tmp_path / "x.h5"
    txt.write_text("not hdf5")
    with pytest.raises(DatasetError, match="not an HDF5"):
        read_dataset(txt)
    with pytest.raises(DatasetError, match="no such file"):
        read_dataset(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["positions"] = np.zeros((2, 3, 2))
    with pytest.raises(DatasetError, match="not an ljvae dataset"):
        read_dataset(other)
    good = tmp_path / "good.h5"
    write_dataset(good, np.zeros((4, 3, 2)), 0.4, {"box": 10.0})
    with h5py.File(good, "r+") as f:
        del f["energy"]
        f["energy"] = np.zeros(3)
    with pytest.raises(DatasetError, match="energy"):
        read_dataset(good)
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "bad.h5", np.zeros((4, 3)), 0.4, {"box": 10.0})
    with pytest.raises(Exception, match="exists"):
        write_dataset(good, np.zeros((4, 3, 2)), 0.4, {"box": 10.0})
    # attributes copied from a file that was read do not confuse the writer
    write_dataset(tmp_path / "copy.h5", np.ones((2, 5, 2)), 0.1,
                  {"box": 10.0, "n_done": 400, "complete": True, "n_particles": 99})
    copy = read_dataset(tmp_path / "copy.h5")
    assert len(copy) == 2 and copy.n_particles == 5


def test_xyz_export_parses_back(tmp_path):
    pos = np.random.default_rng(0).uniform(0, 10, (3, 5, 2))
    path = write_xyz(tmp_path / "c.xyz", pos, box=10.0, energy=np.arange(3.0),
                     gamma=np.full(3, 0.4))
    lines = path.read_text().splitlines()
    assert len(lines) == 3 * (5 + 2)
    for k in range(3):
        block = lines[k * 7:(k + 1) * 7]
        assert int(block[0]) == 5
        assert 'Lattice="10 0 0 0 10 0 0 0 1"' in block[1] and "pos:R:3" in block[1]
        assert f"energy={k}" in block[1]
        xyz = np.array([[float(v) for v in ln.split()[1:]] for ln in block[2:]])
        np.testing.assert_allclose(xyz[:, :2], pos[k], atol=1e-9)
        assert np.all(xyz[:, 2] == 0)


def test_xyz_export_reads_in_ase(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    pos = np.random.default_rng(1).uniform(0, 10, (4, 6, 2))
    path = write_xyz(tmp_path / "c.xyz", pos, box=10.0, gamma=np.full(4, 0.7))
    frames = ase_io.read(path, index=":")
    assert len(frames) == 4
    for k, atoms in enumerate(frames):
        np.testing.assert_allclose(atoms.positions[:, :2], pos[k], atol=1e-9)
        np.testing.assert_allclose(atoms.cell.lengths(), [10.0, 10.0, 1.0])
        assert atoms.info["gamma"] == pytest.approx(0.7)


# ---------------------------------------------------------------------------- CLI
def test_simulate_cli_writes_dataset_plot_and_xyz(tmp_path, capsys):
    out = tmp_path / "run.h5"
    rc = simulate_main(["--gamma", "0.1", "0.4", "--n-samples", "12", "--sweeps", "40",
                        "--check-samples", "60", "--out", str(out), "--plot", "--xyz",
                        str(tmp_path / "run.xyz"), "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out and "24 samples" in captured.out
    assert "warning" in captured.err  # 40 sweeps cannot equilibrate from a uniform start
    assert out.exists() and (tmp_path / "run.png").stat().st_size > 10_000
    assert (tmp_path / "run.xyz").exists()
    assert len(read_dataset(out)) == 24


BAD_ARGS = [
    (["--n-particles", "1"], "--n-particles"),
    (["--n-particles", "abc"], "--n-particles"),
    (["--box", "0"], "--box"),
    (["--box", "-3"], "--box"),
    (["--temperature", "0"], "--temperature"),
    (["--temperature", "nan"], "--temperature"),
    (["--n-samples", "-1"], "--n-samples"),
    (["--sweeps", "-5"], "--sweeps"),
    (["--step", "x"], "--step"),
    (["--gamma", "-0.1"], "--gamma"),
    (["--potential", "morse"], "--potential"),
    (["--cutoff", "abc"], "--cutoff"),
    (["--protocol", "bogus"], "--protocol"),
    (["--threads", "0"], "--threads"),
]


@pytest.mark.parametrize(("args", "name"), BAD_ARGS)
def test_simulate_cli_bad_input(tmp_path, capsys, args, name):
    out = tmp_path / "x.h5"
    rc = None
    try:
        # defaults first: argparse keeps the last value, so the bad one wins
        rc = simulate_main(["--n-samples", "2", "--sweeps", "1", "--out", str(out), *args])
    except SystemExit as exc:  # argparse type errors exit directly
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and name in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "x.h5.partial").exists()


def test_simulate_cli_refuses_overwrite_and_unwritable(tmp_path, capsys):
    out = tmp_path / "x.h5"
    out.write_text("precious")
    assert simulate_main(["--out", str(out), "--n-samples", "2", "--sweeps", "1"]) == 2
    assert out.read_text() == "precious"
    assert "--overwrite" in capsys.readouterr().err
    # a folder that cannot be created (its parent is a file): works even as root
    rc = simulate_main(["--out", str(out / "sub" / "y.h5"), "--n-samples", "2"])
    assert rc == 2 and "cannot create folder" in capsys.readouterr().err


def test_console_script_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mcsim.cli", "--box", "-1", "--out",
                           str(tmp_path / "z.h5")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "simulate: error: --box: must be a positive number, got -1.0"
    assert proc.stdout == ""
