"""`tuneforge eval bench` through lm-evaluation-harness on the two shipped offline tasks: per-sample
records, every metric with a 95% interval made from lm-eval's stderr, and the run report's table."""

import importlib.util
import json

import pytest

from tuneforge.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("lm_eval") is None, reason="lm-eval not installed (pip install .[dev])"
    ),
]


def test_bench_on_a_model_writes_samples_and_intervals(tmp_path, tiny_lm, tiny_tok, capsys):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    out = tmp_path / "bench"
    args = ["eval", "bench", str(tmp_path / "model"), "--out", str(out), "--limit", "6", "--bootstrap", "50",
            "--dtype", "float32", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    tasks = json.loads((out / "metrics.json").read_text())["bench"][str(tmp_path / "model")]["tasks"]
    assert set(tasks) == {"tuneforge_domains_gen", "tuneforge_domains_mc"}
    assert set(tasks["tuneforge_domains_gen"]) == {"bleu", "chrf"} and set(tasks["tuneforge_domains_mc"]) == {
        "acc",
        "acc_norm",
    }
    for metrics in tasks.values():
        for r in metrics.values():
            assert r["n"] == 6 and r["stderr"] is not None and r["ci"][0] <= r["score"] <= r["ci"][1]
            half = 1.959964 * r["stderr"]
            assert r["ci"] == pytest.approx([max(0.0, r["score"] - half), r["score"] + half]) or r["ci"][1] == 1.0
    assert tasks["tuneforge_domains_mc"]["acc"]["stderr"] > 0  # six questions: not all right or all wrong
    samples = [json.loads(x) for x in (out / "bench" / "tuneforge_domains_mc.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and {"doc", "target", "acc"} <= set(samples[0])
    gen = [json.loads(x) for x in (out / "bench" / "tuneforge_domains_gen.jsonl").read_text().splitlines()]
    assert len(gen) == 6 and all(isinstance(s["resps"][0][0], str) for s in gen)
    assert "tuneforge_domains_mc  acc:" in capsys.readouterr().out


def test_bench_into_a_run_puts_a_table_in_its_report(tiny_demo):
    run = tiny_demo()
    args = ["eval", "bench", str(run), "--tasks", "tuneforge_domains_mc", "--limit", "5", "--device", "cpu"]
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned"}  # the run's own results stay
    assert metrics["bench"]["tuned"]["tasks"]["tuneforge_domains_mc"]["acc"]["n"] == 5
    report = (run / "report.md").read_text()
    assert "Standard benchmarks (lm-evaluation-harness" in report and "| tuned | tuneforge_domains_mc | acc |" in report


def test_an_unknown_task_is_a_config_error_naming_the_shipped_ones(tmp_path, tiny_lm, tiny_tok, capsys):
    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    out = tmp_path / "bench"
    assert main(["eval", "bench", str(tmp_path / "model"), "--tasks", "no_such_task", "--out", str(out)]) == 2
    assert "tuneforge_domains_gen" in capsys.readouterr().err
    assert not out.exists()  # the task is checked before anything is written
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "metrics.json").write_text('{"mine": 1}')
    args = [
        "eval",
        "bench",
        str(tmp_path / "model"),
        "--tasks",
        "tuneforge_domains_mc",
        "--out",
        str(tmp_path / "mine"),
    ]
    assert main(args) == 2 and "did not write" in capsys.readouterr().err
    assert (tmp_path / "mine" / "metrics.json").read_text() == '{"mine": 1}'  # a folder of the user's is untouched
