"""BLEU through sacreBLEU: corpus BLEU (not a mean of sentence scores) with sacreBLEU's signature."""

from __future__ import annotations

import sacrebleu


def _ref_streams(references: list[list[str]]) -> list[list[str]]:
    # sacreBLEU wants k parallel reference streams. Items with fewer references repeat their
    # first one: a duplicated reference changes neither clipped n-gram counts nor closest length.
    k = max(len(r) for r in references)
    return [[refs[j] if j < len(refs) else refs[0] for refs in references] for j in range(k)]


def bleu(predictions: list[str], references: list[list[str]], **_) -> dict:
    """Corpus BLEU (0–100) and per-item sentence BLEU (labelled as such)."""
    metric = sacrebleu.BLEU()
    corpus = metric.corpus_score(predictions, _ref_streams(references))
    sentence = sacrebleu.BLEU(effective_order=True)
    per_item = [sentence.sentence_score(p, r).score for p, r in zip(predictions, references)]
    return {"score": corpus.score, "per_item": per_item, "per_item_kind": "sentence BLEU",
            "signature": str(metric.get_signature())}
