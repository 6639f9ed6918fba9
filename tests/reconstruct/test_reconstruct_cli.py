"""The ``reconstruct`` command: dataset and .npy inputs, outputs, and one-line errors
without partial files."""

import subprocess
import sys

import numpy as np
import pytest

from mcsim.io import read_dataset, write_dataset
from reconstruct import distance_matrices, rmsd
from reconstruct.cli import main

BOX = 10.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small dataset of real sampler output at gamma = 1."""
    from mcsim.sampler import SimConfig, sample

    s = sample(SimConfig(sweeps=200, seed=5), 1.0, 20)
    path = tmp_path_factory.mktemp("data") / "samples.h5"
    write_dataset(path, s.positions, 1.0,
                  {"box": BOX, "n_particles": 30, "temperature": 0.75, "potential": "lj",
                   "cutoff": 3.0, "source": "mcsim"},
                  energy=s.energy, acceptance=s.acceptance)
    return path


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_dataset_in_dataset_xyz_and_plot_out(dataset, tmp_path, capsys):
    out, xyz, png = tmp_path / "rec.h5", tmp_path / "rec.xyz", tmp_path / "rec.png"
    rc = main([str(dataset), "--out", str(out), "--xyz", str(xyz), "--plot", str(png),
               "--n-boot", "20", "-q"])
    assert rc == 0
    assert _files(tmp_path) == ["rec.h5", "rec.png", "rec.xyz"]
    orig = read_dataset(dataset)
    rec = read_dataset(out)
    assert rec.attrs["source"] == "reconstruct"
    assert rec.attrs["gram_variant"] == "centered" and rec.attrs["input"] == str(dataset)
    assert rec.positions.shape == orig.positions.shape
    np.testing.assert_allclose(distance_matrices(rec.positions),
                               distance_matrices(orig.positions), atol=1e-9)
    assert rmsd(orig.positions, rec.positions).max() < 1e-9
    np.testing.assert_array_equal(rec.gamma, orig.gamma)
    assert np.all(np.isfinite(rec.energy))
    assert {"gram_residual", "fits", "rmsd", "energy_original"} <= set(rec.extra)
    assert rec.extra["distance_rms"].max() < 1e-9
    np.testing.assert_allclose(rec.extra["energy_original"], orig.energy, rtol=1e-9,
                               atol=1e-9)
    assert "energy_js" in rec.attrs and "energy_w1_err" in rec.attrs
    assert xyz.read_text().splitlines()[0].strip() == "30"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_npy_in_with_originals_and_summary(dataset, tmp_path, capsys):
    orig = read_dataset(dataset)
    rng = np.random.default_rng(0)
    d = distance_matrices(orig.positions)
    noisy = d + 0.01 * rng.normal(size=d.shape)  # asymmetric, like a decoder's output
    np.save(tmp_path / "d.npy", noisy)
    out = tmp_path / "rec.h5"
    args = [str(tmp_path / "d.npy"), "--out", str(out), "--originals", str(dataset),
            "--variant", "reference", "--reference-index", "2", "--n-boot", "10"]
    assert main(args) == 2  # not symmetric without --symmetrize
    err = capsys.readouterr().err
    assert "not symmetric" in err and "--symmetrize" in err
    assert not out.exists()
    assert main([*args, "--symmetrize"]) == 0
    text = capsys.readouterr().out
    assert "RMSD to originals" in text and "energy W1" in text
    rec = read_dataset(out)
    assert rec.attrs["gram_variant"] == "reference" and rec.attrs["gram_reference"] == 2
    assert 0 < np.median(rec.extra["rmsd"]) < 0.1
    assert rec.attrs["symmetrized"]


def test_npy_without_gamma_has_no_energies(tmp_path, capsys):
    x = np.random.default_rng(1).uniform(0, 5, (6, 8, 2))
    np.save(tmp_path / "d.npy", distance_matrices(x))
    out = tmp_path / "rec.h5"
    # the default (thermal) placement needs the ensemble: refused, nothing written
    assert main([str(tmp_path / "d.npy"), "-o", str(out), "--box", "7", "-q"]) == 2
    err = capsys.readouterr().err
    assert "gamma and temperature unknown" in err and err.count("\n") == 1
    assert _files(tmp_path) == ["d.npy"]
    assert main([str(tmp_path / "d.npy"), "-o", str(out), "--box", "7", "-q",
                 "--placement", "lowest", "--plot", str(tmp_path / "p.png")]) == 0
    rec = read_dataset(out)
    assert rec.box == 7.0 and np.all(np.isnan(rec.energy))
    assert rec.attrs["placement"] == "lowest"
    assert main([str(tmp_path / "d.npy"), "-o", str(out), "--gamma", "0.4", "-q",
                 "--temperature", "0.75", "--overwrite"]) == 0
    rec = read_dataset(out)
    assert np.all(np.isfinite(rec.energy)) and rec.attrs["placement"] == "thermal"
    assert rec.attrs["temperature"] == 0.75


def test_thermal_default_on_a_dataset_reproducible_and_metrics_on_request(dataset, tmp_path):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    assert main([str(dataset), "-o", str(a), "-q", "--batch-size", "7"]) == 0
    assert main([str(dataset), "-o", str(b), "-q", "--metrics", "--n-boot", "5"]) == 0
    assert main([str(dataset), "-o", str(c), "-q", "--seed", "1"]) == 0
    d = tmp_path / "d.h5"  # the parallel kernels give the same draws on two threads
    assert main([str(dataset), "-o", str(d), "-q", "--batch-size", "7", "--threads", "2"]) == 0
    ra, rb, rc = (read_dataset(p) for p in (a, b, c))
    np.testing.assert_array_equal(ra.positions, read_dataset(d).positions)
    assert ra.attrs["placement"] == "thermal" and ra.attrs["placement_temperature"] == 0.75
    assert np.all((ra.positions >= 0) & (ra.positions <= BOX))
    np.testing.assert_array_equal(ra.positions, rb.positions)  # batching does not matter
    assert not np.array_equal(ra.positions, rc.positions)
    assert "rmsd" not in ra.extra and "energy_js" not in ra.attrs
    assert "rmsd" in rb.extra and "energy_js" in rb.attrs
    assert rb.extra["rmsd"].max() < 1e-9  # the shape is exact, only the placement varies
    np.testing.assert_allclose(ra.energy, rb.energy)


@pytest.mark.parametrize(
    "content, message",
    [
        (np.zeros((3, 4, 5)), "shape"),
        (np.full((2, 3, 3), np.nan), "NaN"),
        (-np.ones((1, 3, 3)) + np.eye(3), "negative"),
        (np.zeros((0, 3, 3)), "shape"),
        (np.array([["a"]]), "real numbers"),
    ],
)
def test_bad_matrices_one_line_error_no_output(tmp_path, capsys, content, message):
    np.save(tmp_path / "bad.npy", content)
    rc = main([str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o.h5"),
               "--plot", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("reconstruct: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _files(tmp_path) == ["bad.npy"]


def test_other_user_errors(dataset, tmp_path, capsys):
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    cases = [
        ([str(tmp_path / "missing.npy"), "-o", str(tmp_path / "o.h5")], "no such file"),
        ([str(tmp_path / "junk.npy"), "-o", str(tmp_path / "o.h5")], "cannot read"),
        ([str(dataset), "-o", str(tmp_path / "o.h5"), "--xyz", str(tmp_path / "o.h5")],
         "distinct"),
        ([str(dataset), "-o", str(tmp_path / "o.h5"), "--gamma", "1"], "only for .npy"),
        ([str(dataset), "-o", str(tmp_path / "o.h5"), "--variant", "reference",
          "--reference-index", "30"], "out of range"),
        ([str(dataset), "-o", str(tmp_path / "o.h5"), "--potential", "morse"], "potential"),
        ([str(dataset), "-o", str(dataset)], "exists"),
        ([str(dataset), "-o", str(tmp_path / "o.h5"), "--n-boot", "1"], "n-boot"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert _files(tmp_path) == ["junk.npy"]


def test_no_overwrite_without_flag(dataset, tmp_path, capsys):
    out = tmp_path / "rec.h5"
    out.write_bytes(b"keep me")
    assert main([str(dataset), "-o", str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main([str(dataset), "-o", str(out), "-q", "--overwrite", "--n-boot", "5"]) == 0
    assert read_dataset(out).attrs["source"] == "reconstruct"


def test_bad_arguments_exit_2():
    proc = subprocess.run([sys.executable, "-m", "reconstruct.cli", "x.npy", "-o", "y.h5",
                           "--batch-size", "0"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "positive integer" in proc.stderr and "Traceback" not in proc.stderr


def test_plot_functions_compose_on_given_axes_or_make_their_own():
    from matplotlib.figure import Figure

    from reconstruct import height_profile
    from reconstruct.plotting import (
        plot_configuration,
        plot_energy_histograms,
        plot_height_profiles,
        summary_figure,
    )

    x = np.random.default_rng(2).uniform(0, BOX, (6, 10, 2))
    ax = Figure().add_subplot()
    assert plot_configuration(x[0], BOX, ax, edge=(0, 1)) is ax
    e = np.arange(6.0)
    assert plot_energy_histograms(e, e + 1, None).figure is not None
    prof = height_profile(x, BOX)
    assert plot_height_profiles(None, prof).get_ylim() == (0.0, BOX)
    fig = summary_figure(x, BOX, indices=np.array([1, 3]), energies=(None, e),
                         profiles=(None, prof))
    assert len(fig.axes) == 4


def test_energy_histogram_with_every_reconstruction_off_scale_warns_nothing():
    """Decoded matrices can give overlaps (energies ~1e30): nothing to histogram in
    range, which must not divide by zero; the panel says how many are outside."""
    from reconstruct.plotting import plot_energy_histograms

    e = np.linspace(-1.0, 1.0, 50)
    ax = plot_energy_histograms(e, np.full(50, 1e30), None)
    assert "50 reconstructed outside range" in ax.texts[0].get_text()
    heights = [patch.get_path().vertices[:, 1].max() for patch in ax.patches]
    assert max(heights) > 0  # they fill the overflow bin: the panel is not empty
