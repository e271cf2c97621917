"""Tool-call metrics against values worked out by hand: a wrong argument value, a swapped key order
that must still match, an extra call, a missing call, an abstention, a malformed and a
schema-breaking call; and their place in scoring (CI, per domain, items they do not apply to)."""

from __future__ import annotations

import pytest

from tuneforge.evaluate.metrics.tool_calls import TOOL_METRICS, score_calls
from tuneforge.evaluate.scoring import score_generations
from tuneforge.records import Generation
from tuneforge.tool_text import render_turn
from tuneforge.tool_use import ToolCall, parse_tools

TOOLS = parse_tools([
    {"name": "get_rate", "parameters": {"type": "object", "properties": {"base": {"type": "string", "pattern": "^[A-Z]{3}$"}, "quote": {"type": "string"}}, "required": ["base", "quote"]}},
    {"name": "search_flights", "parameters": {"type": "object", "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}}}},
])  # fmt: skip
RATE = ToolCall("get_rate", {"base": "EUR", "quote": "USD"})
FLIGHTS = ToolCall("search_flights", {"origin": "LIS", "destination": "OPO"})


def said(*calls: ToolCall, words: str = "") -> str:
    return render_turn(words, "", list(calls))


@pytest.mark.parametrize(
    "answer,reference,expected",
    [
        # key order does not matter: arguments compare as parsed JSON
        ('<tool_call>\n{"name": "get_rate", "arguments": {"quote": "USD", "base": "EUR"}}\n</tool_call>', [RATE],
         dict(tool_valid=100, tool_name=100, tool_exact=100, tool_arg_f1=100, tool_abstain=None)),
        # a wrong value: 1 of 2 argument triples right → P = R = 1/2, F1 = 50
        (said(ToolCall("get_rate", {"base": "EUR", "quote": "GBP"})), [RATE],
         dict(tool_valid=100, tool_name=100, tool_exact=0, tool_arg_f1=50, tool_abstain=None)),
        # an extra call: P = 2/4, R = 2/2 → F1 = 2·(1/2)·1 / (3/2) = 66.67
        (said(RATE, FLIGHTS), [RATE],
         dict(tool_valid=100, tool_name=0, tool_exact=0, tool_arg_f1=200 / 3, tool_abstain=None)),
        # a missing call: P = 2/2, R = 2/4 → F1 = 66.67
        (said(RATE), [RATE, FLIGHTS],
         dict(tool_valid=100, tool_name=0, tool_exact=0, tool_arg_f1=200 / 3, tool_abstain=None)),
        # parallel calls in the other order still match
        (said(FLIGHTS, RATE), [RATE, FLIGHTS],
         dict(tool_valid=100, tool_name=100, tool_exact=100, tool_arg_f1=100, tool_abstain=None)),
        # abstaining where the reference answers in words
        ("No lookup is needed: 1 EUR is 100 cents.", [],
         dict(tool_valid=None, tool_name=None, tool_exact=None, tool_arg_f1=None, tool_abstain=100)),
        # calling where the reference answers in words
        (said(RATE), [], dict(tool_valid=100, tool_name=None, tool_exact=None, tool_arg_f1=None, tool_abstain=0)),
        # a malformed block is an invalid attempt (and an attempt: no abstention)
        ('<tool_call>\n{"name": "get_rate", "arguments": {"base": "EUR"\n</tool_call>', [],
         dict(tool_valid=0, tool_name=None, tool_exact=None, tool_arg_f1=None, tool_abstain=0)),
        # a call that breaks the schema (base must be 3 capitals) parses but is not valid
        (said(ToolCall("get_rate", {"base": "euro", "quote": "USD"})), [RATE],
         dict(tool_valid=0, tool_name=100, tool_exact=0, tool_arg_f1=50, tool_abstain=None)),
        # an undeclared tool
        (said(ToolCall("book_hotel", {})), [RATE],
         dict(tool_valid=0, tool_name=0, tool_exact=0, tool_arg_f1=0, tool_abstain=None)),
    ],
)  # fmt: skip
def test_each_tool_metric_matches_the_hand_computed_value(answer, reference, expected):
    got = score_calls(answer, TOOLS, reference)
    assert got == pytest.approx(expected)


def test_an_item_without_tools_is_left_out_of_every_tool_metric():
    assert score_calls(said(RATE), [], None) == dict.fromkeys(TOOL_METRICS)


def test_scoring_gives_tool_metrics_a_ci_per_domain_and_counts_only_the_items_they_apply_to():
    def gen(i, domain, answer, reference, text_reference="r"):
        return Generation(id=str(i), prompt=[{"role": "user", "content": "q"}], generation=answer, references=[text_reference],
                          model="m", domain=domain, tools=TOOLS, reference_tool_calls=reference)  # fmt: skip

    gens = [
        gen(0, "finance", said(RATE), [RATE]),
        gen(1, "finance", said(ToolCall("get_rate", {"base": "EUR", "quote": "GBP"})), [RATE]),
        gen(2, "travel", said(FLIGHTS), [FLIGHTS]),
        gen(3, "travel", "<think>\nNo tool needed.\n</think>\n\nHello!", [], "Hello!"),
        Generation(
            id="4",
            prompt=[{"role": "user", "content": "q"}],
            generation="plain",
            references=["plain"],
            model="m",
            domain="travel",
        ),  # fmt: skip
    ]
    res = score_generations(gens, ["tool_exact", "tool_abstain", "exact_match"], n_boot=200, seed=0)
    exact = res["overall"]["tool_exact"]
    assert exact["score"] == pytest.approx(200 / 3) and exact["n"] == 3 and len(exact["ci"]) == 2
    assert res["per_domain"]["finance"]["tool_exact"]["score"] == 50
    assert res["per_domain"]["travel"]["tool_exact"]["score"] == 100
    assert res["overall"]["tool_abstain"]["score"] == 100 and res["overall"]["tool_abstain"]["n"] == 1
    # text metrics read the answer without its trace, and the trace length is reported
    assert res["per_item"][3]["exact_match"] == 100 and res["per_item"][4]["exact_match"] == 100
    kept = score_generations(gens, ["exact_match"], n_boot=0, options={"strip_reasoning": False})
    assert kept["per_item"][3]["exact_match"] == 0
    assert res["reasoning"] == {"answers_with_trace": 1, "mean_trace_words": 3.0}


def test_eval_run_renders_tools_parses_answers_and_reports_the_tool_metrics(tmp_path, tiny_lm, tiny_tok):
    import json

    from tuneforge.cli import main

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")
    out = tmp_path / "eval"
    assert main(["eval", "run", f"output_dir={out}", f"models=[a={tmp_path / 'model'}]", "dtype=float32",
                 "device=cpu", "data.test=seed:tools:test", "data.test_per_domain=2", "generation.max_new_tokens=4",
                 "metrics=[tool_valid, tool_exact, tool_abstain, rouge_l]", "bootstrap=20"]) == 0  # fmt: skip
    gens = [json.loads(x) for x in (out / "generations" / "a.jsonl").read_text().splitlines()]
    assert len(gens) == 10 and all(g["tools"] and "reference_tool_calls" in g for g in gens)
    metrics = json.loads((out / "metrics.json").read_text())["models"]["a"]["overall"]
    calling = sum(bool(g["reference_tool_calls"]) for g in gens)
    assert 0 < calling < len(gens)  # both kinds of item are in the sample
    # the tiny model never writes a <tool_call> block: no call made, every abstention right
    assert metrics["tool_exact"]["score"] == 0 and metrics["tool_exact"]["n"] == calling
    assert metrics["tool_abstain"]["score"] == 100 and metrics["tool_abstain"]["n"] == len(gens) - calling
    assert "Exact call match" in (out / "report.md").read_text()
