"""Evaluation metrics against known values, bootstrap CIs, per-domain aggregation, correlation."""

import json

import numpy as np
import pytest
import sacrebleu
from test_metrics import FakeModel

from tuneforge.errors import DataError
from tuneforge.evaluate.correlation import correlate, load_ratings
from tuneforge.evaluate.metrics import (
    Encoder,
    bertscore,
    bleu,
    bleu_from_stats,
    exact_match,
    if_score,
    rouge_l,
)
from tuneforge.evaluate.metrics.mauve import mauve_score
from tuneforge.evaluate.scoring import score_generations
from tuneforge.intervals import mean_ci, paired_test
from tuneforge.records import Generation, Message

CORPUS = ["the cat sat on the mat", "dogs bark at the moon at night", "interest is paid monthly"]


def _gen(i, pred, ref, domain="finance", prompt="q"):
    return Generation(
        id=f"g{i}", prompt=[Message("user", prompt)], generation=pred, references=[ref], model="m", domain=domain
    )


def test_an_identical_corpus_scores_the_maximum_on_every_reference_metric():
    refs = [[t] for t in CORPUS]
    assert bleu(CORPUS, refs)["score"] == pytest.approx(100.0)
    assert rouge_l(CORPUS, refs)["score"] == pytest.approx(100.0)  # ROUGE-L F1 = 1, reported ×100
    assert exact_match(CORPUS, refs)["score"] == pytest.approx(100.0)
    bs = bertscore(CORPUS, refs)
    assert bs["score"] == pytest.approx(100.0, abs=1e-3) and "embedded MiniLM" in bs["signature"]


def test_a_hand_computed_sentence_pair():
    # hypothesis vs reference: n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (BP = 1)
    hyp, ref = ["the cat sat on the mat"], [["the cat sat on a mat"]]
    expected_bleu = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert bleu(hyp, ref)["score"] == pytest.approx(expected_bleu, abs=1e-6)
    assert rouge_l(hyp, ref)["score"] == pytest.approx(100 * 5 / 6)  # LCS 5 of 6 words both ways
    assert exact_match(["The cat, sat!"], [["cat sat"]])["score"] == 100.0  # case, punctuation, articles
    assert exact_match(["cats sat"], [["cat sat"]])["score"] == 0.0


def test_unicode_tokeniser_scores_text_the_default_rouge_tokeniser_drops():
    pred, ref = ["Привет мир, как дела"], [["Привет мир"]]
    assert rouge_l(pred, ref)["score"] == 0.0  # rouge-score keeps only [a-z0-9]: the known trap
    uni = rouge_l(pred, ref, rouge_tokenizer="unicode")
    assert uni["score"] == pytest.approx(100 * 2 * (2 / 4 * 1) / (2 / 4 + 1)) and "unicode" in uni["signature"]


def test_if_score_is_the_mean_cosine_to_the_best_reference():
    enc = Encoder(FakeModel({"r1": [1, 0], "ref1": [1, 1], "alt1": [1, 0.1], "r2": [0, 1], "ref2": [0, 1]}), "fake")
    res = if_score(["r1", "r2"], [["ref1", "alt1"], ["ref2"]], encoder=enc)
    assert res["per_item"][0] == pytest.approx(1 / np.sqrt(1.01))
    assert res["score"] == pytest.approx((1 / np.sqrt(1.01) + 1) / 2)


def test_mauve_is_one_for_identical_features_with_the_small_sample_warning():
    rng = np.random.default_rng(0)
    table = {f"t{i}": rng.normal(size=8) for i in range(60)}
    enc = Encoder(FakeModel(table), "fake")
    texts = list(table)
    same = mauve_score(texts, [[t] for t in texts], encoder=enc, mauve_seeds=3)
    assert same["score"] == pytest.approx(1.0) and len(same["per_seed"]) == 3 and same["per_item"] is None
    assert "fewer than 1000" in same["warning"] and "buckets:n/10=6" in same["signature"]
    assert "ci:t95-over-seeds" in same["signature"] and len(same["ci"]) == 2


