"""Metrics: each is a function (predictions, references, instructions, encoder, **options) -> dict
with `score`, `per_item` (None for distribution-level metrics) and `signature`. Extend with a dotted
path: `metrics: [mypkg.mod:my_metric]`."""

from tuneforge.evaluate.metrics.bertscore import bertscore
from tuneforge.evaluate.metrics.bleu import bleu, bleu_from_stats
from tuneforge.evaluate.metrics.exact_match import exact_match
from tuneforge.evaluate.metrics.if_score import if_score
from tuneforge.evaluate.metrics.mauve import mauve_score
from tuneforge.evaluate.metrics.rouge import rouge_l
from tuneforge.evaluate.metrics.tsas import Encoder, tsas

METRICS = {
    "bleu": bleu,
    "rouge_l": rouge_l,
    "bertscore": bertscore,
    "tsas": tsas,
    "exact_match": exact_match,
    "if_score": if_score,
    "mauve": mauve_score,
}
# What each metric needs besides the answers: one table, read by the scorer (the encoder is loaded
# once, only when a metric asks for it), the CLI's checks and the docs. "corpus": distribution-level,
# so overall only, no per-domain split or per-item values.
NEEDS = {
    "bleu": {"references"},
    "rouge_l": {"references"},
    "bertscore": {"references"},
    "tsas": {"references", "instructions", "encoder"},
    "exact_match": {"references"},
    "if_score": {"instructions", "encoder"},
    "mauve": {"references", "encoder", "corpus"},
}
NEEDS_ENCODER = {m for m, needs in NEEDS.items() if "encoder" in needs}
CORPUS_ONLY = {m for m, needs in NEEDS.items() if "corpus" in needs}

__all__ = [
    "CORPUS_ONLY",
    "METRICS",
    "NEEDS",
    "NEEDS_ENCODER",
    "Encoder",
    "bertscore",
    "bleu",
    "bleu_from_stats",
    "exact_match",
    "if_score",
    "mauve_score",
    "rouge_l",
    "tsas",
]
