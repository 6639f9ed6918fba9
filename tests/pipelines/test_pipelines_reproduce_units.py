"""reproduce-study building blocks: cache keys and stage records (toy stages), profile
resolution and TOML overrides, the study's energy convention, the report renderers."""

import os
import time

import numpy as np
import pytest

from mcsim.clitools import UserError
from mcsim.potentials import Potential, total_energy
from pipelines.study.engine import STAGE_FILE, Stage, read_record, run_stage
from pipelines.study.profiles import ConfigKeyError, load_overrides, resolve_config
from pipelines.study.report import render_html, render_markdown
from pipelines.study.stages.reconstruct import energy_skipping_close_pairs

# ---------------------------------------------------------------- toy stages

CALLS: list[str] = []


def _toy(ctx):
    CALLS.append(ctx.dir.name)
    value = ctx.params["value"] + sum(d.summary["out"] for d in ctx.deps.values())
    (ctx.dir / "out.txt").write_text(str(value))
    if ctx.params.get("fail"):
        raise RuntimeError("boom")
    return {"out": value, "resumed": ctx.resume}


def _stages():
    return [Stage("a", _toy, lambda c: c["a"]), Stage("b", _toy, lambda c: c["b"], ("a",)),
            Stage("c", _toy, lambda c: c["c"], ("b",)), Stage("d", _toy, lambda c: c["d"])]


def _run_all(root, cfg, force=()):
    recs = {}
    for s in _stages():
        recs[s.name] = run_stage(s, root, cfg, recs, force=s.name in force,
                                 log=lambda _m: None)
    return recs


def _cfg(**values):
    cfg = {k: {"value": 1} for k in "abcd"}
    for k, v in values.items():
        cfg[k] = {"value": v}
    return cfg


def test_rerun_skips_every_stage_and_keeps_stage_json(tmp_path):
    CALLS.clear()
    first = _run_all(tmp_path, _cfg())
    assert CALLS == ["a", "b", "c", "d"] and first["c"].summary["out"] == 3
    mtimes = {n: (tmp_path / n / STAGE_FILE).stat().st_mtime_ns for n in "abcd"}
    CALLS.clear()
    again = _run_all(tmp_path, _cfg())
    assert CALLS == []
    assert all(r.status == "cached" for r in again.values())
    assert {n: (tmp_path / n / STAGE_FILE).stat().st_mtime_ns for n in "abcd"} == mtimes
    assert again["c"].summary == first["c"].summary


def test_changing_one_parameter_reruns_that_stage_and_its_dependents_only(tmp_path):
    _run_all(tmp_path, _cfg())
    CALLS.clear()
    recs = _run_all(tmp_path, _cfg(b=10))
    assert CALLS == ["b", "c"]
    assert recs["c"].summary["out"] == 12 and recs["a"].status == "cached"
    CALLS.clear()
    _run_all(tmp_path, _cfg(b=10, d=5))
    assert CALLS == ["d"]
    CALLS.clear()
    _run_all(tmp_path, _cfg(b=10, d=5), force=("a",))
    assert CALLS == ["a"]  # same key: its dependents stay cached


def test_changed_key_replaces_the_stage_directory(tmp_path):
    _run_all(tmp_path, _cfg())
    (tmp_path / "a" / "stale.txt").write_text("from the old parameters")
    _run_all(tmp_path, _cfg(a=2))
    assert not (tmp_path / "a" / "stale.txt").exists()
    assert not list(tmp_path.glob(".a.old.*"))


def test_interrupted_stage_leaves_no_record_and_another_key_starts_afresh(tmp_path):
    broken = Stage("a", _toy, lambda c: {"value": 1, "fail": True})
    with pytest.raises(RuntimeError):
        run_stage(broken, tmp_path, {}, {}, log=lambda _m: None)
    assert not (tmp_path / "a" / STAGE_FILE).exists()  # no record of a half-done stage
    assert (tmp_path / "a" / "out.txt").exists()
    (tmp_path / "a" / "junk.txt").write_text("left by the interrupted run")
    rec = run_stage(Stage("a", _toy, lambda c: {"value": 2}), tmp_path, {}, {},
                    log=lambda _m: None)
    assert rec.summary == {"out": 2, "resumed": False}
    assert not (tmp_path / "a" / "junk.txt").exists()
    assert read_record(tmp_path / "a").key == rec.key


