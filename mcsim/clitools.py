"""Small helpers shared by every ljvae command-line tool.

* :class:`UserError`: a problem with the user's input; the CLI prints it as one line
  (``<prog>: error: <message>``) and exits with code 2, without a traceback.
* :func:`run_cli`: wraps a CLI ``main`` so that ``UserError``, ``ValueError`` raised
  during input validation, and Ctrl-C become one-line messages and exit codes.
* :func:`output_path` / :func:`atomic_output`: outputs are written under a temporary
  name and renamed when complete; existing files are never overwritten unless asked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "UserError",
    "ArgumentParser",
    "run_cli",
    "output_path",
    "atomic_output",
    "partial_path",
    "positive_int",
    "nonneg_int",
    "positive_float",
    "nonneg_float",
]


class UserError(Exception):
    """An error in what the user asked for; reported in one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: ...``) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def run_cli(main: Callable[[list[str] | None], int | None], prog: str,
            argv: list[str] | None = None) -> int:
    """Run ``main(argv)``, turning user errors into a one-line message and exit code 2,
    and Ctrl-C into exit code 130 (finished work is kept; rerun with ``--resume``)."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted; finished chunks are kept (use --resume)\n")
        return 130


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under until it is complete."""
    return path.with_name(path.name + ".partial")


def output_path(path: str | os.PathLike, overwrite: bool, what: str = "--out") -> Path:
    """Check that ``path`` can be written: its folder exists (it is created if missing)
    and is writable, and the file does not exist unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise UserError(f"{what}: {p} exists (use --overwrite to replace it)")
    if p.exists() and p.is_dir():
        raise UserError(f"{what}: {p} is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what}: cannot create folder {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise UserError(f"{what}: folder {parent} is not writable")
    return p


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success,
    delete it on any exception. Use for every file a user may see."""
    final = Path(path)
    if final.exists() and not overwrite:
        raise UserError(f"{final} exists (use --overwrite to replace it)")
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _number(kind: type, check: Callable[[float], bool], what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(v, float) and v != v:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        if not check(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return v

    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonneg_int = _number(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
nonneg_float = _number(float, lambda v: 0 <= v < float("inf"), "a non-negative number")
