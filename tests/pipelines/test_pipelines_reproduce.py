"""``reproduce-study --quick`` end to end: every stage, the report with every figure,
a rerun that skips every cached stage, a changed parameter that reruns only its stage
and dependents, and one-line errors for bad input (nothing written)."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest

from pipelines.reproduce import NAMES

CMD = [sys.executable, "-m", "pipelines.reproduce"]
# the quick profile takes ~2 min on 2 idle cores: CI runs it, `-m "not slow"` skips it
slow = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(*args, timeout=900):
    t0 = time.perf_counter()
    proc = subprocess.run([*CMD, *args, "--no-progress"], capture_output=True, text=True,
                          timeout=timeout)
    return proc, time.perf_counter() - t0


def _statuses(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in NAMES:
            out[parts[0]] = parts[1]
    return out


def _stage_mtimes(out: Path) -> dict[str, int]:
    return {n: (out / n / "stage.json").stat().st_mtime_ns for n in NAMES}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "quick"
    proc, seconds = _run("--quick", "--out", str(out))
    return out, proc, seconds


@slow
def test_quick_profile_runs_every_stage(quick):
    out, proc, _ = quick
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _statuses(proc.stdout) == {n: "ran" for n in NAMES}
    for n in NAMES:
        rec = json.loads((out / n / "stage.json").read_text())
        assert rec["stage"] == n and len(rec["key"]) == 16 and rec["seconds"] > 0
    resolved = json.loads((out / "report" / "config.resolved.json").read_text())
    assert resolved["profile"] == "quick" and resolved["data"]["sweeps"] == 2500


@slow
def test_report_links_every_figure_and_each_is_a_png(quick):
    out, proc, _ = quick
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "report" / "report.md").read_text()
    page = (out / "report" / "report.html").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 15
    for link in links:
        p = (out / "report" / link).resolve()
        assert p.is_file(), link
        assert p.read_bytes()[:8] == PNG_MAGIC, link
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and min(img.shape[:2]) > 100, link
    # every figure a stage recorded is in the report, and embedded in the HTML
    recorded = {str((out / n / f).resolve()) for n in NAMES
                for f in json.loads((out / n / "stage.json").read_text())["figures"]}
    assert recorded == {str((out / "report" / link).resolve()) for link in links}
    assert page.count("data:image/png;base64,") == len(links)
    assert "quick profile" in md and "0.185" in md and "Resolved configuration" in md


@slow
def test_rerun_skips_every_cached_stage(quick):
    out, first, first_seconds = quick
    assert first.returncode == 0
    before = _stage_mtimes(out)
    proc, seconds = _run("--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _statuses(proc.stdout) == {n: "cached" for n in NAMES}
    assert proc.stderr.count(": cached (key") == len(NAMES)
    assert _stage_mtimes(out) == before
    assert seconds < 0.5 * first_seconds


@slow
def test_changed_parameter_reruns_only_its_stage_and_dependents(quick, tmp_path):
    out, first, _ = quick
    assert first.returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    over = tmp_path / "over.toml"
    over.write_text("[reconstruct]\nn_boot = 50\n")
    proc, _ = _run("--quick", "--out", str(copy), "--config", str(over))
    assert proc.returncode == 0, proc.stderr[-2000:]
    st = _statuses(proc.stdout)
    assert {n for n, s in st.items() if s == "ran"} == {"reconstruct", "report"}
    rec = json.loads((copy / "reconstruct" / "stage.json").read_text())
    assert rec["params"]["n_boot"] == 50
    # --only runs one stage (its cached inputs are reused); --force reruns it
    proc, _ = _run("--quick", "--out", str(copy), "--config", str(over),
                   "--only", "latent", "--force", "latent")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _statuses(proc.stdout) == {"data": "cached", "train": "cached", "latent": "ran"}


def _one_line_error(proc, *needles):
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reproduce-study: error: "), proc.stderr
    for n in needles:
        assert n in lines[0]


@pytest.mark.parametrize("toml, needle", [
    ("[vae.train]\nepoch = 3\n", "vae.train.epoch"),
    ("[sweep]\nlatent_dims = []\n", "sweep.latent_dims"),
    ("[data]\nn_samples = -5\n", "data.n_samples"),
    ("[anomaly]\nbogus = 1\n", "anomaly.bogus"),
    ("[generate]\nn = 0\n", "generate.n"),
    ("[vae\n", "not valid TOML"),
])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, toml, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    out = tmp_path / "out"
    proc, _ = _run("--out", str(out), "--config", str(cfg))
    if needle.startswith("anomaly") and "anomaly is not available" in proc.stderr:
        pytest.skip("pipelines.anomaly not available")
    _one_line_error(proc, needle)
    assert not out.exists()


def test_foreign_or_other_profile_output_directory_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    proc, _ = _run("--out", str(tmp_path))
    _one_line_error(proc, "not a reproduce-study output")
    other = tmp_path / "other"
    other.mkdir()
    (other / "study.json").write_text(json.dumps({"profile": "full"}))
    proc, _ = _run("--quick", "--out", str(other))
    _one_line_error(proc, "--overwrite")
    proc, _ = _run("--only", "nonsense")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
