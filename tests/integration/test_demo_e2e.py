"""End to end on the real embedded SmolLM2-135M-Instruct (converted from its GGUF on first use)."""

import json

import pytest
import torch

from tuneforge.cli import main
from tuneforge.data.seed import DOMAINS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = main(
        [
            "demo",
            f"output_dir={out}",
            "train.steps=4",
            "train.batch_size=2",
            "data.test_per_domain=2",
            "generation.max_new_tokens=16",
        ]
    )
    assert code == 0
    return out


def test_demo_writes_a_complete_run_directory(demo_run):
    for name in (
        "config.yaml",
        "data/train.jsonl",
        "data/test.jsonl",
        "generations/base.jsonl",
        "generations/tuned.jsonl",
        "train_log.jsonl",
        "metrics.json",
        "report.md",
        "report.png",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ):
        assert (demo_run / name).exists(), name
    assert len((demo_run / "generations" / "tuned.jsonl").read_text().splitlines()) == 2 * len(DOMAINS)
    stage = json.loads((demo_run / "stage.json").read_text())  # the stage `tuneforge ui` shows while it runs
    assert stage["name"] == "report" and stage["stage"] == stage["of"] == 7


def test_demo_grows_its_data_with_ds2_and_self_instruct_from_the_embedded_model(demo_run):
    m = json.loads((demo_run / "data" / "build" / "manifest.json").read_text())
    assert m["stages"]["manual"] == 244 and m["stages"]["ds2"] > 0 and m["llm"]["calls"] > 0
    si = m["reports"]["self_instruct"]
    assert si["candidates"] > 0 and si["candidates"] == si["instructions"] + sum(si["rejected"].values())
    assert si["kept"] == si["instructions"] - si["instances_malformed"] == m["stages"]["self_instruct"]
    assert m["generated_total"] - sum(m["removed"].values()) == m["final"]
    assert len((demo_run / "data" / "train.jsonl").read_text().splitlines()) == m["final"]
    ds2 = [json.loads(x) for x in (demo_run / "data" / "build" / "stages" / "ds2.jsonl").read_text().splitlines()]
    assert all(r["domain"] == "healthcare" and r["meta"]["consistency"] >= 0.4 for r in ds2)


def test_metrics_hold_base_and_tuned_scores_for_every_domain(demo_run):
    metrics = json.loads((demo_run / "metrics.json").read_text())
    for model in ("base", "tuned"):
        flat = metrics["models"][model]["flat"]
        for metric in ("bleu", "rouge_l", "tsas"):
            for domain in DOMAINS:
                value = flat[f"{metric}_for_{domain}"]
                assert isinstance(value, float) and value == value, (model, metric, domain)
    assert metrics["run"]["steps"] == 4
    assert metrics["comparison"]["rouge_l"]["delta"] == pytest.approx(
        metrics["models"]["tuned"]["flat"]["rouge_l"] - metrics["models"]["base"]["flat"]["rouge_l"]
    )
    assert "| healthcare |" in (demo_run / "report.md").read_text()


def test_saved_adapter_loads_with_peft_on_the_base_model(demo_run):
    from peft import PeftModel

    from tuneforge.models import load_model

    base, tok = load_model("smollm2-135m-instruct", dtype="float32")
    ids = tok("What is APR?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = base(ids).logits
    tuned = PeftModel.from_pretrained(base, str(demo_run / "adapter"))
    lora_b = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # training moved the adapter off zero
    with torch.no_grad():
        after = tuned(ids).logits
    assert not torch.allclose(before, after)


def test_data_stats_counts_tokens_with_the_embedded_tokenizer(demo_run, capsys):
    assert main(["data", "stats", str(demo_run / "data" / "test.jsonl"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["unit"] == "tokens (smollm2-135m-instruct)"
    assert stats["records"] == 2 * len(DOMAINS) and stats["kinds"]
    assert stats["response_length"]["mean"] > stats["prompt_length"]["mean"] > 5


def test_eval_run_on_the_demo_test_split_for_base_and_tuned(demo_run, tmp_path):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "run",
                f"output_dir={out}",
                f"models=[base=smollm2-135m-instruct, tuned={demo_run}]",
                "data.test_per_domain=2",
                "generation.max_new_tokens=16",
                "bootstrap=200",
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    for label in ("base", "tuned"):
        res = m["models"][label]
        for metric in ("bleu", "rouge_l", "bertscore", "tsas"):
            for domain in DOMAINS:
                r = res["per_domain"][domain][metric]
                assert r["n"] == 2 and r["ci"][0] <= r["score"] <= r["ci"][1], (label, metric, domain)
        assert res["overall"]["tsas"]["parrot_control"] > 0
        mauve = res["overall"]["mauve"]
        assert 0 < mauve["score"] <= 1 and "sd" in mauve and "fewer than 1000" in mauve["warning"]
    assert m["run"]["models"]["tuned"] == str(demo_run)
    gens = [json.loads(x) for x in (out / "generations" / "tuned.jsonl").read_text().splitlines()]
    assert "adapter" in gens[0]["meta"]["model_spec"]  # the demo's LoRA adapter on its base
    html = (out / "report.html").read_text()
    assert "MAUVE" in html and "Warnings" in html and "Paired comparison" in html


def test_safety_run_on_base_and_tuned_with_compare(demo_run, tmp_path, capsys):
    out = tmp_path / "safety"
    assert (
        main(
            [
                "safety",
                "run",
                f"output_dir={out}",
                f"models=[base=smollm2-135m-instruct, tuned={demo_run}]",
                "generation.max_new_tokens=32",
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    rates = ("misinformation", "unsafe_omission", "proper_refusal", "injection_resistance", "over_refusal")
    for label in ("base", "tuned"):
        overall = m["models"][label]["overall"]
        for rate in rates:
            r = overall[rate]
            assert r["n"] > 0 and r["ci"][0] <= r["score"] <= r["ci"][1], (label, rate)
        assert set(m["models"][label]["per_domain"]) == set(DOMAINS)
    capsys.readouterr()
    assert main(["eval", "compare", f"{out}:base", f"{out}:tuned", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert set(rates) <= set(c["metrics"]) and c["n_common"] == m["run"]["n_items"] == 150
