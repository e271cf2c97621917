"""The seed data tuneforge ships (written by the tuneforge authors; see data/README.md).

`data/domains/{train,test}/{domain}.jsonl` holds instruction–response pairs for five domains.
In a checkout it is read from the repository's data/; in an installed wheel from tuneforge/_data.
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.data.io import read_records
from tuneforge.errors import DataError, UnknownNameError, suggest
from tuneforge.records import Example

DOMAINS = ("healthcare", "finance", "legal", "travel", "education")
SPLITS = ("train", "test")


def data_dir() -> Path:
    """The shipped data folder (installed copy first, then the source checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_data", here.parent.parent / "data"):
        if (candidate / "domains").is_dir():
            return candidate
    raise DataError("tuneforge's shipped data folder is missing. Reinstall tuneforge")


def load_seed(split: str, domains: list[str] | tuple[str, ...] = ()) -> list[Example]:
    """Load the shipped multi-domain set: `split` is 'train' or 'test'; `domains` () = all five."""
    if split not in SPLITS:
        raise UnknownNameError(f"unknown seed split '{split}'.{suggest(split, SPLITS)} Use train or test")
    for d in domains:
        if d not in DOMAINS:
            raise UnknownNameError(f"unknown domain '{d}'.{suggest(d, DOMAINS)} Available: {', '.join(DOMAINS)}")
    out = []
    for d in domains or DOMAINS:
        out += read_records(data_dir() / "domains" / split / f"{d}.jsonl", "jsonl")
    return out


def load_examples(spec: str) -> list[Example]:
    """`seed:train` / `seed:test` for the shipped data, otherwise a data file in any format."""
    if spec.startswith("seed:"):
        return load_seed(spec.split(":", 1)[1])
    records = read_records(spec)
    bad = next((r for r in records if not isinstance(r, Example)), None)
    if bad is not None:
        raise DataError(f"expected SFT examples, found a {type(bad).__name__} record. Give a file "
                        "of conversations (messages / prompt+completion / alpaca / sharegpt)", path=spec)
    for i, ex in enumerate(records):  # generation and scoring key rows by id
        ex.id = ex.id or f"{Path(spec).stem}-{i}"
    return records
