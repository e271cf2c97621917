"""ROUGE-L F1 through rouge-score, Porter-stemmed, max over references, scaled ×100 (SuperNI)."""

from __future__ import annotations

from importlib.metadata import version

from rouge_score import rouge_scorer


def rouge_l(predictions: list[str], references: list[list[str]], **_) -> dict:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    per_item = [100 * max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs)
                for pred, refs in zip(predictions, references)]
    return {"score": sum(per_item) / len(per_item), "per_item": per_item,
            "signature": f"rougeL|f1|stem:porter|tok:rouge-score-default|refs:max|x100|"
                         f"rouge-score:{version('rouge-score')}"}
