"""The demo recipe end to end on the tiny in-process model (seconds), with a prompt-learning
adapter, which has nothing to merge before generating."""

import json

import yaml

from tuneforge.config import load_config
from tuneforge.demo import DemoConfig, run_demo
from tuneforge.hardware import auto_precision, cpu_info


def test_demo_recipe_runs_with_a_prompt_tuning_adapter_in_the_auto_precision(tmp_path, tiny_lm, tiny_tok):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    cfg = load_config(
        DemoConfig,
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            f"model.name={tmp_path / 'model'}",
            "model.dtype=auto",
            "model.device=cpu",
            "adapter.method=prompt_tuning",
            "adapter.num_virtual_tokens=3",
            "train.steps=2",
            "train.batch_size=2",
            "train.precision=auto",
            "data.test_per_domain=1",
            "generation.max_new_tokens=4",
        ],
    )
    run = run_demo(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    # `auto` is resolved for this machine and the concrete choice is what the run records
    choice = auto_precision("cpu")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["model"]["dtype"], saved["train"]["precision"]) == (choice.dtype, choice.precision)
    assert (metrics["run"]["dtype"], metrics["run"]["precision"]) == (choice.dtype, choice.precision)
    assert metrics["run"]["hardware"]["cpu"] == cpu_info().model
    assert f"training precision {choice.precision}" in (run / "report.md").read_text()
    compute = json.loads((run / "metrics.json").read_text())["run"]["compute"]
    assert f"Compute: D = {compute['tokens']:,} tokens" in (run / "report.md").read_text()
    gens = [json.loads(line) for line in (run / "generations" / "base.jsonl").read_text().splitlines()]
    assert {g["settings"]["dtype"] for g in gens} == {choice.dtype}
    assert metrics["run"]["adapter"] == "prompt_tuning" and metrics["run"]["steps"] == 2
    assert set(metrics["run"]["stage_seconds"]) == {"data", "base_answers", "train", "tuned_answers", "score"}
    assert "rouge_l_for_travel" in metrics["comparison"]
    assert (run / "adapter" / "adapter_config.json").exists()
    assert len((run / "generations" / "tuned.jsonl").read_text().splitlines()) == 5


def test_demo_builds_its_training_data_first_when_asked(tiny_demo, tmp_path):
    run = tiny_demo(
        "build.enabled=true",
        "build.augment.mosaic=4",
        "build.filters.ifd=true",
        f"build.filters.ifd_model={tmp_path / 'model'}",
        "build.filters.ifd_max=100",
        "build.filters.score_sources=[augment]",
    )
    manifest = json.loads((run / "data" / "build" / "manifest.json").read_text())
    assert manifest["stages"] == {"manual": 244, "augment": 4}  # manual source = data.train (seed:train)
    assert manifest["reports"]["filter:ifd"]["scored"] == 4  # only the composites were scored
    train = (run / "data" / "train.jsonl").read_text().splitlines()
    assert len(train) == manifest["final"] == 248 - sum(manifest["removed"].values())
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["run"]["data_build"]["final"] == manifest["final"] and "data_build" in metrics["run"]["stage_seconds"]
    )
    assert "Training data built by `tuneforge data build`" in (run / "report.md").read_text()


def test_the_demo_scores_with_the_configured_encoder_whichever_metric_needs_it(
    tmp_path, tiny_lm, tiny_tok, monkeypatch
):
    """if_score alone (no tsas) still uses eval.encoder, not the default one (issue 17)."""
    import tuneforge.evaluate.scoring as runner

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    asked = []
    real = runner.make_encoder
    monkeypatch.setattr(runner, "make_encoder", lambda name: asked.append(name) or real())
    cfg = load_config(
        DemoConfig,
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            f"model.name={tmp_path / 'model'}",
            "model.device=cpu",
            "train.steps=1",
            "train.batch_size=2",
            "data.test_per_domain=1",
            "generation.max_new_tokens=2",
            "eval.metrics=[if_score]",
            "eval.encoder=my-encoder",
        ],
    )
    run_demo(cfg)
    assert asked == ["my-encoder"]
