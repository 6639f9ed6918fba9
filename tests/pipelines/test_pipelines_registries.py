"""The anomaly-score and study-stage registries: every member is complete, and the
profiles, seeds, validation and report read the stage registry."""

from __future__ import annotations

import json

import pytest

from pipelines.anomaly.scores import SCORE_INFO, SCORE_LABELS, SCORES
from pipelines.study.engine import imported_modules
from pipelines.study.profiles import FULL, OPEN_SECTIONS, QUICK, resolve_config
from pipelines.study.stages import NAMES, STAGES


def test_scores_are_complete_and_ordered():
    assert SCORES == tuple(SCORE_INFO) and list(SCORE_LABELS) == list(SCORES)
    colors = [s.color for s in SCORE_INFO.values()]
    assert len(set(colors)) == len(colors)
    for name, s in SCORE_INFO.items():
        assert s.name == name and s.label and s.description and callable(s.score)
        assert s.fit is None or callable(s.fit)


def test_stages_run_after_what_they_read():
    assert NAMES == tuple(s.name for s in STAGES) and NAMES[0] == "data"
    assert NAMES[-1] == "report"
    for i, s in enumerate(STAGES):
        assert set(s.deps) <= set(NAMES[:i]), s.name
        assert s.title and s.heading


def test_profiles_are_built_from_the_stages_sections():
    owned = [s.section for s in STAGES if s.section]
    assert len(set(owned)) == len(owned)
    assert set(QUICK) == set(FULL) == {"system", *owned}
    assert set(OPEN_SECTIONS) == {s.section for s in STAGES if s.open_keys}


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_stage_validates_and_keys_the_resolved_config(profile):
    cfg = resolve_config(profile, seed=7, threads=1)
    for s in STAGES:
        for path in s.seeds:  # the master seed reached every seed the stage declares
            d = cfg
            for p in path:
                d = d[p]
            assert d == 7, (s.name, path)
        if s.validate is not None:
            s.validate(cfg)
    for s in STAGES:
        json.dumps(s.params({**cfg, "_meta": {}}))  # JSON-able cache-key parameters


@pytest.mark.parametrize("stage", STAGES, ids=NAMES)
def test_cache_key_code_is_the_stage_module_and_what_it_imports(stage):
    mods = imported_modules(stage.func.__module__)
    assert stage.func.__module__ in mods and "pipelines.study.engine" in mods
    if stage.name in ("anomaly", "anomaly_data"):
        assert "pipelines.anomaly.run" in mods
    if stage.name == "generate":
        assert "pipelines.generate.run" in mods and "vae.priors" in mods
    if stage.name == "data":
        assert "mcsim.run" in mods and not any(m.startswith("vae") for m in mods)
