"""`tuneforge data build` with the embedded SmolLM2: a non-empty DS² dataset whose manifest adds up."""

import json
from pathlib import Path

import pytest

from tuneforge.cli import main
from tuneforge.data.io import read_records

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
ARGS = ["ds2.keywords=3", "ds2.max_keywords=4", "ds2.pairs=1", "augment.mosaic=2"]


def test_ds2_build_with_the_embedded_model(tmp_path):
    out = tmp_path / "data"
    assert main(["data", "build", str(ROOT / "configs" / "data_ds2.yaml"), f"output_dir={out}", *ARGS]) == 0
    m = json.loads((out / "manifest.json").read_text())
    records = read_records(out / "train.jsonl")
    ds2 = [r for r in records if r.source == "ds2"]
    assert ds2 and all(r.domain == "healthcare" and r.meta["bloom"] and r.meta["consistency"] >= 0.4 for r in ds2)
    assert m["generated_total"] == sum(m["stages"].values())
    assert m["generated_total"] - sum(m["removed"].values()) == m["after_filters"] == m["final"] == len(records)
    assert m["llm"]["calls"] > 0 and m["reports"]["ds2"]["healthcare"]["validated"] == m["stages"]["ds2"]
    # a rerun answers everything from the cache
    assert main(["data", "build", str(ROOT / "configs" / "data_ds2.yaml"), f"output_dir={out}", *ARGS]) == 0
    again = json.loads((out / "manifest.json").read_text())
    assert again["llm"]["calls"] == 0 and again["final"] == m["final"]
