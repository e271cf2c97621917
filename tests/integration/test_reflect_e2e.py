"""`tuneforge reflect run` with the embedded SmolLM2 as teacher and student over a shipped document:
trace, matrix, heatmap and exported records; a rerun replays every call from the request cache."""

import json
from pathlib import Path

import numpy as np
import pytest

from tuneforge.cli import main
from tuneforge.data.io import read_records

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
ARGS = [
    "limit=2",
    "loop.levels=[basic, expert]",
    "loop.max_iterations=2",
    "question_tokens=24",
    "verdict_tokens=32",
    "answer_tokens=64",
    "reply_tokens=32",
]


def test_reflect_run_on_the_embedded_model(tmp_path):
    out = tmp_path / "reflect"
    assert main(["reflect", "run", str(ROOT / "configs" / "reflect.yaml"), f"output_dir={out}", *ARGS]) == 0
    s = json.loads((out / "alignment.json").read_text())
    assert s["n_items"] == 2 and s["levels"] == ["basic", "expert"]
    trace = [json.loads(x) for x in (out / "trace.jsonl").read_text().splitlines()]
    evaluated = [r for r in trace if r["step"] == "evaluate"]
    assert len(evaluated) == sum(r["iterations"] for r in s["items"].values()) * 2
    assert sum(r["parse_failure"] for r in evaluated) == s["parse_failures"]
    for r in evaluated:  # every recorded cell is eq. 31 of its own similarity and rating
        if r["rating"] is None:
            assert r["alignment"] is None
        else:
            lo, hi = r["rating_scale"]  # probability verdicts (the shipped config): 1–9
            assert (lo, hi) == (1, 9) and 0 < r["rating_mass"] <= 1
            assert r["alignment"] == pytest.approx(r["similarity"] * (r["rating"] - lo) / (hi - lo))
    for item_id, item in s["items"].items():
        m = np.array([[np.nan if x is None else x for x in row] for row in item["matrix"]])
        rows = [r for r in evaluated if r["item"] == item_id]
        assert np.isnan(m).sum() == 2 * 2 - sum(r["alignment"] is not None for r in rows)
    records = read_records(out / "reflected.jsonl")
    assert len(records) == 2 and all(r.source == "self-improve/reflect" and r.response for r in records)
    assert (out / "alignment.png").stat().st_size > 0 and "<svg" in (out / "report.html").read_text()
    # resumable: the rerun's calls are all cache hits and give the same trace
    before = (out / "trace.jsonl").read_text()
    assert main(["reflect", "run", str(ROOT / "configs" / "reflect.yaml"), f"output_dir={out}", *ARGS]) == 0
    assert (out / "trace.jsonl").read_text() == before
