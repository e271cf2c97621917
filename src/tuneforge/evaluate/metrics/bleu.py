"""BLEU through sacreBLEU: corpus BLEU (not a mean of sentence scores) with sacreBLEU's signature.

Per-item values are sentence BLEU (effective order), labelled as such; the bootstrap CI of the
corpus score resamples each item's n-gram match/total counts (`bleu_from_stats`), so it is a CI
of corpus BLEU.
"""

from __future__ import annotations

import numpy as np
import sacrebleu


def _ref_streams(references: list[list[str]]) -> list[list[str]]:
    # sacreBLEU wants k parallel reference streams. Items with fewer references repeat their
    # first one: a duplicated reference changes neither clipped n-gram counts nor closest length.
    k = max(len(r) for r in references)
    return [[refs[j] if j < len(refs) else refs[0] for refs in references] for j in range(k)]


def bleu(predictions: list[str], references: list[list[str]], **_) -> dict:
    """Corpus BLEU (0–100) and per-item sentence BLEU (labelled as such)."""
    metric = sacrebleu.BLEU()
    streams = _ref_streams(references)
    corpus = metric.corpus_score(predictions, streams)
    sentence = sacrebleu.BLEU(effective_order=True)
    per_item = [sentence.sentence_score(p, r).score for p, r in zip(predictions, references)]
    stats = np.array(metric._extract_corpus_statistics(predictions, streams), dtype=float)
    return {
        "score": corpus.score,
        "per_item": per_item,
        "per_item_kind": "sentence BLEU",
        "signature": str(metric.get_signature()),
        "_stats": stats,
    }


def bleu_from_stats(summed: np.ndarray) -> float:
    """Corpus BLEU from column sums of per-item statistics (sacreBLEU's own formula)."""
    return sacrebleu.BLEU()._compute_score_from_stats([int(x) for x in summed]).score
