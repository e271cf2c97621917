import numpy as np
import pytest

from tuneforge.evaluate.metrics import Encoder, bleu, rouge_l, tsas
from tuneforge.evaluate.scoring import score_generations
from tuneforge.records import Generation, Message


class FakeModel:
    """Deterministic 'encoder': each known text maps to a fixed unit vector."""

    def __init__(self, table):
        self.table = {k: np.asarray(v, dtype=float) / np.linalg.norm(v) for k, v in table.items()}
        self.calls = 0

    def encode(self, texts, **_):
        self.calls += 1
        return np.stack([self.table[t] for t in texts])


def test_bleu_is_corpus_level_with_signature():
    preds = ["the cat sat on the mat", "a completely different sentence here"]
    refs = [["the cat sat on the mat"], ["nothing in common at all"]]
    res = bleu(preds, refs)
    assert 0 < res["score"] < 100
    assert res["per_item"][0] == pytest.approx(100.0)
    assert res["signature"].startswith("nrefs:1|case:mixed")
    assert bleu(["the cat sat on the mat"], [["the cat sat on the mat"]])["score"] == pytest.approx(100.0)


def test_bleu_uneven_reference_counts_equal_duplicated_references():
    preds = ["the cat sat on the mat today", "dogs bark loudly at night"]
    uneven = bleu(preds, [["the cat sat on a mat today", "a cat is on the mat"], ["dogs bark at night"]])
    padded = bleu(
        preds, [["the cat sat on a mat today", "a cat is on the mat"], ["dogs bark at night", "dogs bark at night"]]
    )
    assert uneven["score"] == pytest.approx(padded["score"])


def test_rouge_l_stemmed_max_over_references():
    res = rouge_l(["the runners were running"], [["completely unrelated", "the runner was running"]])
    assert res["per_item"][0] > 60  # stemming matches runner(s)/running
    assert rouge_l(["same words"], [["same words"]])["score"] == pytest.approx(100.0)
    assert "stem:porter" in res["signature"]


def test_tsas_formula_degenerate_items_and_parrot_control():
    model = FakeModel(
        {"I1": [1, 0], "R1": [1, 1], "REF1": [1, 0.5], "I2": [0, 1], "R2": [0, 1], "REF2": [1, 0]}
    )  # REF2 ⟂ I2: denominator 0
    enc = Encoder(model, "fake")
    res = tsas(["R1", "R2"], [["REF1"], ["REF2"]], ["I1", "I2"], encoder=enc)
    cos_ir, cos_iref = 1 / np.sqrt(2), 1 / np.sqrt(1.25)
    assert res["per_item"][0] == pytest.approx(cos_ir / (cos_iref + 1e-6))
    assert res["per_item"][1] is None and res["n_below_floor"] == 1
    assert res["score"] == pytest.approx(res["per_item"][0])
    assert res["parrot_control"] == pytest.approx(1 / (cos_iref + 1e-6))
    assert res["numerator"] == pytest.approx((cos_ir + 1.0) / 2)


def test_tsas_leaves_out_items_whose_reference_barely_matches_the_instruction():
    # cos(I2, REF2) = 0.01: without a floor this ordinary answer would score ~100 and swamp the mean
    model = FakeModel({"I1": [1, 0], "R1": [1, 1], "REF1": [1, 0.5], "I2": [0.01, 1], "R2": [0.7, 0.7], "REF2": [1, 0]})
    enc = Encoder(model, "fake")
    res = tsas(["R1", "R2"], [["REF1"], ["REF2"]], ["I1", "I2"], encoder=enc)
    assert res["per_item"][1] is None and res["n_below_floor"] == 1
    assert res["score"] == pytest.approx(res["per_item"][0]) and res["score"] < 2
    assert "floor:0.1" in res["signature"]
    loose = tsas(["R1", "R2"], [["REF1"], ["REF2"]], ["I1", "I2"], encoder=enc, tsas_floor=0.0)
    assert loose["per_item"][1] > 50  # the explosion the floor guards against


def test_encoder_encodes_each_text_once():
    model = FakeModel({"a": [1, 0], "b": [0, 1]})
    enc = Encoder(model, "fake")
    enc(["a", "b", "a"])
    enc(["a", "b"])
    assert model.calls == 1


def test_score_generations_per_domain_keys_and_macro_mean():
    gens = [
        Generation(id=str(i), prompt=[Message("user", "q")], generation=g, references=[r], model="m", domain=d)
        for i, (g, r, d) in enumerate(
            [("a b c", "a b c", "finance"), ("x y", "a b", "finance"), ("same text", "same text", "legal")]
        )
    ]
    res = score_generations(gens, ["rouge_l"])
    flat = res["flat"]
    assert flat["rouge_l_for_legal"] == pytest.approx(100.0)
    assert flat["rouge_l_for_finance"] == pytest.approx(50.0)
    assert flat["rouge_l"] == pytest.approx(200 / 3)
    assert flat["rouge_l_macro"] == pytest.approx(75.0)
    assert res["per_domain"]["finance"]["rouge_l"]["n"] == 2
    assert [row["id"] for row in res["per_item"]] == ["0", "1", "2"]


def test_unknown_metric_suggests():
    from tuneforge.errors import UnknownNameError

    gens = [Generation(id="0", prompt=[Message("user", "q")], generation="a", references=["a"], model="m")]
    with pytest.raises(UnknownNameError, match="Did you mean: rouge_l"):
        score_generations(gens, ["rouge"])


def test_every_metric_says_what_it_needs_in_the_one_table():
    from tuneforge.evaluate.metrics import CORPUS_ONLY, METRICS, NEEDS, NEEDS_ENCODER

    assert set(NEEDS) == set(METRICS)
    assert NEEDS_ENCODER == {"tsas", "if_score", "mauve"} and CORPUS_ONLY == {"mauve"}
    assert all(needs <= {"references", "instructions", "encoder", "corpus", "tool_use"} for needs in NEEDS.values())
