"""Small helpers shared by every ljvae command-line tool.

* :class:`UserError`: a problem with the user's input; the CLI prints it as one line
  (``<prog>: error: <message>``) and exits with code 2, without a traceback.
* :func:`run_cli`: wraps a CLI ``main`` so that ``UserError``, ``ValueError`` raised
  during input validation, and Ctrl-C become one-line messages and exit codes.
* :func:`check_outputs`: the one place that checks every output path of a command,
  against each other and against its inputs, before any work is done.
* :func:`output_path` / :func:`atomic_output`: outputs are written under a temporary
  name and renamed when complete; existing files are never overwritten unless asked.
* :func:`check_memory` / :func:`clamp_threads`: the resource guard: absurd requests are
  refused up front naming the limit; thread counts are clamped to the available cores.
* The one CLI convention (README, "Command-line conventions"): :func:`add_progress_flags`
  / :func:`show_progress` (bars only on a terminal unless asked), :func:`read_settings`
  (``--config`` as TOML or JSON), :func:`hidden_alias` (old spellings), and the shared
  defaults :data:`DEFAULT_THREADS` and :data:`DEFAULT_N_BOOT`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = [
    "UserError",
    "ArgumentParser",
    "run_cli",
    "output_path",
    "atomic_output",
    "partial_path",
    "check_outputs",
    "read_text",
    "removed_on_error",
    "ensure_parent",
    "available_cores",
    "clamp_threads",
    "memory_limit",
    "check_memory",
    "check_disk",
    "check_work",
    "format_bytes",
    "positive_int",
    "nonneg_int",
    "positive_float",
    "nonneg_float",
    "length",
    "DEFAULT_THREADS",
    "DEFAULT_N_BOOT",
    "hidden_alias",
    "flag_errors",
    "add_progress_flags",
    "show_progress",
    "read_settings",
]


class UserError(Exception):
    """An error in what the user asked for; reported in one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: ...``) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def run_cli(main: Callable[[list[str] | None], int | None], prog: str,
            argv: list[str] | None = None, *,
            interrupted: str = "finished chunks are kept (use --resume)") -> int:
    """Run ``main(argv)``, turning user errors into a one-line message and exit code 2,
    and Ctrl-C into exit code 130 with ``<prog>: interrupted; <interrupted>``."""
    try:
        return int(main(argv) or 0)
    except SystemExit as exc:  # argparse: its one-line error is already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except UserError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted; {interrupted}\n")
        return 130


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under until it is complete."""
    return path.with_name(path.name + ".partial")


def _writable_folder(path: Path, what: str) -> None:
    """The folder of ``path`` exists and is writable, or can be created: its first
    existing ancestor is a writable directory. Nothing is created here."""
    parent = path.parent if str(path.parent) else Path(".")
    anc = parent
    while not anc.exists():
        if anc.is_symlink():  # dangling link
            raise UserError(f"{what}: cannot create folder {parent}: {anc} is a broken link")
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{what}: cannot create folder {parent}: {anc} is a file")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"{what}: folder {anc} is not writable")


def ensure_parent(path: str | os.PathLike) -> Path:
    """Create the folder of ``path`` (at write time, after every check passed)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


PathSpec = tuple[str, "str | os.PathLike | None"]


