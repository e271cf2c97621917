"""Writing the files a user reads, and marking runs that have not finished.

Files are written atomically — the text goes to a temporary file beside the
target, which is then renamed over it, so a command killed mid-write leaves the old file or the
new one, never half of one — and with the permissions the user's umask gives (a temporary file
is created 0600).

Hand-written: the standard library has no atomic write; these few lines are all it takes.
"""

from __future__ import annotations

import os
import tempfile
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
            "this run has not finished: its files may be partial or from an earlier run\n", encoding="utf-8"
        )
    yield
    if active:
        marker.unlink(missing_ok=True)


def check_finished(run_dir: str | Path) -> None:
    """Raise when `run_dir` is marked unfinished."""
    from tuneforge.errors import TuneforgeError

    if (Path(run_dir) / MARKER).exists():
        raise TuneforgeError(
            f"{run_dir} did not finish (it holds {MARKER}): its files may be partial or stale. "
            "Rerun the command that made it (it resumes), or use another run directory"
        )
