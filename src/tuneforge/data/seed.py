"""The seed data tuneforge ships (written by the tuneforge authors; see data/README.md).

`data/domains/{train,test}/{domain}.jsonl` holds instruction–response pairs for five domains.
In a checkout it is read from the repository's data/; in an installed wheel from tuneforge/_data.
"""

from __future__ import annotations

import re
from pathlib import Path

from tuneforge.data.io import read_records, records_of
from tuneforge.errors import ConfigError, DataError, UnknownNameError, lookup, suggest
from tuneforge.paths import data_dir
from tuneforge.records import EvalItem, Example, PreferencePair

DOMAINS = ("healthcare", "finance", "legal", "travel", "education")
SPLITS = ("train", "test")
# seed sets made by later stages from their own shipped data, resolved by name when asked for
SEED_SOURCES = {"safety": "tuneforge.safety.training_data:safety_examples"}


def load_seed(split: str, domains: list[str] | tuple[str, ...] = ()) -> list[Example]:
    """Load the shipped multi-domain set: `split` is 'train' or 'test'; `domains` () = all five."""
    if split not in SPLITS:
        raise UnknownNameError(f"unknown seed split '{split}'.{suggest(split, SPLITS)} Use train or test")
    for d in domains:
        if d not in DOMAINS:
            raise UnknownNameError(f"unknown domain '{d}'.{suggest(d, DOMAINS)} Available: {', '.join(DOMAINS)}")
    out = []
    for d in domains or DOMAINS:
        out += records_of(read_records(data_dir() / "domains" / split / f"{d}.jsonl", "jsonl"), Example, split, "")
    return out


_ROWS = re.compile(r"^(.+)\[(-?\d*):(-?\d*)\]$")


def split_rows(spec: str) -> tuple[str, slice | None]:
    """`FILE[a:b]` → (FILE, slice(a, b)): rows a..b-1 of a data file, as in Python (`task.json[:100]`,
    `task.json[100:]` for a held-out split of one file); (spec, None) for anything else."""
    m = _ROWS.match(spec)
    if not m or Path(spec).exists():
        return spec, None
    return m.group(1), slice(int(m.group(2)) if m.group(2) else None, int(m.group(3)) if m.group(3) else None)


def load_examples(spec: str) -> list[Example]:
    """`seed:train` / `seed:test` (optionally `seed:train:legal,finance` for some domains) for the
    shipped data, `seed:tools:train` / `seed:tools:test` for the tool-use set, `seed:safety` for the
    safety suite's train half as refusal / correction examples, otherwise a data file in any format (`FILE[a:b]` for some of its rows)."""
    spec, rows = split_rows(spec)
    if rows is not None:
        return load_examples(spec)[rows]
    if spec.startswith("seed:"):
        parts = spec.split(":")
        if parts[1] in SEED_SOURCES:  # built by a later stage, named here by module path (no import edge up)
            rows = lookup({}, SEED_SOURCES[parts[1]], "seed source")()
            domains = [d for d in parts[2].split(",") if d] if len(parts) > 2 else []
            return [r for r in rows if not domains or r.domain in domains]
        if parts[1] == "tools":  # the tool-use set: seed:tools:train / seed:tools:test
            split = parts[2] if len(parts) > 2 else "train"
            if split not in SPLITS:
                raise UnknownNameError(
                    f"unknown split '{split}' of seed:tools. Use seed:tools:train or seed:tools:test"
                )
            path = data_dir() / "tools" / f"{split}.jsonl"
            return records_of(read_records(path, "jsonl"), Example, path, "")
        if parts[1] == "preferences":
            raise DataError(
                "seed:preferences holds preference pairs, not SFT examples. Use it with "
                "objective.name=dpo, or give seed:train for supervised fine-tuning"
            )
        domains = [d for d in parts[2].split(",") if d] if len(parts) > 2 else []
        return load_seed(parts[1], domains)
    records = records_of(
        read_records(spec),
        Example,
        spec,
        "Give a file of conversations (messages / prompt+completion / alpaca / sharegpt)",
    )
    for i, ex in enumerate(records):  # generation and scoring key rows by id
        ex.id = ex.id or f"{Path(spec).stem}-{i}"
    return records


PAIR_SEEDS = {"seed:preferences": "train", "seed:preferences:train": "train", "seed:preferences:test": "test"}


def load_pairs(spec: str) -> list[PreferencePair]:
    """`seed:preferences` (the shipped pairs; `seed:preferences:test` the 20 held-out ones) or a
    file of prompt/chosen/rejected records (`FILE[a:b]` for some of its rows)."""
    spec, rows = split_rows(spec)
    if rows is not None:
        return load_pairs(spec)[rows]
    if spec.startswith("seed:preferences") and spec not in PAIR_SEEDS:
        raise ConfigError(f"{spec} unknown. Use one of {', '.join(PAIR_SEEDS)}")
    path = data_dir() / "preferences" / f"{PAIR_SEEDS[spec]}.jsonl" if spec in PAIR_SEEDS else spec
    records = records_of(
        read_records(path),
        PreferencePair,
        path,
        "DPO needs a file of prompt/chosen/rejected pairs, e.g. seed:preferences",
    )
    for i, pair in enumerate(records):
        pair.id = pair.id or f"{Path(path).stem}-{i}"
    return records


def load_spec(spec, origin: bool = False) -> list:
    """Records of a data spec: `seed:...` for shipped data, else a file in any format (with
    `origin`, each record's meta names its source_file and line)."""
    spec = str(spec)
    return load_examples(spec) if spec.startswith("seed:") else read_records(spec, origin=origin)


def eval_items(specs: list[str]) -> list[EvalItem]:
    """The evaluation sets to protect (`filters.decontaminate`), as eval items."""
    return [EvalItem.from_example(e) if isinstance(e, Example) else e for spec in specs for e in load_spec(spec)]