def check_outputs(files: Iterable[PathSpec] = (), *, dirs: Iterable[PathSpec] = (),
                  inputs: Iterable[PathSpec] = (), overwrite: bool = False,
                  resume: bool | None = None) -> None:
    """Check every output of a command before any work: the one place that does it.

    Args:
        files: (flag, path) of each output file (None entries are skipped).
        dirs: (flag, path) of each output folder.
        inputs: (flag, path) of each input file or folder the command reads.
        overwrite: existing output files (and leftover ``.partial`` files) may be
            replaced.
        resume: the command's ``--resume`` (True: a leftover ``.partial`` is continued);
            None for commands that cannot resume.

    Raises:
        UserError: naming the flag, when an output file is an existing directory, exists
        (without ``overwrite``), has a leftover ``.partial`` from an interrupted run,
        cannot be created (its folder is a file or not writable), when two outputs
        name the same path, an output folder is an existing file, or an output would
        replace an input.
    """
    files = [(f, Path(p)) for f, p in files if p is not None]
    dirs = [(f, Path(p)) for f, p in dirs if p is not None]
    inputs = [(f, Path(p)) for f, p in inputs if p is not None]
    for flag, d in dirs:
        if d.exists() and not d.is_dir():
            raise UserError(f"{flag}: {d} exists and is not a directory")
        if not d.exists():
            _writable_folder(d, flag)
        elif not os.access(d, os.W_OK | os.X_OK):
            raise UserError(f"{flag}: folder {d} is not writable")
    for flag, p in files:
        if p.is_dir():
            raise UserError(f"{flag}: {p} is a directory (give a file name)")
        if p.exists() and not overwrite:
            raise UserError(f"{flag}: {p} exists (use --overwrite to replace it)")
        part = partial_path(p)
        if part.exists() and not overwrite and not resume:
            hint = ("use --resume to continue it or --overwrite to discard it"
                    if resume is not None else "use --overwrite to discard it")
            raise UserError(f"{flag}: {part} is left from an interrupted run ({hint})")
        _writable_folder(p, flag)
    outs = files + dirs
    for i, (fa, a) in enumerate(outs):
        for j, (fb, b) in enumerate(outs[i + 1:], i + 1):
            if i >= len(files) and j >= len(files):
                continue  # two folders may coincide; only files collide
            if _same(a, b):
                both = fa if fa == fb else f"{fa} and {fb}"
                raise UserError(f"{both}: two outputs name the same path {a} (outputs must "
                                "be distinct)")
    for fi, i in inputs:
        for fo, o in files:
            if _same(i, o) or _same(partial_path(o), i):
                raise UserError(f"{fo}: {o} is also the input {fi}; choose another name")
        for fo, d in dirs:
            if _same(i, d):
                raise UserError(f"{fo}: {d} is also the input {fi}")


def read_text(path: str | os.PathLike, flag: str, max_bytes: int = 1 << 20) -> str:
    """The UTF-8 text of a small settings file, or a one-line error naming ``flag``
    (missing, a folder, too large, or not text)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{flag}: {p}: no such file")
    if not p.is_file():
        raise UserError(f"{flag}: {p}: not a file")
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise UserError(f"{flag}: {p}: {format_bytes(size)} is too large for a settings "
                            f"file (limit {format_bytes(max_bytes)})")
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{flag}: {p}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{flag}: {p}: not a text file (binary or not UTF-8)") from None
    if "\x00" in text:
        raise UserError(f"{flag}: {p}: not a text file (holds NUL bytes)")
    return text


@contextlib.contextmanager
def removed_on_error(folder: str | os.PathLike) -> Iterator[Path]:
    """Inside the block, ``folder`` may be created and filled; if the block fails with
    an error (not Ctrl-C, which keeps work for a resume) and the folder did not exist
    or was empty before, it is removed again, so a failed run leaves nothing behind."""
    import shutil

    d = Path(folder)
    fresh = not d.exists() or (d.is_dir() and not any(d.iterdir()))
    try:
        yield d
    except Exception:
        if fresh and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
        raise


def output_path(path: str | os.PathLike, overwrite: bool, what: str = "--out") -> Path:
    """Check that one output file ``path`` can be written (see :func:`check_outputs`,
    which also checks outputs against each other and against inputs)."""
    check_outputs([(what, path)], overwrite=overwrite)
    return Path(path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success,
    delete it on any exception. Use for every file a user may see."""
    final = Path(path)
    if final.exists() and not overwrite:
        raise UserError(f"{final} exists (use --overwrite to replace it)")
    if final.is_dir():
        raise UserError(f"{final} is a directory")
    ensure_parent(final)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def clamp_threads(n: int | None, prog: str, flag: str = "--threads") -> int | None:
    """``n`` limited to the available cores, with a note on stderr when it is cut
    (more threads than cores only slow CPU work down). None stays None."""
    if n is None:
        return None
    cores = available_cores()
    if n > cores:
        sys.stderr.write(f"{prog}: note: {flag} {n} is more than the {cores} available "
                         f"core{'s' * (cores > 1)}; using {cores}\n")
        return cores
    return n


