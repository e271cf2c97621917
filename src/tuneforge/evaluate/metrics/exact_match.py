"""Exact match (×100, max over references) after SQuAD-style normalisation: lower case, no
punctuation, no articles (a, an, the), single spaces."""

from __future__ import annotations

from tuneforge.data.rules import normalise  # one normalisation for the metric and the RL reward


def exact_match(predictions: list[str], references: list[list[str]], **_) -> dict:
    per_item = [100.0 * any(normalise(p) == normalise(r) for r in refs) for p, refs in zip(predictions, references)]
    return {
        "score": sum(per_item) / len(per_item),
        "per_item": per_item,
        "signature": "exact_match|norm:lower+no-punct+no-articles|refs:any|x100",
    }
