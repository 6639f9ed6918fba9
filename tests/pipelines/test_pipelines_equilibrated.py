"""reproduce-study's data stage: console warning on a failed equilibration verdict and
the ``data.equilibrated`` profile option."""

import numpy as np
import pytest

from mcsim.reference import EquilibriumReference, equilibration_verdict
from pipelines.study.profiles import ConfigKeyError, merge_overrides, profile_config
from pipelines.study.stages.data import _warn_verdicts, params_data


def _reference(e_mean: float) -> EquilibriumReference:
    obs = ("energy", "y_mean", "y2_mean")
    return EquilibriumReference(
        gamma=0.4, key="k", physics={}, settings={},
        mean=dict(zip(obs, (e_mean, 5.0, 33.3), strict=True)),
        err=dict.fromkeys(obs, 0.01), sd=dict.fromkeys(obs, 1.0),
        tau_sweeps=dict.fromkeys(obs, 10.0), chain_means={}, chain_chi2={},
        drift_z=dict.fromkeys(obs, 0.0), cost_sweeps=0)


def _verdict(e_mean: float) -> dict:
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 10, (400, 30, 2))  # <y> = 5, <y^2> = 33.3
    energy = rng.normal(-3.0, 1.0, 400)
    return equilibration_verdict(pos, energy, _reference(e_mean), sweeps=2500).to_dict()


def test_failed_verdict_is_a_console_warning(capsys):
    good, bad = _verdict(-3.0), _verdict(-9.0)
    assert not bad["passed"]
    _warn_verdicts({"0.1": bad, "0.4": {**bad, "passed": True}}, n=30)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("reproduce-study: warning: data: gamma=0.1: NOT equilibrated")
    assert "data.equilibrated = true" in err[0]
    if good["passed"]:
        _warn_verdicts({"0.4": good}, n=30)
        assert capsys.readouterr().err == ""


def test_equilibrated_option_is_a_bool_and_changes_the_data_stage_key():
    cfg = profile_config("quick")
    assert cfg["data"]["equilibrated"] is False
    on = merge_overrides(cfg, {"data": {"equilibrated": True}})
    assert params_data(on) != params_data(cfg) and params_data(on)["equilibrated"] is True
    with pytest.raises(ConfigKeyError, match="data.equilibrated"):
        merge_overrides(cfg, {"data": {"equilibrated": "yes"}})
