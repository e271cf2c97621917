"""`tuneforge compress` end to end on a tiny model: a smaller model that loads, the summary's held-out
losses, recovery on the one loop, and bad configs refused before anything is written."""

import json

import pytest

from tuneforge.cli import main


@pytest.fixture
def tiny_source(tmp_path, tiny_tok, examples):
    from tuneforge.data.io import write_records
    from tuneforge.models import tiny_model

    tiny_model(tiny_tok, hidden=64, layers=3, seed=0).save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(examples, tmp_path / "train.jsonl")
    return tmp_path


def _args(tmp, *more):
    return ["compress", "run", f"source={tmp / 'model'}", f"output_dir={tmp / 'out'}", f"calibration.data={tmp / 'train.jsonl'}",
            f"eval={tmp / 'train.jsonl'}", *more]  # fmt: skip


@pytest.mark.parametrize("method", ["magnitude", "taylor", "gates"])
def test_compress_writes_a_smaller_model_that_transformers_loads(tiny_source, method, capsys):
    from transformers import AutoModelForCausalLM

    gates = ["prune.gates.steps=3"] if method == "gates" else []
    assert main(_args(tiny_source, f"prune.method={method}", "prune.mlp=0.5", "prune.heads=0.5", "prune.layers=0.3",
                      "dtype=float32", *gates)) == 0  # fmt: skip
    out = tiny_source / "out"
    s = json.loads((out / "compress_summary.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.intermediate_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.num_attention_heads == 2 and model.config.num_key_value_heads in (1, 2)
    for i, layer in enumerate(s["plan"]["heads"]):  # query heads stay with their KV head (tiny: 2 per group)
        assert [h // 2 for h in layer] == [
            k for k in s["plan"]["kv_heads"][i] for _ in range(len(layer) // len(s["plan"]["kv_heads"][i]))
        ]
    assert s["params"] == sum(p.numel() for p in model.parameters()) < s["params_source"]
    assert s["heldout"]["pruned"]["loss"] > 0 and len(s["heldout"]["pruned"]["delta_vs_source"]["ci"]) == 2
    assert "parameters" in capsys.readouterr().out
    if method == "gates":
        assert set(s["closed_by_mask"]) == {"heads", "channels", "layers"}


def test_recovery_by_distillation_lowers_the_pruned_models_held_out_loss(tiny_source):
    args = _args(tiny_source, "prune.mlp=0.75", "prune.heads=0.5", "recovery.method=distill", "recovery.steps=30",
                 "recovery.lr=0.01", "recovery.batch_size=8", "recovery.temperature=3", "dtype=float32")  # fmt: skip
    assert main(args) == 0
    out = tiny_source / "out"
    h = json.loads((out / "compress_summary.json").read_text())["heldout"]
    assert h["recovered"]["loss"] < h["pruned"]["loss"]
    assert h["recovered"]["delta_vs_source"]["delta"] < h["pruned"]["delta_vs_source"]["delta"]
    assert (out / "pruned" / "config.json").exists() and (out / "recovery" / "train_summary.json").exists()
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["intermediate_size"] == 32  # the merged, recovered model keeps the pruned shapes


def test_bad_compress_configs_fail_before_anything_is_written(tiny_source, capsys):
    for bad, says in (
        (["prune.method=magnitud"], "Did you mean: magnitude"),
        (["prune.mlp=1.0"], "prune.mlp"),
        (["calibration.domain=space"], "no example of that domain"),
        (["recovery.method=kd"], "none, sft, distill"),
        (["quantize=int3"], "Did you mean: int8, int4"),
    ):
        assert main(_args(tiny_source, *bad)) == 2
        assert says in capsys.readouterr().err, bad
        assert not (tiny_source / "out").exists()


def test_compress_compare_puts_size_speed_and_quality_with_paired_cis_in_one_table(tiny_source, capsys):
    assert main(_args(tiny_source, "prune.mlp=0.5", "prune.heads=0.5", "dtype=float32")) == 0
    data = tiny_source / "train.jsonl"
    args = ["compress", "compare", f"variants=[orig={tiny_source / 'model'},p50={tiny_source / 'out'}]",
            f"output_dir={tiny_source / 'cmp'}", f"data.test={data}", f"heldout={data}", "generation.max_new_tokens=4",
            "speed_prompts=2", "speed_tokens=4", "dtype=float32", "bootstrap=50"]  # fmt: skip
    assert main(args) == 0
    table = capsys.readouterr().out
    r = json.loads((tiny_source / "cmp" / "compression.json").read_text())
    orig, p50 = r["variants"]
    assert p50["params"] < orig["params"] and p50["weight_bytes"] < orig["weight_bytes"]
    from transformers import AutoModelForCausalLM

    assert orig["params"] == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_source / "model").parameters()
    )
    for v in (orig, p50):
        assert v["tokens_per_s"] > 0 and v["peak_rss_mb"] > 0 and "transformers" in v["engine"]
        assert v["c_inf_gflops"] == pytest.approx(2 * v["params"] * v["tokens_per_s"] / 1e9)
    assert "delta" not in orig["heldout_loss"] and len(p50["heldout_loss"]["delta"]["ci"]) == 2
    assert set(p50["paired"]) == {"bleu", "rouge_l"} and "paired" not in orig
    report = (tiny_source / "cmp" / "eval" / "report.html").read_text()
    assert "Compression: size, speed and quality" in report and "Size vs quality" in report  # in the eval report too
    cmp = tiny_source / "cmp" / "eval"
    assert main(["report", "compare", f"{cmp}:orig", f"{cmp}:p50", "--out", str(tiny_source / "page")]) == 0
    page = (tiny_source / "page" / "compare.html").read_text()
    assert "Size and speed" in page and "C_inf GFLOP/s" in page  # and on the compare page
    assert "| p50 |" in table and "C_inf" in table and (tiny_source / "cmp" / "size_vs_quality.png").stat().st_size > 0