def test_resume_flag_is_set_for_an_interrupted_run_with_the_same_key(tmp_path):
    state = {"fail": True}

    def flaky(ctx):
        if state["fail"]:
            (ctx.dir / "partial.txt").write_text("chunk 1")
            raise KeyboardInterrupt
        return {"resumed": ctx.resume, "kept": (ctx.dir / "partial.txt").exists()}

    s = Stage("x", flaky, lambda c: {"p": 1})
    with pytest.raises(KeyboardInterrupt):
        run_stage(s, tmp_path, {}, {}, log=lambda _m: None)
    state["fail"] = False
    rec = run_stage(s, tmp_path, {}, {}, log=lambda _m: None)
    assert rec.summary == {"resumed": True, "kept": True}


def test_missing_figure_invalidates_the_cache(tmp_path):
    def fig(ctx):
        (ctx.dir / "f.png").write_bytes(b"\x89PNG")
        ctx.figures.append("f.png")
        return {"t": time.time()}

    s = Stage("f", fig, lambda c: {})
    r1 = run_stage(s, tmp_path, {}, {}, log=lambda _m: None)
    assert run_stage(s, tmp_path, {}, {}, log=lambda _m: None).status == "cached"
    os.remove(tmp_path / "f" / "f.png")
    r3 = run_stage(s, tmp_path, {}, {}, log=lambda _m: None)
    assert r3.status == "ran" and r3.summary["t"] != r1.summary["t"]


# ---------------------------------------------------------------- profiles

def test_profiles_resolve_and_seed_propagates():
    q = resolve_config("quick")
    f = resolve_config("full")
    assert q["data"]["n_samples"] < f["data"]["n_samples"] == 10_000
    assert f["data"]["sweeps"] == q["data"]["sweeps"] == 2500
    assert q["vae"]["loss"]["weight"] == 3.5e-4 and q["vae"]["model"]["latent_dim"] == 40
    s = resolve_config("quick", seed=7)
    for path in (("data", "seed"), ("vae", "train", "seed"), ("vae", "data", "split_seed"),
                 ("reconstruct", "seed"), ("latent", "seed"), ("anomaly", "seed"),
                 ("generate", "seed")):
        d = s
        for p in path:
            d = d[p]
        assert d == 7, path
    # an explicit section seed wins over the master seed
    o = resolve_config("quick", {"vae": {"train": {"seed": 3}}}, seed=7)
    assert o["vae"]["train"]["seed"] == 3 and o["data"]["seed"] == 7
    # the anomaly sets follow the data's physics unless told otherwise
    a = resolve_config("quick", {"data": {"sweeps": 5000}})
    assert a["anomaly"]["sweeps"] == 5000 and a["anomaly"]["temperature"] == 0.75


@pytest.mark.parametrize("over, key", [
    ({"vae": {"train": {"epoch": 3}}}, "vae.train.epoch"),
    ({"dat": {"n_samples": 3}}, "dat"),
    ({"sweep": {"latent_dims": 8}}, "sweep.latent_dims"),
    ({"data": {"n_samples": "many"}}, "data.n_samples"),
    ({"sweep": {"latent_dims": ["a"]}}, "sweep.latent_dims"),
    ({"data": 3}, "data"),
])
def test_bad_override_names_the_key(over, key):
    with pytest.raises(ConfigKeyError, match=key.replace(".", r"\.")):
        resolve_config("quick", over)


