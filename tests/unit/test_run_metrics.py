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


EVAL = [
    "dtype=float32",
    "device=cpu",
    "generation.max_new_tokens=2",
    "data.test_per_domain=1",
    "metrics=[bleu]",
    "bootstrap=0",
]


VERBS_THAT_WRITE_A_RUN = {  # verb → (argv before the run's keys, the recipe module, a call late in its work)
    "demo": (["demo", "model.dtype=float32", "model.device=cpu", "train.steps=1", "train.precision=fp32",
              "data.test_per_domain=1", "generation.max_new_tokens=2", "build.enabled=false", "eval.metrics=[bleu]"],
             "tuneforge.demo", "write_report"),  # no data build, no encoder: the marker is what is tested here
    "eval run": (["eval", "run", *EVAL], "tuneforge.evaluate.run", "write_report"),
    "eval generate": (["eval", "generate", *EVAL], "tuneforge.evaluate.run", "_rewrite"),
    "eval score": (["eval", "score", *EVAL], "tuneforge.evaluate.run", "write_report"),
    "safety run": (["safety", "run", "dtype=float32", "device=cpu", "generation.max_new_tokens=2",
                    "domains=[healthcare]", "detector=rules"], "tuneforge.safety.run", "write_report"),
    "data build": (["data", "build", "configs/data_ds2.yaml", "ds2.enabled=false", "manual.files=[seed:train]",
                    "filters.decontaminate=[]"], "tuneforge.data.run", "datacard"),
    "multitask run": (["multitask", "run", "model.dtype=float32", "methods=[mixed]", "seen_tasks=1", "unseen_tasks=1",
                       "train_per_task=2", "eval_per_task=1", "train.steps=1", "train.precision=fp32",
                       "train.max_length=512", "generation.max_new_tokens=2", "phrasing_per_task=1", "phrasing_forms=[instruction]",
                       "bootstrap=10", "combo_sets=0"], "tuneforge.multitask.run", "write_experiment_report"),
    "reflect run": (["reflect", "run", "limit=1", "loop.levels=[basic]", "loop.max_iterations=1", "question_tokens=2",
                     "verdict_tokens=2", "answer_tokens=2", "reply_tokens=2", "teacher.dtype=float32",
                     "student.dtype=float32"], "tuneforge.reflect.run", "write_reflect_report"),
}  # fmt: skip


@pytest.mark.parametrize("verb", VERBS_THAT_WRITE_A_RUN)
def test_a_run_that_fails_late_keeps_its_folder_marked_and_a_finished_one_carries_no_marker(
    verb, tmp_path, tiny_lm, tiny_tok, monkeypatch, capsys, request
):
    import importlib

    model_dir = tmp_path / "model"
    if verb == "multitask run":  # SuperNI prompts need a tokenizer that knows their words to fit 512 positions
        from tuneforge.models import tiny_model, tiny_tokenizer
        from tuneforge.multitask.superni import load_tasks

        superni = request.getfixturevalue("shared_data") / "superni"
        tasks = load_tasks(str(superni))
        tok = tiny_tokenizer([t.definition for t in tasks] + [i["input"] for t in tasks for i in t.instances[:20]],
                             vocab_size=3000)  # fmt: skip
        tiny_model(tok).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    else:
        tiny_lm.save_pretrained(model_dir)
        tiny_tok.save_pretrained(model_dir)
    argv, module, late = VERBS_THAT_WRITE_A_RUN[verb]
    run_keys = {
        "demo": [f"model.name={model_dir}"],
        "data build": [],
        "multitask run": [f"model.name={model_dir}", f"superni_dir={superni if verb == 'multitask run' else ''}"],
        "reflect run": [f"teacher.model={model_dir}", f"student.model={model_dir}"],
    }.get(verb, [f"models=[a={model_dir}]"])
    argv = [*argv, f"output_dir={tmp_path / 'run'}", *run_keys]
    if verb == "eval score":  # it scores the answers `eval generate` stored
        assert main(["eval", "generate", *argv[2:]]) == 0
    recipe = importlib.import_module(module)
    real = getattr(recipe, late)

    def crash(*a, **k):
        raise RuntimeError("planted failure late in the run")

    monkeypatch.setattr(recipe, late, crash)
    with pytest.raises(RuntimeError, match="planted failure"):
        main(argv)
    assert (tmp_path / "run" / ".incomplete").exists(), f"{verb}: a failed run must stay marked"
    monkeypatch.setattr(recipe, late, real)
    assert main(argv) == 0  # the same command finishes the run
    assert not (tmp_path / "run" / ".incomplete").exists(), f"{verb}: a finished run carries no marker"
