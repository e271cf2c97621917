"""Metrics: each is a function (predictions, references, instructions, encoder) -> dict with
`score`, `per_item` and `signature`. Extend with a dotted path: `metrics: [mypkg.mod:my_metric]`."""

from tuneforge.evaluate.metrics.bleu import bleu
from tuneforge.evaluate.metrics.rouge import rouge_l
from tuneforge.evaluate.metrics.tsas import Encoder, tsas

METRICS = {"bleu": bleu, "rouge_l": rouge_l, "tsas": tsas}
NEEDS_ENCODER = {"tsas"}

__all__ = ["METRICS", "NEEDS_ENCODER", "Encoder", "bleu", "rouge_l", "tsas"]
