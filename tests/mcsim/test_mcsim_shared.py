"""mcsim.shared and the CLI convention helpers of mcsim.clitools: value checks, JSON,
thread limits that restore what they change, settings files, progress on a terminal
only, hidden old spellings."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numba
import numpy as np
import pytest
import torch

from mcsim.clitools import (
    ArgumentParser,
    UserError,
    add_progress_flags,
    flag_errors,
    hidden_alias,
    read_settings,
    show_progress,
)
from mcsim.shared import (
    check_choice,
    check_int,
    check_number,
    is_int,
    is_number,
    jsonable,
    thread_limits,
    unknown_fields,
    write_json,
)


def test_value_checks_name_the_setting_and_the_value():
    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_number(2.5) and not is_number(math.inf) and not is_number(False)
    with pytest.raises(UserError, match=r"^n: must be a positive integer, got 0$"):
        check_int("n", 0, 1, error=UserError)
    with pytest.raises(ValueError, match=r"^k: must be an integer >= 2 <= 5, got 9$"):
        check_int("k", 9, 2, 5)
    with pytest.raises(ValueError, match=r"^f: must be a number in \(0, 1\], got nan$"):
        check_number("f", math.nan, 0, 1, lo_open=True)
    with pytest.raises(ValueError, match=r"^kind: must be one of a, b, got 'c'$"):
        check_choice("kind", "c", ("a", "b"))

    @dataclass
    class C:
        x: int = 0

    assert unknown_fields(C, {"x": 1, "z": 2, "y": 3}) == ["y", "z"]
    with pytest.raises(UserError, match="config: must be a JSON object, got list"):
        unknown_fields(C, [1], UserError)


def test_jsonable_and_atomic_write(tmp_path):
    obj = {1: (np.float32(0.5), np.int64(3), np.bool_(True)), "a": np.array([1.0, np.inf])}
    assert jsonable(obj) == {"1": [0.5, 3, True], "a": [1.0, None]}
    assert jsonable([np.nan, -np.inf], nonfinite="str") == ["nan", "-inf"]
    assert math.isinf(jsonable(np.inf, nonfinite="keep"))
    p = tmp_path / "x.json"
    write_json(p, {"b": 1, "a": tmp_path})
    assert json.loads(p.read_text()) == {"a": str(tmp_path), "b": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]  # no temporary file left


def test_thread_limits_set_and_restore_every_count():
    numba_before, torch_before = numba.get_num_threads(), torch.get_num_threads()
    with thread_limits(1, torch=True):
        assert numba.get_num_threads() == 1 and torch.get_num_threads() == 1
    assert numba.get_num_threads() == numba_before
    assert torch.get_num_threads() == torch_before
    with pytest.raises(RuntimeError), thread_limits(1, torch=True):
        raise RuntimeError("boom")  # restored on errors too
    assert torch.get_num_threads() == torch_before
    with thread_limits(None, torch=True):  # None changes nothing
        assert numba.get_num_threads() == numba_before


@pytest.mark.parametrize(("name", "text"), [
    ("a.toml", "[s]\nk = 1\n"), ("a.json", '{"s": {"k": 1}}'),
    ("a.cfg", '{"s": {"k": 1}}'), ("b.cfg", "[s]\nk = 1\n")])
def test_settings_files_are_toml_or_json(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert read_settings(tmp_path / name, "--config") == {"s": {"k": 1}}


def test_settings_errors_name_the_flag(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="--config: .*a TOML table or a JSON object"):
        read_settings(tmp_path / "list.json", "--config")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="--config: .*not valid JSON"):
        read_settings(tmp_path / "bad.json", "--config")
    (tmp_path / "bad.toml").write_text("= 1")
    with pytest.raises(UserError, match="--config: .*not valid TOML"):
        read_settings(tmp_path / "bad.toml", "--config")
    with pytest.raises(UserError, match=r"^--data: need 3$"), flag_errors("--data"):
        raise UserError("need 3")


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> int:
        return len(s)


def test_progress_only_on_a_terminal_unless_asked(monkeypatch):
    p = ArgumentParser(prog="x")
    add_progress_flags(p, "--quiet")
    hidden_alias(p, "--n", dest="n_samples", type=int)
    p.add_argument("--n-samples", type=int, default=5)
    assert "--quiet" not in p.format_help() and "--n " not in p.format_help()
    for tty in (False, True):
        monkeypatch.setattr("sys.stderr", _Stream(tty))
        assert show_progress(p.parse_args([])) is tty
        assert show_progress(p.parse_args(["--progress"])) is True
        assert show_progress(p.parse_args(["--no-progress"])) is False
        assert show_progress(p.parse_args(["--quiet"])) is False
    assert p.parse_args(["--n", "7"]).n_samples == 7
    assert p.parse_args([]).n_samples == 5
