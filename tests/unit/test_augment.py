import random

import pytest

from tuneforge.data.augment import (
    AugmentConfig,
    augment,
    compose,
    mosaic,
    paraphrase,
    paraphrase_problem,
    token_augment_text,
)
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message


def _ex(i, domain="finance"):
    return Example(
        messages=[Message("user", f"Question {i}?"), Message("assistant", f"Answer {i}.")], id=f"r{i}", domain=domain
    )


def test_concatenation_answers_in_listed_order():
    ins, resp = compose([_ex(1), _ex(2)], "concatenate")
    assert ins.endswith("1. Question 1?\n2. Question 2?")
    assert resp == "1. Answer 1.\n\n2. Answer 2."


def test_interleaving_states_the_order_and_the_response_follows_it():
    ins, resp = compose([_ex(1), _ex(2), _ex(3)], "interleave", order=[2, 0, 1])
    assert "in this order: 3, 1, 2." in ins
    assert resp == "3. Answer 3.\n\n1. Answer 1.\n\n2. Answer 2."


@pytest.mark.parametrize(
    "rule,first",
    [
        ("heading", "### Task 1\nAnswer 1."),
        ("tags", "<answer1>\nAnswer 1.\n</answer1>"),
        ("label", "Answer 1:\nAnswer 1."),
    ],
)
def test_format_rules_are_stated_and_followed(rule, first):
    ins, resp = compose([_ex(1), _ex(2)], "format", rule=rule)
    assert resp.startswith(first) and resp.count("1") >= 2 and "2" in resp
    assert {"heading": "### Task N", "tags": "<answerN>", "label": "Answer N:"}[rule] in ins


def test_mosaic_composes_within_a_domain_with_provenance_and_no_identity_order():
    rows = [_ex(i, "finance") for i in range(6)] + [_ex(i, "legal") for i in range(6, 12)]
    out, report = mosaic(rows, 30, AugmentConfig(mosaic_sizes=[2, 3], seed=1))
    assert len(out) == 30 and sum(report["by_strategy"].values()) == 30
    assert set(report["by_strategy"]) == {"concatenate", "interleave", "format"}
    by_id = {r.id: r for r in rows}
    for r in out:
        parents = [by_id[p] for p in r.meta["parents"]]
        assert 2 <= len(parents) <= 3 and len(set(r.meta["parents"])) == len(parents)
        assert r.domain == parents[0].domain and all(p.domain == r.domain for p in parents)
        assert all(p.response in r.response for p in parents) and r.source == "augment/mosaic"
        if r.meta["strategy"] == "interleave":
            assert r.meta["order"] != sorted(r.meta["order"])


def test_mosaic_with_too_few_records_is_a_clear_error():
    with pytest.raises(ConfigError, match="at least 2 single-turn records"):
        mosaic([_ex(1)], 3, AugmentConfig())


def test_token_augmentation_swaps_synonyms_and_masks_only_content_words():
    text = "Explain the main risks of a loan."
    assert token_augment_text(text, random.Random(0), 0.0, 0.0) == text
    syn = token_augment_text(text, random.Random(0), 0.0, 1.0)
    assert syn.split()[0] in ("Describe", "Clarify") and "the" in syn.split() and "loan" in syn
    assert ("primary" in syn or "chief" in syn) and ("dangers" in syn or "hazards" in syn)
    masked = token_augment_text(text, random.Random(0), 1.0, 0.0)
    assert masked == "[MASK] the [MASK] [MASK] of a [MASK]."


def test_paraphrase_keeps_good_rewrites_and_counts_each_rejection():
    class Rewriter:
        name = "fake"
        replies = {
            "Question 0?": "Instruction: Could you pose question zero?",
            "Question 1?": "question 1",
            "Question 2?": "",
            "Question 3?": " ".join(["word"] * 40),
        }

        def chat(self, conversations, sampling):
            return [[self.replies[c[-1]["content"].split("Instruction: ")[1]]] for c in conversations]

    kept, report = paraphrase(Rewriter(), [_ex(i) for i in range(4)], 4, AugmentConfig())
    assert [(r.instruction, r.response, r.meta["parents"]) for r in kept] == [
        ("Could you pose question zero?", "Answer 0.", ["r0"])
    ]
    assert report["rejected"] == {
        "identical to the original": 1,
        "empty": 1,
        "much longer than the original (answered instead of rewriting?)": 1,
    }
    assert paraphrase_problem("a b", "Here is the rewritten instruction: a c", 3) == "copies the request"


def test_augment_runs_every_enabled_kind_and_needs_an_llm_to_paraphrase():
    rows = [_ex(i) for i in range(5)]
    out, report = augment(rows, AugmentConfig(mosaic=3, token=5, synonym_prob=1.0, mask_prob=0.0))
    assert set(report) == {"pool", "mosaic", "token"} and report["mosaic"]["made"] == 3 and report["token"]["kept"] == 5
    assert report["pool"] == {"single_turn": 5, "left_as_they_are": 0}
    assert [r.instruction.split()[0] for r in out[3:]] == ["Inquiry", "Inquiry", "Inquiry", "Inquiry", "Query"]
    assert [r.response for r in out[3:]] == [r.response for r in rows]
    with pytest.raises(ConfigError, match="needs an LLM"):
        augment(rows, AugmentConfig(paraphrase=2))
    with pytest.raises(ConfigError, match="mosaic_strategies"):
        AugmentConfig(mosaic_strategies=["shuffle"])


def test_records_with_tool_calls_or_traces_are_left_as_they_are_and_counted():
    from tuneforge.records import Example

    call = Example.from_dict({"tools": [{"name": "f", "parameters": {"type": "object", "properties": {}}}],
                              "messages": [{"role": "user", "content": "Call f please"},
                                           {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]})  # fmt: skip
    rows = [_ex(i) for i in range(3)] + [call]
    out, report = augment(rows, AugmentConfig(token=4, synonym_prob=1.0, mask_prob=0.0))
    assert report["pool"] == {"single_turn": 3, "left_as_they_are": 1}
    assert all(not r.tools and not r.messages[-1].tool_calls for r in out)