def test_overrides_merge_by_section_and_key(tmp_path):
    p = tmp_path / "o.toml"
    p.write_text('[vae.train]\nepochs = 3\n[data]\nn_samples = 50\ncutoff = "none"\n'
                 '[anomaly]\nbootstrap = 10\n')
    cfg = resolve_config("quick", load_overrides(p))
    assert cfg["vae"]["train"]["epochs"] == 3 and cfg["vae"]["train"]["lr"] == 1e-3
    assert cfg["data"]["n_samples"] == 50 and cfg["data"]["sweeps"] == 2500
    assert cfg["data"]["cutoff"] == "none" and cfg["anomaly"]["bootstrap"] == 10
    (tmp_path / "bad.toml").write_text("[vae\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_overrides(tmp_path / "bad.toml")
    with pytest.raises(UserError, match="no such file"):
        load_overrides(tmp_path / "missing.toml")


# ---------------------------------------------------------------- energies, report

def test_study_energy_convention_skips_exactly_the_close_pairs():
    lj = Potential("lj", cutoff=3.0)
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(6.0), np.arange(5.0)), -1).reshape(-1, 2) * 1.6
    many = grid + rng.uniform(0.0, 0.25, (7, 30, 2))  # 30 particles, no pair below 1
    gam = rng.uniform(0, 1, 7)
    np.testing.assert_allclose(energy_skipping_close_pairs(many, gam, lj),
                               total_energy(many, gam, lj), rtol=1e-10)
    for pot in (Potential("nm", 4, 2, cutoff=None), Potential("ideal")):
        np.testing.assert_allclose(energy_skipping_close_pairs(many, 0.2, pot),
                                   total_energy(many, 0.2, pot), rtol=1e-10)
    far = np.array([[[1.0, 1.0], [3.0, 1.0], [5.0, 2.0]]])
    close = far.copy()
    close[0, 1] = [1.5, 1.0]  # r = 0.5 from particle 0: skipped; 1-2 and 0-2 kept
    full = total_energy(close, 0.4, lj)
    skip = energy_skipping_close_pairs(close, 0.4, lj)
    from mcsim.potentials import pair_energy

    assert full[0] > 1e3
    np.testing.assert_allclose(skip, full - pair_energy(0.5, lj), rtol=1e-9)


def test_report_renders_tables_figures_and_raw_markdown(tmp_path):
    (tmp_path / "s").mkdir()
    png = tmp_path / "s" / "f.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nrest")
    blocks = [("h", 1, "Title"), ("p", "some `code` and **bold**"),
              ("table", ["a", "b|c"], [["1", "x|y"]]), ("img", "s/f.png", "s/f.png"),
              ("md", "| k | v |\n|---|---|\n| auc | 0.9 |"), ("pre", "{<json>}")]
    md = render_markdown(blocks)
    assert "![s/f.png](../s/f.png)" in md and "| a | b\\|c |" in md and "| auc | 0.9 |" in md
    page = render_html(blocks, tmp_path, "t")
    assert "data:image/png;base64," in page and "<code>code</code>" in page
    assert "<td>auc</td>" in page and "&lt;json&gt;" in page and "<strong>bold</strong>" in page


def test_both_profiles_validate_and_fill_the_external_sections():
    from pipelines.reproduce import validate_config

    for name in ("quick", "full"):
        cfg = resolve_config(name)
        missing = validate_config(cfg)
        for section, stages in (("anomaly", ("anomaly_data", "anomaly")),
                                ("generate", ("generate",))):
            if any(s in missing for s in stages):
                continue  # module not there (yet)
            assert len(cfg[section]) > 5  # every default of the config class
    full = resolve_config("full")
    validate_config(full)
    assert full["data"]["n_samples"] == 10_000 and full["vae"]["loss"]["weight"] == 3.5e-4
    assert full["vae"]["data"]["test_fraction"] == 0.2


def test_module_markdown_loses_its_title_and_figure_links(tmp_path):
    from pipelines.study.engine import StageRecord
    from pipelines.study.report import _module_markdown

    d = tmp_path / "anomaly"
    d.mkdir()
    (d / "anomaly.md").write_text("# Anomaly test\n\nintro\n\n## Scores\n\n| a | b |\n|---|---|\n"
                                  "| 1 | 2 |\n\n- item one\n- item two\n\n## Figures\n\n"
                                  "![roc](roc.png)\n\n## After\n\ntext\n")
    rec = StageRecord("anomaly", "k", d, {}, {}, [], 1.0)
    md = _module_markdown(rec)
    assert "# Anomaly test" not in md and "roc.png" not in md and "Figures" not in md
    assert "### Scores" in md and "### After" in md and "| 1 | 2 |" in md
    page = render_html([("md", md)], tmp_path, "t")
    assert "<h3>Scores</h3>" in page and "<li>item two</li>" in page and "<td>2</td>" in page
    assert _module_markdown(StageRecord("x", "k", tmp_path, {}, {}, [], 1.0)) is None
