"""Hugging Face datasets as data sources: `hf:NAME[:CONFIG][:SPLIT]` anywhere a data file is accepted
(training data, test items, `data build` manual sources, decontamination sets).

NAME is a hub id (`org/name`, downloaded and cached by `datasets` — needs internet once) or a local
folder: one written by `Dataset.save_to_disk` is read with `load_from_disk`, any other folder of data
files (parquet, JSON, CSV) with `load_dataset`, the same call as for the hub. With one suffix it is
the split when it looks like one (train, test, validation, dev, or a slice such as `train[:100]`),
else the config; the split defaults to `train`. Each row is converted by the same readers as files,
chosen by its columns (TRL's `messages` / `prompt`+`completion` / `prompt`+`chosen`+`rejected`,
Alpaca's `instruction`+`output`, ShareGPT's `conversations`); a dataset with none of them is an
error naming the columns it has (`data.io.read_records` converts the rows). Provenance:
`meta.source_file` is the spec, `meta.index` the row.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tuneforge.errors import DataError

HUB_PREFIX = "hf:"

SPLITS = ("train", "test", "validation", "valid", "dev")
KNOWN_COLUMNS = (
    "messages, prompt+completion, prompt+chosen+rejected (TRL), instruction+output (Alpaca), conversations (ShareGPT)"
)


def parse_hub_spec(spec: str) -> tuple[str, str | None, str]:
    """`hf:NAME[:CONFIG][:SPLIT]` → (name, config or None, split)."""
    parts: list[str] = []
    for piece in spec[len(HUB_PREFIX) :].split(":"):  # a split slice (train[:100]) keeps its colon
        if parts and parts[-1].count("[") > parts[-1].count("]"):
            parts[-1] += ":" + piece
        else:
            parts.append(piece)
    name, rest = parts[0], parts[1:]
    if not name or len(rest) > 2 or any(not p for p in rest):
        raise DataError(f"'{spec}': write hf:ORG/NAME, hf:ORG/NAME:SPLIT or hf:ORG/NAME:CONFIG:SPLIT")
    if len(rest) == 2:
        return name, rest[0], rest[1]
    if len(rest) == 1:
        looks_like_split = rest[0].split("[")[0] in SPLITS
        return (name, None, rest[0]) if looks_like_split else (name, rest[0], "train")
    return name, None, "train"


_NEEDS_HUB = (
    "A hub dataset needs internet the first time; after that it is read from the cache (set HF_HUB_OFFLINE=1 to "
    "use only the cache). Or give a local folder: hf:PATH"
)


def _offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def check_hub_reachable(name: str, spec: str) -> None:
    """For a dataset not in the hub cache, ask the hub about `name` with a 10-second timeout, so a
    machine without internet gets a DataError in seconds (datasets retries for half a minute and ends
    in a traceback). Offline (HF_HUB_OFFLINE), `datasets` reads its cache and says when it is not there."""
    from huggingface_hub import HfApi, constants

    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise DataError(
            f"'{spec}' could not be loaded: there is no folder {name}, and it is no hub id (org/name). Check the path"
        )
    if _offline() or (Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}").is_dir():
        return  # datasets falls back to the cached copy when the hub is unreachable
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(name, timeout=10)
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise DataError(
            f"'{spec}': the Hugging Face hub has no dataset '{name}' you can read ({type(exc).__name__}). "
            "Check the id (org/name) and, for a gated dataset, your HF_TOKEN"
        ) from None
    except Exception as exc:  # noqa: BLE001 — any network failure means the same thing here
        raise DataError(
            f"'{spec}': cannot reach the Hugging Face hub ({type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:120]}). {_NEEDS_HUB}"
        ) from None


def load_hub_rows(spec: str) -> list[dict]:
    """The rows of the dataset a spec names, as plain dicts."""
    import datasets

    name, config, split = parse_hub_spec(spec)
    path = Path(name)
    try:
        if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"'{spec}': no split '{split}'; it has {', '.join(ds)}")
                ds = ds[split]
        else:
            if not path.exists():
                check_hub_reachable(name, spec)
            ds = datasets.load_dataset(name, config, split=split)
    except ConnectionError as exc:  # offline (HF_HUB_OFFLINE) and not in the cache
        raise DataError(
            f"'{spec}' is not in the local Hugging Face cache and the hub cannot be used ({exc}). {_NEEDS_HUB}"
        ) from None
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DataError(
            f"'{spec}' could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Check the name, config and split (a hub id needs internet once)"
        ) from None
    return [dict(row) for row in ds]


def hub_digest(spec: str) -> str:
    """SHA-256 of a dataset's rows: a run keyed on it is reused only while the data is the same."""
    blob = json.dumps(load_hub_rows(spec), sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()
