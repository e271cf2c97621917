import json

import pytest

from tuneforge.cli import main
from tuneforge.data.io import write_records


@pytest.fixture
def tiny_run(tmp_path, tiny_lm, tiny_tok, examples):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(examples, tmp_path / "train.jsonl")
    cfg = tmp_path / "lora.yaml"
    cfg.write_text(f"""output_dir: {tmp_path / "run"}
model: {{name: {tmp_path / "model"}, dtype: float32, device: cpu}}
data: {{train: {tmp_path / "train.jsonl"}, eval: {tmp_path / "train.jsonl"}}}
adapter: {{method: lora, r: 4, target_modules: [q_proj, v_proj]}}
train: {{steps: 12, batch_size: 8, lr: 0.01, warmup_ratio: 0.0, precision: fp32, log_every: 4}}
""")
    return tmp_path, cfg


def test_train_writes_adapter_log_and_summary(tiny_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tmp_path, cfg = tiny_run
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["eval"]["tuned"]["loss"] < summary["eval"]["base"]["loss"]
    assert summary["final_loss"] < summary["first_loss"]
    assert 0 < summary["trainable_ratio"] < 0.5
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 3
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert PeftModel.from_pretrained(base, str(run / "adapter")) is not None


def test_train_inspect_marks_the_targets(tiny_run, capsys):
    _, cfg = tiny_run
    assert main(["train", "inspect", str(cfg), "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert "targets (mask=assistant, reasoning=train)" in out
    assert "«Please consult a professional.<|im_end|>»" in out
    assert "<|im_start|>user" in out.split("«")[0]


def test_train_without_a_config_is_a_clear_error(capsys):
    assert main(["train", "steps=3"]) == 2
    assert "needs a config file" in capsys.readouterr().err


def test_export_merge_gives_a_plain_transformers_model_with_the_tuned_outputs(tiny_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tmp_path, cfg = tiny_run
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    assert main(["export", str(run), "--merge"]) == 0
    merged_dir = run / "merged"
    assert (merged_dir / "model.safetensors").exists() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "model"), str(run / "adapter"))
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    ids = torch.randint(5, 300, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got, before = tuned(input_ids=ids).logits, merged(input_ids=ids).logits, base(input_ids=ids).logits
    # fp32 rounding, not a fixed 1e-5: the merged weight W + s·BA is rounded once while the adapter
    # path rounds after each of its matmuls, and each CPU's kernels sum in their own order (AMX Xeon:
    # 1e-4, Zen 5: 1e-5, on logits of ~7). 2**-13 of the largest logit is ~1,000 fp32 ulps (2**-23).
    scale, err = want.abs().max().item(), (got - want).abs().max().item()
    assert err <= 2**-13 * scale, (err, scale)
    assert (got - before).abs().max().item() > 100 * 2**-13 * scale  # the merge carried the training
    assert (merged_dir / "tokenizer.json").exists()


def test_export_without_merge_copies_the_adapter_and_bad_runs_are_clear_errors(tiny_run, capsys):
    tmp_path, cfg = tiny_run
    assert main(["export", str(tmp_path)]) == 2
    assert "not a finished training run" in capsys.readouterr().err
    assert (
        main(["train", str(cfg), "adapter.method=prompt_tuning", "adapter.num_virtual_tokens=2", "train.steps=2"]) == 0
    )
    assert main(["export", str(tmp_path / "run"), "--merge"]) == 2
    assert "cannot be merged" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "adapter_config.json").exists()


def test_train_mixes_weighted_sources_and_saves_the_resolved_config(tiny_run, capsys):
    import yaml

    from tuneforge.data.io import write_records
    from tuneforge.records import Example, Message

    tmp_path, cfg = tiny_run
    extra = [
        Example(
            messages=[Message("user", f"Travel question {i}?"), Message("assistant", "Check the visa rules.")],
            id=f"travel-{i}",
            domain="travel",
        )
        for i in range(4)
    ]
    write_records(extra, tmp_path / "extra.jsonl")
    assert (
        main(
            [
                "train",
                str(cfg),
                f"data.train=[{tmp_path / 'train.jsonl'}, {tmp_path / 'extra.jsonl'}]",
                "data.weights=[1, 3]",
                "train.steps=2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "extra.jsonl: 9 rows from 4 (75%)" in out and "train.jsonl: 3 rows from 8 (25%)" in out
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["weights"] == [1, 3] and len(saved["data"]["train"]) == 2
    assert "memory estimate: weights" in out


def test_qlora_trains_through_tuneforge_train_on_cpu_with_a_4bit_base(tiny_run, tiny_tok, capsys):
    pytest.importorskip("bitsandbytes")  # a dev dependency: CI has it
    from tuneforge.models import tiny_model

    tmp_path, cfg = tiny_run
    wide = tmp_path / "model64"  # NF4 quantises in blocks of 64 weights: rows need ≥ 64 inputs
    tiny_model(tiny_tok, hidden=64, layers=2, seed=0).save_pretrained(wide)
    tiny_tok.save_pretrained(wide)
    args = ["train", str(cfg), "adapter.method=qlora", f"model.name={wide}", "train.steps=4", "train.log_every=1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "memory estimate: weights" in out  # the estimate no longer applies qlora to a meta model
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["adapter"] == "qlora" and summary["final_loss"] < summary["first_loss"]
    saved = (tmp_path / "run" / "adapter" / "adapter_config.json").read_text()
    assert '"peft_type": "LORA"' in saved


def test_qlora_without_bitsandbytes_is_a_clear_error_before_loading(tiny_run, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    tmp_path, cfg = tiny_run
    assert main(["train", str(cfg), "adapter.method=qlora"]) == 2
    err = capsys.readouterr().err
    assert "bitsandbytes" in err and "adapter.method=lora" in err and not (tmp_path / "run").exists()


@pytest.fixture
def pairs_file(tmp_path):
    from tuneforge.records import Message, PreferencePair

    pairs = [
        PreferencePair(
            prompt=[Message("user", f"Should I double my dose {i}?")],
            chosen="No. Ask your doctor or pharmacist first.",
            rejected="Yes, take as much as you like.",
            id=f"p{i}",
        )
        for i in range(6)
    ]
    write_records(pairs, tmp_path / "pairs.jsonl")
    return tmp_path / "pairs.jsonl"


@pytest.mark.parametrize("method", ["lora", "full"])
def test_dpo_from_the_cli_raises_the_reward_margin(tiny_run, pairs_file, method):
    tmp_path, cfg = tiny_run
    assert (
        main(
            [
                "train",
                str(cfg),
                "objective.name=dpo",
                f"data.train={pairs_file}",
                "data.eval=",
                f"adapter.method={method}",
                "train.steps=8",
                "train.batch_size=3",
                "train.lr=0.005",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    tuned = summary["eval"]["tuned"]
    assert summary["objective"] == "dpo" and summary["eval"]["base"] is None
    assert tuned["reward_accuracy"] == 1.0 and tuned["reward_margin"] > 0 and tuned["pairs"] == 6
    assert tuned["loss"] < 0.6931  # below log 2, the loss at Δ = 0
    assert summary["final_loss"] < summary["first_loss"]


def test_distill_and_domain_adaptation_from_the_cli(tiny_run):
    tmp_path, cfg = tiny_run
    teacher = tmp_path / "model"
    for extra in (
        ["objective.name=distill", f"objective.teacher={teacher}"],
        [
            "objective.name=domain_adaptation",
            f"objective.general={tmp_path / 'train.jsonl'}",
            "objective.consistency_weight=1.0",
        ],
    ):
        run = tmp_path / extra[0].split("=")[1]  # each objective in its own run directory
        assert main(["train", str(cfg), *extra, "train.steps=6", f"output_dir={run}"]) == 0
        summary = json.loads((run / "train_summary.json").read_text())
        assert summary["objective"] == extra[0].split("=")[1]
        assert summary["eval"]["tuned"]["loss"] < summary["eval"]["base"]["loss"]


def test_objective_config_errors_are_clear(tiny_run, capsys):
    _, cfg = tiny_run
    assert main(["train", str(cfg), "objective.name=dpp"]) == 2
    assert "Did you mean: dpo" in capsys.readouterr().err
    assert main(["train", str(cfg), "objective.name=distill"]) == 2
    assert "needs objective.teacher" in capsys.readouterr().err
    assert main(["train", str(cfg), "objective.name=dpo"]) == 2  # data.train holds SFT examples, not pairs
    assert "expected preference pairs" in capsys.readouterr().err


def test_inspect_a_dpo_config_shows_the_chosen_answer_as_target(tiny_run, pairs_file, capsys):
    _, cfg = tiny_run
    assert main(["train", "inspect", str(cfg), "objective.name=dpo", f"data.train={pairs_file}", "--n", "1"]) == 0
    assert "«No. Ask your doctor or pharmacist first.<|im_end|>»" in capsys.readouterr().out


def test_resuming_a_run_with_another_config_or_data_is_refused_with_the_differences(tiny_run, capsys):
    tmp_path, cfg = tiny_run
    assert main(["train", str(cfg)]) == 0
    adapter = (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes()
    assert main(["train", str(cfg), "train.lr=0.02"]) == 2
    err = capsys.readouterr().err
    assert "train.lr: 0.01 → 0.02" in err and "new output_dir" in err
    # the data changed on disk under the same name
    (tmp_path / "train.jsonl").write_text((tmp_path / "train.jsonl").read_text().replace("Question", "Query"))
    assert main(["train", str(cfg)]) == 2
    assert "contents changed" in capsys.readouterr().err
    # nothing was overwritten by the refused runs; train.resume=false trains again in place
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    assert "lr: 0.01" in (tmp_path / "run" / "config.yaml").read_text()
    assert main(["train", str(cfg), "train.lr=0.02", "train.resume=false"]) == 0
    assert "lr: 0.02" in (tmp_path / "run" / "config.yaml").read_text()


def test_rerunning_the_same_config_is_allowed_and_a_watch_only_key_may_change(tiny_run):
    tmp_path, cfg = tiny_run
    assert main(["train", str(cfg)]) == 0
    assert main(["train", str(cfg), "train.log_every=2"]) == 0


def test_a_run_that_fails_midway_is_marked_unfinished_and_refused_until_rerun(tiny_run, monkeypatch, capsys):
    from tuneforge.train import run as recipe

    tmp_path, cfg = tiny_run
    run = tmp_path / "run"
    real = recipe.fit

    def crash(*a, **k):  # after the loop has logged: work a rerun resumes, so the folder stays
        (run / "train_log.jsonl").write_text('{"step": 1, "loss": 7.0}\n')
        raise RuntimeError("out of memory in the middle of training")

    monkeypatch.setattr(recipe, "fit", crash)
    with pytest.raises(RuntimeError):
        main(["train", str(cfg)])
    assert (run / ".incomplete").exists() and (run / "config.yaml").exists()
    capsys.readouterr()
    assert main(["eval", "generate", f"output_dir={tmp_path / 'ev'}", f"models=[t={run}]"]) == 2
    assert "did not finish" in capsys.readouterr().err and not (tmp_path / "ev").exists()
    assert main(["report", str(run)]) == 2 and "did not finish" in capsys.readouterr().err
    monkeypatch.setattr(recipe, "fit", real)
    assert main(["train", str(cfg)]) == 0  # rerunning the same command finishes the run
    assert not (run / ".incomplete").exists() and (run / "train_summary.json").exists()


def test_a_demo_run_exports_merged_like_a_train_run(tiny_demo):
    """A demo trains SFT with an adapter and saves a DemoConfig: export reads its model from it."""
    from transformers import AutoModelForCausalLM

    run = tiny_demo("adapter.method=lora", "adapter.r=4")
    assert main(["export", str(run), "--merge"]) == 0
    assert AutoModelForCausalLM.from_pretrained(run / "merged").config.num_hidden_layers > 0
