"""Metrics: each is a function (predictions, references, instructions, encoder, **options) -> dict
with `score`, `per_item` (None for distribution-level metrics) and `signature`. Extend with a dotted
path: `metrics: [mypkg.mod:my_metric]`."""

import inspect
import numbers

from tuneforge.errors import ConfigError, TuneforgeError, lookup
from tuneforge.evaluate.metrics.bertscore import bertscore
from tuneforge.evaluate.metrics.bleu import bleu, bleu_from_stats
from tuneforge.evaluate.metrics.exact_match import exact_match
from tuneforge.evaluate.metrics.if_score import if_score
from tuneforge.evaluate.metrics.mauve import mauve_score
from tuneforge.evaluate.metrics.rouge import rouge_l
from tuneforge.evaluate.metrics.tool_calls import (
    TOOL_METRICS,
    tool_abstain,
    tool_arg_f1,
    tool_exact,
    tool_name,
    tool_valid,
)
from tuneforge.evaluate.metrics.tsas import Encoder, tsas

METRICS = {
    "bleu": bleu,
    "rouge_l": rouge_l,
    "bertscore": bertscore,
    "tsas": tsas,
    "exact_match": exact_match,
    "if_score": if_score,
    "mauve": mauve_score,
    "tool_valid": tool_valid,
    "tool_name": tool_name,
    "tool_exact": tool_exact,
    "tool_arg_f1": tool_arg_f1,
    "tool_abstain": tool_abstain,
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
    **{m: {"tool_use"} for m in TOOL_METRICS},  # the items' tools and reference calls
}
NEEDS_ENCODER = {m for m, needs in NEEDS.items() if "encoder" in needs}
CORPUS_ONLY = {m for m, needs in NEEDS.items() if "corpus" in needs}
_SHAPE = (
    "def my_metric(predictions, references, instructions, encoder, **options) -> {'score': float, 'per_item': [...]}"
)


def get_metric(name: str, options: dict | None = None):
    """The metric function `name` names: a METRICS key, or `package.module:function`, which must be a
    function taking the metric arguments (and the `options`) — checked here, before any scoring."""
    fn = lookup(METRICS, name, "metric")
    if name in METRICS:
        return fn
    if not callable(fn):
        raise ConfigError(f"metric '{name}' is a {type(fn).__name__}, not a function. Give a function: {_SHAPE}")
    try:
        inspect.signature(fn).bind(predictions=[], references=[], instructions=[], encoder=None, **(options or {}))
    except TypeError as exc:
        raise ConfigError(f"metric '{name}' cannot take the metric arguments ({exc}). Write it as {_SHAPE}") from None
    except ValueError:
        pass  # a builtin without a readable signature: what it does is checked when it runs
    return fn


def run_metric(name: str, options: dict | None = None, **inputs) -> dict:
    """`get_metric(name)` called on `inputs`; what a user's function raises or returns wrong (not a
    dict with a numeric `score` and a `per_item` list of one value per prediction) is a
    TuneforgeError naming it. The shipped metrics run unwrapped: their failures are tuneforge's bugs."""
    fn = get_metric(name, options)
    if name in METRICS:
        return fn(**inputs, **(options or {}))
    try:
        res = fn(**inputs, **(options or {}))
    except TuneforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 — a user's code: any failure is theirs to fix, named as such
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TuneforgeError(
            f"metric '{name}' failed: {type(exc).__name__}: {first}. Fix the function (--debug shows where)"
        ) from exc
    n = len(inputs.get("predictions", []))
    if not _valid_result(res, n):
        got = f"a dict with keys {list(res)[:6]}" if isinstance(res, dict) else f"a {type(res).__name__}"
        raise TuneforgeError(
            f"metric '{name}' returned {got}: it must return a dict with a numeric 'score' and 'per_item' (None, or a "
            f"list of {n} numbers or None, one per prediction). Write it as {_SHAPE}"
        )
    return res


def _valid_result(res, n: int) -> bool:
    def number(v) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    if not isinstance(res, dict) or not number(res.get("score")):
        return False
    per_item = res.get("per_item")
    return per_item is None or (
        isinstance(per_item, list) and len(per_item) == n and all(v is None or number(v) for v in per_item)
    )


__all__ = [
    "CORPUS_ONLY",
    "TOOL_METRICS",
    "METRICS",
    "NEEDS",
    "NEEDS_ENCODER",
    "Encoder",
    "bertscore",
    "bleu",
    "bleu_from_stats",
    "exact_match",
    "get_metric",
    "if_score",
    "mauve_score",
    "rouge_l",
    "run_metric",
    "tsas",
]
