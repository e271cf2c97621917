"""Writing the files a user reads, and marking runs that have not finished.

Files are written atomically — the text goes to a temporary file beside the
target, which is then renamed over it, so a command killed mid-write leaves the old file or the
new one, never half of one — and with the permissions the user's umask gives (a temporary file
is created 0600).

Outputs belong to the command that made them (issue 29): `check_output_dir` refuses a directory
that holds files tuneforge did not write, another verb's output, or an input of the command (the
path itself, a folder above it or — for a folder read — one inside it; symlinks resolved first).
Every output directory carries a stamp (`.tuneforge-output.json`: the verb, and for exports the run
it came from). `staged_dir` builds a directory beside the target and swaps it in only on success;
`run_directory` creates a run, marks it `.incomplete` while it runs, and removes a run it created
when the command fails before its work left anything but the config (so a rejected model, template
or adapter target leaves nothing), but keeps one that has — marked, and resumable.

Hand-written: the standard library has no atomic write or output ownership; these few lines are
all it takes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


MARKER = ".incomplete"


@contextmanager
def incomplete_until_done(run_dir: str | Path, active: bool = True):
    """Mark `run_dir` unfinished (a `.incomplete` file) while the block runs; the mark is removed
    only when the block completes, so a failed or killed command leaves a directory that says so
    and that `tuneforge report` / evaluation refuse, instead of passing for a finished run."""
    marker = Path(run_dir) / MARKER
    if active:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(
            "this run has not finished: its files may be partial or from an earlier run\n"
            f"pid: {os.getpid()}\nhost: {os.uname().nodename}\n",  # so `tuneforge ui` tells running from stopped
            encoding="utf-8",
        )
    try:
        yield
    except BaseException as exc:  # why it stopped, for the page (a SIGKILL writes nothing: "incomplete")
        if active and marker.exists():
            with open(marker, "a", encoding="utf-8") as f:
                f.write(f"stopped: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}\n")
        raise
    if active:
        marker.unlink(missing_ok=True)


def marker_state(run_dir: str | Path) -> dict | None:
    """None for a finished run; else what its `.incomplete` says: pid, host, and `stopped` (the
    exception that ended it) when it ended by one."""
    marker = Path(run_dir) / MARKER
    try:
        text = marker.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    state = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition(": ")
        if sep and key in ("pid", "host", "stopped"):
            state[key] = value
    return state


def check_finished(run_dir: str | Path) -> None:
    """Raise when `run_dir` is marked unfinished."""
    from tuneforge.errors import TuneforgeError

    if (Path(run_dir) / MARKER).exists():
        raise TuneforgeError(
            f"{run_dir} did not finish (it holds {MARKER}): its files may be partial or stale. "
            "Rerun the command that made it (it resumes), or use another run directory"
        )


STAMP = ".tuneforge-output.json"


def read_stamp(path: str | Path) -> dict | None:
    """The stamp of an output directory tuneforge made, or None."""
    try:
        stamp = json.loads((Path(path) / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _overlap(out: Path, inputs: Iterable[str | Path]) -> str | None:
    for item in inputs:
        inp = Path(item).resolve()
        if out == inp:
            return f"it is an input of this command ({item})"
        if out in inp.parents:
            return f"it holds an input of this command ({item})"
        if inp.is_dir() and inp in out.parents:
            return f"it is inside a folder this command reads ({item})"
    return None


def check_output_dir(
    path: str | Path,
    verb: str,
    inputs: Iterable[str | Path] = (),
    source: str | None = None,
    replace: bool = False,
    overwrite: bool = False,
    adopt: Iterable[str] = (),
) -> Path:
    """Return `path` resolved, or raise ConfigError when writing there could destroy what this
    command did not make. `source`: the output must come from the same source (an export of the
    same run); `replace`: an existing output is replaced whole, which needs `overwrite`; `adopt`: the
    names a folder tuneforge did not make may hold and still be used (the command's own inputs)."""
    from tuneforge.errors import ConfigError

    where = Path(path)
    out = where.resolve()
    fix = "Choose a new or empty folder"
    if where.exists() and not where.is_dir():
        raise ConfigError(f"output {where} is a file, not a folder. {fix}")
    problem = _overlap(out, inputs)
    if problem:
        raise ConfigError(f"output {where} cannot be written: {problem}. {fix}")
    if not where.is_dir() or not any(where.iterdir()):
        return out
    stamp = read_stamp(where)
    names = sorted(p.name for p in where.iterdir())
    if stamp is None and set(names) <= set(adopt):
        return out
    if stamp is None:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise ConfigError(
            f"output {where} already holds files tuneforge did not write ({shown}); nothing was changed. {fix}"
        )
    if stamp.get("verb") != verb:
        raise ConfigError(f"output {where} holds the output of `tuneforge {stamp.get('verb')}`, not of {verb}. {fix}")
    if source is not None and stamp.get("source") != source:
        raise ConfigError(f"output {where} holds an export of another run ({stamp.get('source')}). {fix}")
    if replace and not overwrite:
        raise ConfigError(f"output {where} already holds this {verb}. Pass --overwrite to replace it, or {fix.lower()}")
    if replace:  # replacing the folder whole must not take anything the earlier output did not write
        added = sorted(set(_listing(where)) - set(stamp.get("files", [])) - {STAMP})
        if added:
            raise ConfigError(
                f"output {where} holds files its earlier {verb} did not write ({', '.join(added[:3])}); nothing was "
                "changed. Move them out first, or choose a new folder"
            )
    return out


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def _stamp(folder: Path, verb: str, source: str | None, files: list[str] | None = None) -> None:
    stamp = {"verb": verb, "source": source} | ({"files": files} if files is not None else {})
    write_text_atomic(folder / STAMP, json.dumps(stamp) + "\n")


def _make_parents(path: Path) -> list[Path]:
    """mkdir -p that returns the folders it created, deepest first (to remove them on failure)."""
    made = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return made


def _remove_made(made: list[Path]) -> None:
    for p in made:  # deepest first; only folders this command created, and only if left empty
        try:
            p.rmdir()
        except OSError:
            break


@contextmanager
def staged_dir(out: Path, verb: str, source: str | None = None) -> Iterator[Path]:
    """Yield an empty folder beside `out` (checked with check_output_dir first); on success it is
    stamped and renamed to `out`, replacing an earlier output only then; on failure it is removed,
    with any parent folder this created, so a failed command leaves nothing behind."""
    made = _make_parents(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        yield tmp
        _stamp(tmp, verb, source, _listing(tmp))  # what it wrote: a later --overwrite may replace only these
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_made(made)
        raise


@contextmanager
def run_directory(path: str | Path, verb: str, active: bool = True, adopt: Iterable[str] = ()) -> Iterator[Path]:
    """Create (or reopen, to resume) a run directory of `verb`, marked `.incomplete` until the
    block completes. A failure while the folder holds nothing but its config (no answers, cache,
    data build, log or checkpoint yet) removes a folder this call created; later, it stays to resume."""
    run_dir = Path(path)
    if active:  # the main process; the others write into the folder it made
        check_output_dir(run_dir, verb, adopt=adopt)
    made = _make_parents(run_dir) if active else []
    if active and read_stamp(run_dir) is None:
        _stamp(run_dir, verb, None)
    try:
        with incomplete_until_done(run_dir, active):
            yield run_dir
    except BaseException:
        if made and not _holds_work(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            _remove_made(made[1:])
        raise


BOOKKEEPING = {STAMP, MARKER, "config.yaml", "run_fingerprint.json", "stage.json"}


def _holds_work(run_dir: Path) -> bool:
    """Whether a run folder holds anything but what every run writes before it starts (answers, a
    cache, a data build): such a folder is kept after a failure, to resume."""
    return any(p.is_file() and p.name not in BOOKKEEPING for p in run_dir.rglob("*"))


def check_output_file(
    path: str | Path, inputs: Iterable[str | Path] = (), overwrite: bool = False, sidecars: Iterable[Path] = ()
) -> Path:
    """Refuse an output file (or a file written beside it, `sidecars`) that is a folder, a device,
    sits under a file, is one of the command's inputs, or already exists (unless `overwrite`):
    a file of the user's is never replaced unasked. Symlinks are resolved first."""
    from tuneforge.errors import ConfigError

    main = Path(path)
    ins = [Path(i).resolve() for i in inputs if Path(i).exists()]
    for where in [main, *sidecars]:
        what = "output" if where == main else f"output {main} writes {where}, and it"
        if where.is_dir():
            raise ConfigError(f"{what} {where} is a folder; give a file path")
        if where.exists() and not where.is_file():  # a device or FIFO: renaming over it would replace it
            raise ConfigError(f"{what} {where} is not a regular file (a device, FIFO or socket); give a file path")
        parent = next((p for p in where.parents if p.exists()), Path("."))
        if not parent.is_dir():
            raise ConfigError(f"{what} {where} cannot be written: {parent} is a file, not a folder. Give another path")
        if where.resolve() in ins:
            raise ConfigError(f"{what} {where} is an input of this command: write the result to a new file")
        if (where.exists() or where.is_symlink()) and not overwrite:
            raise ConfigError(f"{what} {where} already exists; nothing was changed. Pass --overwrite to replace it")
    return main
