"""metrics.json has one contract (`tuneforge.run_metrics`): every verb that writes results writes
it through the schema, and every reader reads through it; an old file without a version reads as
version 1, a newer or malformed one is a one-line error naming the file."""

from __future__ import annotations

import json
import re

import pytest

from tuneforge.cli import main
from tuneforge.errors import DataError
from tuneforge.run_metrics import SCHEMA_VERSION, RunMetrics, read_metrics, write_metrics

GOOD = {
    "run": {"name": "r", "kind": "eval"},
    "models": {"base": {"n": 3, "overall": {"bleu": {"score": 1.5, "ci": [1.0, 2.0]}}, "per_domain": {}, "id": "x"}},
}


def test_a_file_written_before_the_version_reads_as_version_1_and_round_trips(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(GOOD))
    m = read_metrics(tmp_path)
    assert m.schema_version == 1 and m.kind == "eval" and m.models["base"].overall["bleu"]["score"] == 1.5
    assert m.models["base"].n == 3 and m.models["base"].extra == {"id": "x"}
    write_metrics(tmp_path, m)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"schema_version": SCHEMA_VERSION, **GOOD}


@pytest.mark.parametrize(
    "change,words",
    [
        ({"schema_version": SCHEMA_VERSION + 1}, "newer than this tuneforge reads"),
        ({"extras": {}}, "unknown sections ['extras']"),
        ({"run": {"kind": "nightly"}}, "kind is one of"),
        ({"models": {"base": {"per_domain": {}}}}, "model 'base' has no 'overall' scores"),
        ({"models": {"base": {"overall": {}}}}, "model 'base' has no item count 'n'"),
        ({"models": {"base": {"n": 1, "overall": {"bleu": {"score": "high"}}}}}, "metric 'bleu' has no numeric score"),
    ],
)
def test_a_writer_that_drifts_from_the_schema_fails_naming_the_file(tmp_path, change, words):
    with pytest.raises(DataError, match=re.escape(words)):
        write_metrics(tmp_path, GOOD | change)
    assert not (tmp_path / "metrics.json").exists()
    (tmp_path / "metrics.json").write_text(json.dumps(GOOD | change))
    with pytest.raises(DataError, match=re.escape(words)) as err:
        read_metrics(tmp_path)
    assert "metrics.json" in str(err.value)


def test_the_demo_writes_its_metrics_through_the_schema(tiny_demo):
    run = tiny_demo()
    assert json.loads((run / "metrics.json").read_text())["schema_version"] == SCHEMA_VERSION
    m = read_metrics(run)
    assert m.kind == "demo" and set(m.models) == {"base", "tuned"} and m.comparison


def test_eval_and_safety_runs_write_their_metrics_through_the_schema(tmp_path, tiny_lm, tiny_tok, capsys):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    common = [f"models=[a={tmp_path / 'model'}]", "dtype=float32", "device=cpu", "generation.max_new_tokens=2"]
    assert main(["eval", "run", f"output_dir={tmp_path / 'eval'}", *common, "data.test_per_domain=1",
                 "metrics=[bleu]", "bootstrap=0"]) == 0  # fmt: skip
    assert read_metrics(tmp_path / "eval").kind == "eval"
    assert main(["safety", "run", f"output_dir={tmp_path / 'safety'}", *common, "domains=[healthcare]",
                 "detector=rules"]) == 0  # fmt: skip
    safety = read_metrics(tmp_path / "safety")
    assert isinstance(safety, RunMetrics) and safety.kind == "safety" and safety.safety and "a" in safety.models
    report = (tmp_path / "safety" / "report.md").read_text()
    assert "Detector accuracy on the calibration set" in report and "Failing examples — a" in report
    (tmp_path / "safety" / "report.md").unlink()
    assert main(["report", str(tmp_path / "safety")]) == 0  # rebuilt from disk, the stage's part included
    assert (tmp_path / "safety" / "report.md").read_text() == report


def test_the_report_knows_no_stage_layout_and_a_stage_part_nobody_registered_is_an_error(tmp_path, monkeypatch):
    from pathlib import Path

    from tuneforge.evaluate import report

    source = Path(report.__file__).read_text()
    assert '["calibration"]' not in source and '["failures"]' not in source  # safety's layout lives in safety/
    monkeypatch.setattr(report, "_STAGE_REPORTS", {})
    write_metrics(tmp_path, GOOD | {"safety": {"calibration": {}}})
    with pytest.raises(Exception, match="nothing registered to render them"):
        report.write_report(tmp_path)
