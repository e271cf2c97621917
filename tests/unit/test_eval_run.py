"""`tuneforge eval run|score|generate|compare` end to end on the tiny in-process model."""

import json

import pytest

from tuneforge.cli import main
from tuneforge.data.io import read_records, write_records
from tuneforge.records import EvalItem, Generation, Message

ITEMS = [
    ("healthcare", "What is a fever?", "A body temperature above 38 °C."),
    ("healthcare", "What is a pulse?", "The rhythmic beat of the arteries."),
    ("healthcare", "What is a vaccine?", "A preparation that trains the immune system."),
    ("finance", "What is APR?", "The yearly cost of a loan, fees included."),
    ("finance", "What is a budget?", "A plan for income and spending."),
    ("finance", "What is inflation?", "A general rise in prices over time."),
]


@pytest.fixture
def setup(tmp_path, tiny_lm, tiny_tok):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    write_records(
        [
            EvalItem(messages=[Message("user", q)], references=[a], id=f"{d}-{i}", domain=d)
            for i, (d, q, a) in enumerate(ITEMS)
        ],
        tmp_path / "test.jsonl",
    )
    model = tmp_path / "model"
    return tmp_path, [
        f"output_dir={tmp_path / 'eval'}",
        f"models=[base={model}, again={model}]",
        f"data.test={tmp_path / 'test.jsonl'}",
        "metrics=[bleu, rouge_l, exact_match]",
        "bootstrap=200",
        "generation.max_new_tokens=4",
        "dtype=float32",
        "device=cpu",
    ]


def test_eval_run_scores_stored_generations_with_cis_judge_and_report(setup, capsys):
    tmp_path, args = setup
    assert (
        main(
            [
                "eval",
                "run",
                *args,
                "judge.single=true",
                "judge.pairwise=true",
                f"judge.llm.model={tmp_path / 'model'}",
                "judge.llm.max_new_tokens=8",
            ]
        )
        == 0
    )
    out = tmp_path / "eval"
    gens = read_records(out / "generations" / "base.jsonl")
    assert len(gens) == 6 and all(
        g.settings["max_new_tokens"] == 4 and len(g.meta["prompt_sha256"]) == 16 for g in gens
    )
    m = json.loads((out / "metrics.json").read_text())
    for label in ("base", "again"):
        res = m["models"][label]
        for metric in ("bleu", "rouge_l", "exact_match"):
            assert set(res["per_domain"]) == {"healthcare", "finance"}
            assert len(res["overall"][metric]["ci"]) == 2 and "macro_ci" in res["overall"][metric]
            assert f"{metric}_for_finance" in res["flat"]
    single = m["judge"]["single"]["base"]
    assert single["parsed"] + single["parse_failures"] == 6  # a random judge rarely parses: counted, not dropped
    assert m["judge"]["pairwise"]["n"] == 6 and (out / "judge" / "cache.sqlite").exists()
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Summary" in html and "<script" not in html
    # scoring again reads the stored generations (no model needed) and gives the same numbers
    (out / "generations" / "base.jsonl").touch()
    assert main(["eval", "score", *args]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["models"]["base"]["flat"] == m["models"]["base"]["flat"]


def test_generate_resumes_and_compare_reports_paired_deltas(setup, capsys):
    tmp_path, args = setup
    assert main(["eval", "generate", *args]) == 0
    path = tmp_path / "eval" / "generations" / "base.jsonl"
    before = path.read_text()
    assert main(["eval", "generate", *args]) == 0 and path.read_text() == before  # nothing regenerated
    assert main(["eval", "score", *args]) == 0
    capsys.readouterr()
    assert main(["eval", "compare", f"{tmp_path / 'eval'}:base", f"{tmp_path / 'eval'}:again", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert c["n_common"] == 6 and set(c["metrics"]) == {"bleu", "rouge_l", "exact_match"}
    assert all(r["delta"] == 0 and r["p_value"] == 1.0 for r in c["metrics"].values())  # same greedy model
    assert main(["eval", "compare", str(tmp_path / "eval") + ":nope", str(tmp_path / "eval")]) == 2
    assert "no model 'nope'" in capsys.readouterr().err


def test_compare_finds_a_real_difference(tmp_path, capsys):
    from tuneforge.config import load_config
    from tuneforge.evaluate.paired_deltas import compare_runs
    from tuneforge.evaluate.run import EvalRunConfig, eval_score

    out = tmp_path / "run"
    refs = [f"the answer number {i} is here" for i in range(30)]
    for label, good in (("a", False), ("b", True)):
        gens = [
            Generation(
                id=f"i{i}",
                prompt=[Message("user", f"q{i}")],
                generation=r if good else "nothing",
                references=[r],
                model=label,
                domain="d",
            )
            for i, r in enumerate(refs)
        ]
        write_records(gens, out / "generations" / f"{label}.jsonl")
    cfg = load_config(
        EvalRunConfig, None, [f"output_dir={out}", "models=[a=x, b=y]", "metrics=[bleu, rouge_l]", "bootstrap=200"]
    )
    eval_score(cfg)
    c = compare_runs(f"{out}:a", f"{out}:b", n_boot=200)
    assert c["metrics"]["bleu"]["delta"] > 90 and c["metrics"]["bleu"]["p_value"] < 0.01
    assert c["metrics"]["rouge_l"]["ci"][0] > 50 and c["metrics"]["rouge_l"]["p_value"] < 0.001


def test_a_failed_adapter_merge_is_an_error_not_a_silent_unmerged_model(tmp_path, tiny_lm, tiny_tok, monkeypatch):
    from peft import LoraConfig, PeftModel, get_peft_model

    from tuneforge.evaluate.model_spec import load_eval_model

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    peft = get_peft_model(tiny_lm, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft.peft_config["default"].base_model_name_or_path = str(tmp_path / "model")
    peft.save_pretrained(tmp_path / "adapter")
    model, _, desc = load_eval_model(str(tmp_path / "adapter"), "float32", "cpu")
    assert not isinstance(model, PeftModel) and "adapter" in desc  # merged

    def broken(self, *a, **k):
        raise RuntimeError("merge failed: incompatible shapes")

    from peft.tuners.tuners_utils import BaseTuner

    monkeypatch.setattr(BaseTuner, "merge_and_unload", broken)
    with pytest.raises(RuntimeError, match="merge failed"):
        load_eval_model(str(tmp_path / "adapter"), "float32", "cpu")


def test_compare_says_a_metric_scored_in_both_runs_on_under_two_items_has_no_delta():
    from tuneforge.evaluate.paired_deltas import format_comparison

    nan = float("nan")
    table = format_comparison({
        "a": "r:a", "b": "r:b", "n_common": 49, "only_a": 0, "only_b": 0,
        "metrics": {
            "tool_valid": {"a": 0.0, "b": 100.0, "n": 1, "delta": nan, "ci": [nan, nan], "p_value": nan},
            "tool_exact": {"a": 0.0, "b": 73.1, "n": 26, "delta": 73.1, "ci": [57.6, 88.5], "p_value": 0.0002},
        },
    })  # fmt: skip
    assert "| tool_valid | 1 | — | — | — | needs ≥ 2 items scored in both runs | — |" in table
    assert "| tool_exact | 26 | 0.000 | 73.100 | +73.100 | [+57.600, +88.500] | 0.0002 |" in table
    assert "nan" not in table
