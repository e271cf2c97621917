"""Score stored generations: overall, per domain (`{metric}_for_{domain}`), micro and macro means,
each with a bootstrap 95% CI. Scores are computed from the generations on disk, never by
generating again.

Each metric runs once over all items; a domain's score is the same aggregate over that domain's
items — corpus BLEU from the summed n-gram statistics of those items (exactly sacreBLEU's corpus
BLEU of the subset), every other metric the mean of its per-item values (a metric's items it
could not score, e.g. TSAS with a degenerate denominator, are left out and counted). The macro
mean is the mean over domains — the generalisation score of seed 000 (eq. 13) — and its CI comes
from a bootstrap stratified by domain. Distribution-level metrics (MAUVE) are reported overall only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.errors import DataError
from tuneforge.evaluate.metrics import CORPUS_ONLY, NEEDS, NEEDS_ENCODER, Encoder, bleu_from_stats, run_metric
from tuneforge.files import write_text_atomic
from tuneforge.intervals import interval, resample_indices, stratified_macro_ci
from tuneforge.models import EMBEDDED_ENCODER, load_encoder
from tuneforge.records import Generation
from tuneforge.tool_text import reasoning_of, strip_reasoning


def make_encoder(name: str = EMBEDDED_ENCODER) -> Encoder:
    return Encoder(load_encoder(name), name)


def _aggregator(result: dict):
    """f(indices) -> the metric's aggregate over those items."""
    if "_stats" in result:
        stats = result["_stats"]
        return lambda idx: bleu_from_stats(stats[idx].sum(0))
    values = np.array([np.nan if v is None else v for v in result["per_item"]], dtype=float)

    def mean(idx):
        sub = values[idx]
        return float(np.nanmean(sub)) if (~np.isnan(sub)).any() else float("nan")

    return mean


def _ci(agg, idx: np.ndarray, n_boot: int, seed: int) -> list[float]:
    if len(idx) < 2 or n_boot <= 0:
        return [float("nan"), float("nan")]
    draws = resample_indices(len(idx), n_boot, seed)
    return interval(np.array([agg(idx[d]) for d in draws]), 0.95)


def score_generations(
    gens: list[Generation],
    metrics: Sequence[str] = ("bleu", "rouge_l", "tsas"),
    encoder: Encoder | None = None,
    options: dict | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Score generations overall and per domain.

    Returns:
        {"model", "n", "overall": {metric: result + ci, macro, macro_ci}, "per_domain": {domain:
         {metric: {score, ci, n}}}, "flat": {"bleu": .., "bleu_for_finance": .., "bleu_macro": ..},
         "per_item": [...]}
    """
    if not gens:
        raise DataError("there are no generations to score")
    missing = [g.id for g in gens if not g.references]
    if missing:
        raise DataError(
            f"{len(missing)} generations have no reference (first: '{missing[0]}'); reference-based metrics need one"
        )
    if encoder is None and NEEDS_ENCODER & set(metrics):
        encoder = make_encoder()
    strip = (options or {}).get("strip_reasoning", True)
    # text metrics read the answer without its <think> trace (tool metrics parse the whole text)
    preds = [strip_reasoning(g.generation).strip() if strip else g.generation for g in gens]
    refs, instr = [g.references for g in gens], [g.instruction for g in gens]
    tool_use = [(g.tools, g.reference_tool_calls) for g in gens]
    by_domain: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(gens):
        by_domain[g.domain or "all"].append(i)
    domains = sorted(by_domain)
    groups = [np.array(by_domain[d]) for d in domains]
    everything = np.arange(len(gens))
    overall: dict[str, dict] = {}
    per_domain: dict[str, dict] = {d: {} for d in domains}
    flat: dict = {}
    for name in metrics:
        inputs = dict(predictions=preds, references=refs, instructions=instr, encoder=encoder)
        if "tool_use" in NEEDS.get(name, ()):
            inputs = dict(predictions=[g.generation for g in gens], tool_use=tool_use)
        res = run_metric(name, options, **inputs)
        flat[name] = res["score"]
        if name in CORPUS_ONLY or res.get("per_item") is None:
            overall[name] = {k: v for k, v in res.items() if not k.startswith("_")}
            continue
        agg = _aggregator(res)
        scored = sum(v is not None and v == v for v in res["per_item"])
        overall[name] = {k: v for k, v in res.items() if not k.startswith("_")} | {
            "ci": _ci(agg, everything, n_boot, seed),
            "n": scored,
        }
        for d, idx in zip(domains, groups):
            n_d = sum(res["per_item"][i] is not None and res["per_item"][i] == res["per_item"][i] for i in idx)
            per_domain[d][name] = {"score": agg(idx), "ci": _ci(agg, idx, n_boot, seed), "n": n_d}
            flat[f"{name}_for_{d}"] = per_domain[d][name]["score"]
        macro = float(np.mean([per_domain[d][name]["score"] for d in domains]))
        overall[name]["macro"] = flat[f"{name}_macro"] = macro
        overall[name]["macro_ci"] = stratified_macro_ci(agg, groups, n_boot, seed)
    item_metrics = [m for m in metrics if overall[m].get("per_item") is not None]
    per_item = [
        {"id": g.id, "domain": g.domain, **{m: overall[m]["per_item"][i] for m in item_metrics}}
        for i, g in enumerate(gens)
    ]
    for m in item_metrics:
        del overall[m]["per_item"]
    traces = [len(reasoning_of(g.generation).split()) for g in gens if reasoning_of(g.generation)]
    return {
        "model": gens[0].model,
        "n": len(gens),
        "overall": overall,
        "per_domain": per_domain,
        "flat": flat,
        "per_item": per_item,
        # answers that think aloud first: how many, and their trace length (stripped from text metrics)
        **(
            {"reasoning": {"answers_with_trace": len(traces), "mean_trace_words": float(np.mean(traces))}}
            if traces
            else {}
        ),
    }


def score_models(
    gens: dict[str, list[Generation]],
    metrics: list[str],
    out_dir: Path | str,
    encoder: str = EMBEDDED_ENCODER,
    options: dict | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """The one scoring path of every verb that compares models on stored answers (eval score, the
    demo): each label's answers scored (`score_generations`; the encoder is loaded once, only when a
    metric needs it), its per-item scores written to OUT/scores/<label>.jsonl, and for two or more
    labels the flat comparison of the first two (`base`, `tuned`, `delta` per number).
    Returns {"models": {label: result}, "comparison": {...}, "comparison_models": [a, b]}."""
    enc = make_encoder(encoder) if NEEDS_ENCODER & set(metrics) else None
    models = {label: score_generations(g, metrics, enc, options, n_boot, seed) for label, g in gens.items()}
    for label, res in models.items():
        write_text_atomic(
            Path(out_dir) / "scores" / f"{label}.jsonl", "".join(json.dumps(r) + "\n" for r in res.pop("per_item"))
        )
    out: dict[str, Any] = {"models": models}
    labels = list(models)
    if len(labels) >= 2:
        a, b = labels[0], labels[1]
        out["comparison"] = {
            k: {"base": v, "tuned": models[b]["flat"][k], "delta": models[b]["flat"][k] - v}
            for k, v in models[a]["flat"].items()
            if k in models[b]["flat"]
        }
        out["comparison_models"] = [a, b]
    return out