def test_mauve_interval_is_a_t_interval_over_seeds():
    from tuneforge.evaluate.metrics.mauve import seed_interval

    lo, hi = seed_interval([0.5, 0.6, 0.7])  # mean 0.6, sd 0.1, t(0.975, 2) = 4.303
    assert lo == pytest.approx(0.6 - 4.303 * 0.1 / np.sqrt(3), abs=1e-3) and hi == pytest.approx(1.2 - lo)
    assert all(v != v for v in seed_interval([0.5]))  # one seed: no interval, not a zero-width one


def test_bleu_bootstrap_resamples_corpus_statistics():
    preds = ["the cat sat", "a dog ran far", "money grows slowly", "the bank pays interest"]
    refs = [["the cat sat down"], ["a dog ran"], ["money grows"], ["banks pay interest"]]
    res = bleu(preds, refs)
    idx = np.array([0, 0, 2, 3])
    direct = sacrebleu.BLEU().corpus_score([preds[i] for i in idx], [[refs[i][0] for i in idx]]).score
    assert bleu_from_stats(res["_stats"][idx].sum(0)) == pytest.approx(direct)


def test_score_generations_gives_cis_domain_corpus_bleu_and_the_macro_generalisation_score():
    gens = [
        _gen(0, "the cat sat on the mat", "the cat sat on a mat"),
        _gen(1, "dogs bark", "dogs bark loudly"),
        _gen(2, "interest is paid monthly", "interest is paid monthly", "legal"),
        _gen(3, "a will names heirs", "a will names your heirs", "legal"),
    ]
    res = score_generations(gens, ["bleu", "rouge_l"], n_boot=300)
    fin = sacrebleu.BLEU().corpus_score([g.generation for g in gens[:2]], [[g.references[0] for g in gens[:2]]]).score
    assert res["per_domain"]["finance"]["bleu"]["score"] == pytest.approx(fin)  # corpus BLEU of the subset
    for m in ("bleu", "rouge_l"):
        o = res["overall"][m]
        assert o["ci"][0] <= o["score"] <= o["ci"][1] and o["n"] == 4
        assert o["macro"] == pytest.approx(np.mean([res["per_domain"][d][m]["score"] for d in ("finance", "legal")]))
        assert o["macro_ci"][0] <= o["macro"] <= o["macro_ci"][1]
    again = score_generations(gens, ["bleu", "rouge_l"], n_boot=300)
    assert again["overall"]["bleu"]["ci"] == res["overall"]["bleu"]["ci"]  # seeded: reproducible


def test_mean_ci_and_paired_test():
    lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0, None], n_boot=2000)
    assert lo < 2.5 < hi and lo >= 1.0 and hi <= 4.0
    same = paired_test([1, 2, 3, 4], [1, 2, 3, 4])
    assert same["delta"] == 0 and same["p_value"] == 1.0
    better = paired_test(list(range(20)), [x + 1 + 0.1 * (x % 3) for x in range(20)])
    assert better["delta"] > 1 and better["p_value"] < 0.001 and better["ci"][0] > 0


def test_correlation_with_human_ratings(tmp_path):
    scores = {f"i{k}": float(k) for k in range(12)} | {"unscored": None}
    ratings = {f"i{k}": float(k**2) for k in range(12)} | {"unscored": 3.0}
    res = correlate(scores, ratings, n_boot=200)
    assert res["n"] == 12 and res["rated_not_scored"] == 1
    assert res["spearman"]["r"] == pytest.approx(1.0) and res["kendall"]["r"] == pytest.approx(1.0)
    x = np.arange(12.0)
    assert res["pearson"]["r"] == pytest.approx(np.corrcoef(x, x**2)[0, 1])
    assert res["pearson"]["ci"][0] <= res["pearson"]["r"] <= res["pearson"]["ci"][1]
    path = tmp_path / "ratings.jsonl"
    path.write_text(json.dumps({"id": "a", "rating": 4}) + "\n" + json.dumps({"id": "b", "score": 2}) + "\n")
    with pytest.raises(DataError, match=r"needs 'id' and 'rating'.*ratings.jsonl:2"):
        load_ratings(path)
    csv = tmp_path / "r.csv"
    csv.write_text("id,helpfulness\na,4\nb,2\n")
    assert load_ratings(csv, "helpfulness") == {"a": 4.0, "b": 2.0}