def memory_limit() -> int:
    """Bytes one request may use: the memory available now (``MemAvailable``), or
    half the physical memory where that is unknown."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    return 8 << 30


def format_bytes(n: float) -> str:
    try:
        n = float(n)
    except OverflowError:  # an integer beyond float range
        return f"10^{len(str(int(n))) - 1} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def check_memory(nbytes: float, what: str, limit: int | None = None) -> None:
    """Refuse (UserError naming ``what`` and the limit) a request whose estimated
    memory ``nbytes`` exceeds ``limit`` (default :func:`memory_limit`). Call it
    before allocating."""
    limit = memory_limit() if limit is None else limit
    if not nbytes <= limit:  # also catches NaN
        raise UserError(f"{what}: needs about {format_bytes(nbytes)} of memory, more than "
                        f"the {format_bytes(limit)} available")


def check_disk(nbytes: float, path: str | os.PathLike, what: str) -> None:
    """Refuse (UserError naming ``what``) an output of about ``nbytes`` that will not
    fit on the disk holding ``path`` (its first existing ancestor folder)."""
    import shutil

    anc = Path(path).absolute().parent
    while not anc.exists():
        anc = anc.parent
    try:
        free = shutil.disk_usage(anc).free
    except OSError:
        return
    if not nbytes <= free:
        raise UserError(f"{what}: the output needs about {format_bytes(nbytes)} of disk, "
                        f"more than the {format_bytes(free)} free in {anc}")


#: Work limit of one command: 30 days at an optimistic rate per core.
WORK_LIMIT_S = 30 * 86400


def check_work(n_ops: float, rate_per_core: float, what: str) -> None:
    """Refuse (UserError naming ``what``) a request of ``n_ops`` elementary operations
    that would run longer than :data:`WORK_LIMIT_S` even at ``rate_per_core`` per second
    on every available core."""
    seconds = n_ops / (rate_per_core * available_cores())
    if not seconds <= WORK_LIMIT_S:
        raise UserError(f"{what}: would run for about {seconds / 86400:.3g} days even at "
                        f"{rate_per_core:.0e} operations/s per core (limit "
                        f"{WORK_LIMIT_S // 86400} days)")


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

#: a length (box side, sigma) whose square neither overflows nor underflows in float64
length = _number(float, lambda v: 1e-150 < v < 1e150, "a length between 1e-150 and 1e150")


# ---------------------------------------------------------------- one CLI convention

#: the default of every command's ``--threads`` (results never depend on it)
DEFAULT_THREADS = 1
#: the default of every command's ``--n-boot`` (bootstrap replicates of error bars)
DEFAULT_N_BOOT = 200


@contextlib.contextmanager
def flag_errors(flag: str) -> Iterator[None]:
    """Inside the block, a UserError from library code (which names values, not flags)
    gets the flag the value came from: ``<flag>: <message>``."""
    try:
        yield
    except UserError as exc:
        raise type(exc)(f"{flag}: {exc}") from None


def hidden_alias(parser, *names: str, dest: str, **kwargs) -> None:
    """An old spelling of an option: accepted, stored in ``dest``, absent from --help."""
    parser.add_argument(*names, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                        **kwargs)


def add_progress_flags(parser, *aliases: str) -> None:
    """``--progress`` / ``--no-progress`` (default: bars only when stderr is a terminal);
    ``aliases`` are old spellings of ``--no-progress`` (hidden)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_const", const=True,
                   default=None, help="show progress bars even when stderr is not a "
                   "terminal (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bars")
    for a in aliases:
        hidden_alias(g, a, dest="progress", action="store_const", const=False)


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: as asked, else only if stderr is a terminal (no
    escape sequences in log files)."""
    asked = getattr(args, "progress", None)
    if asked is not None:
        return bool(asked)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def read_settings(path: str | os.PathLike, flag: str) -> dict:
    """The settings in a ``--config`` file: TOML (``.toml``), JSON (``.json``) or, with
    another suffix, JSON if it parses as JSON, else TOML. One-line errors naming ``flag``."""
    import json
    import tomllib

    p = Path(path)
    text = read_text(p, flag)
    suffix = p.suffix.lower()
    d = None
    if suffix != ".toml":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            if suffix == ".json":
                raise UserError(f"{flag}: {p}: not valid JSON ({exc.msg}, line "
                                f"{exc.lineno})") from None
    if d is None:
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{flag}: {p}: not valid TOML ({exc})") from None
    if not isinstance(d, dict):
        raise UserError(f"{flag}: {p}: must hold a table of settings (a TOML table or a "
                        "JSON object)")
    return d
