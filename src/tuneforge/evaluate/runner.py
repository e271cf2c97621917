"""Score stored generations: overall, per domain (`{metric}_for_{domain}`), and the macro mean
over domains. Scores are computed from the generations on disk, never by generating again."""

from __future__ import annotations

from collections import defaultdict

from tuneforge.errors import DataError, lookup
from tuneforge.evaluate.metrics import METRICS, NEEDS_ENCODER, Encoder
from tuneforge.models import EMBEDDED_ENCODER, load_encoder
from tuneforge.records import Generation


def make_encoder(name: str = EMBEDDED_ENCODER) -> Encoder:
    return Encoder(load_encoder(name), name)


def _score_subset(gens: list[Generation], metrics: list[str], encoder: Encoder | None) -> dict:
    preds = [g.generation for g in gens]
    refs = [g.references for g in gens]
    instr = [g.instruction for g in gens]
    out = {}
    for name in metrics:
        fn = lookup(METRICS, name, "metric")
        out[name] = fn(predictions=preds, references=refs, instructions=instr, encoder=encoder)
    return out


def score_generations(gens: list[Generation], metrics: list[str] = ("bleu", "rouge_l", "tsas"),
                      encoder: Encoder | None = None) -> dict:
    """Score generations overall and per domain.

    Returns:
        {"model", "n", "overall": {metric: result}, "per_domain": {domain: {metric: result}},
         "flat": {"bleu": .., "bleu_for_finance": .., "bleu_macro": ..}, "per_item": [...]}
    """
    if not gens:
        raise DataError("there are no generations to score")
    missing = [g.id for g in gens if not g.references]
    if missing:
        raise DataError(f"{len(missing)} generations have no reference (first: '{missing[0]}'); "
                        "reference-based metrics need one")
    if encoder is None and NEEDS_ENCODER & set(metrics):
        encoder = make_encoder()
    overall = _score_subset(gens, list(metrics), encoder)
    by_domain = defaultdict(list)
    for g in gens:
        by_domain[g.domain or "all"].append(g)
    per_domain = {d: _score_subset(gs, list(metrics), encoder) for d, gs in sorted(by_domain.items())}
    flat = {}
    for m in metrics:
        flat[m] = overall[m]["score"]
        for d, res in per_domain.items():
            flat[f"{m}_for_{d}"] = res[m]["score"]
        flat[f"{m}_macro"] = sum(per_domain[d][m]["score"] for d in per_domain) / len(per_domain)
    per_item = [{"id": g.id, "domain": g.domain, **{m: overall[m]["per_item"][i] for m in metrics}}
                for i, g in enumerate(gens)]
    strip = lambda r: {k: v for k, v in r.items() if k != "per_item"}  # noqa: E731
    return {"model": gens[0].model, "n": len(gens),
            "overall": {m: strip(r) for m, r in overall.items()},
            "per_domain": {d: {m: {**strip(r), "n": len(by_domain[d])} for m, r in res.items()}
                           for d, res in per_domain.items()},
            "flat": flat, "per_item": per_item}
