"""Where the data tuneforge ships lives: `tuneforge/_data` in an installed wheel, the repository's
`data/` in a checkout. The one place every stage asks, so no stage imports another for a path."""

from __future__ import annotations

from pathlib import Path

from tuneforge.errors import DataError


def data_dir() -> Path:
    """The shipped data folder (installed copy first, then the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data", here.parent.parent / "data"):
        if (candidate / "domains").is_dir():
            return candidate
    raise DataError("tuneforge's shipped data folder is missing. Reinstall tuneforge")


def shipped(*parts: str) -> Path:
    """A path inside the shipped data folder, e.g. shipped("safety", "suite.yaml")."""
    return data_dir().joinpath(*parts)
