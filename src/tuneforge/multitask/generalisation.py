"""Seen/unseen generalisation from stored generations of SuperNI items.

Per task: ROUGE-L (stemmed, max over references, ×100) and exact match (×100), as SuperNI reports
them. Seen and unseen averages are means over tasks (each task weighs the same), the
generalisation gap = seen − unseen; 95% CIs come from a bootstrap that resamples instances within
each task. Per category: the unseen tasks' mean (zero-shot transfer by category, seed 004 Fig. 3).
For phrasing robustness, `phrasing_summary` gives per-form means, each item's worst case over
the forms and the spread (max − min of the per-form means).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from tuneforge.evaluate.scoring import score_generations
from tuneforge.intervals import interval
from tuneforge.records import Generation

SUPERNI_METRICS = ("rouge_l", "exact_match")  # as SuperNI reports them (×100)


def per_item_scores(gens: list[Generation]) -> dict[str, list[float]]:
    """Per-item ROUGE-L and exact match through the one scoring path (evaluate.scoring)."""
    rows = score_generations(gens, SUPERNI_METRICS, n_boot=0)["per_item"]
    return {m: [r[m] for r in rows] for m in SUPERNI_METRICS}


def generalisation(gens: list[Generation], n_boot: int = 1000, seed: int = 0) -> dict:
    scores = per_item_scores(gens)
    tasks: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(gens):
        tasks[g.task].append(i)
    split = {g.task: g.meta.get("split", "seen") for g in gens}
    category = {g.task: g.domain for g in gens}
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"n_items": len(gens), "tasks": {}, "metrics": {}}
    for metric, vals in scores.items():
        v = np.array(vals, dtype=float)
        per_task = {t: float(v[idx].mean()) for t, idx in tasks.items()}
        for t in tasks:
            out["tasks"].setdefault(t, {"split": split[t], "category": category[t], "n": len(tasks[t])})[metric] = (
                per_task[t]
            )
        seen = [t for t in tasks if split[t] == "seen"]
        unseen = [t for t in tasks if split[t] == "unseen"]
        draws: dict[str, list[float]] = {"seen": [], "unseen": [], "gap": []}
        for _ in range(n_boot):
            resampled = {t: float(v[rng.choice(tasks[t], len(tasks[t]))].mean()) for t in tasks}
            s = float(np.mean([resampled[t] for t in seen])) if seen else float("nan")
            u = float(np.mean([resampled[t] for t in unseen])) if unseen else float("nan")
            draws["seen"].append(s)
            draws["unseen"].append(u)
            draws["gap"].append(s - u)
        s = float(np.mean([per_task[t] for t in seen])) if seen else float("nan")
        u = float(np.mean([per_task[t] for t in unseen])) if unseen else float("nan")
        by_cat: dict[str, list[float]] = defaultdict(list)
        for t in unseen:
            by_cat[category[t]].append(per_task[t])
        out["metrics"][metric] = {
            "seen": s,
            "seen_ci": interval(np.array(draws["seen"]), 0.95),
            "unseen": u,
            "unseen_ci": interval(np.array(draws["unseen"]), 0.95),
            "gap": s - u,
            "gap_ci": interval(np.array(draws["gap"]), 0.95),
            "unseen_by_category": {c: float(np.mean(x)) for c, x in sorted(by_cat.items())},
            "n_seen_tasks": len(seen),
            "n_unseen_tasks": len(unseen),
        }
    return out


def phrasing_summary(by_form: dict[str, list[Generation]], metric: str = "rouge_l") -> dict:
    """Per-form mean, per-item worst case over forms, and the spread of the form means."""
    per_form = {f: per_item_scores(g)[metric] for f, g in by_form.items()}
    ids = [g.id for g in next(iter(by_form.values()))]
    index = {f: {g.id: i for i, g in enumerate(gs)} for f, gs in by_form.items()}
    worst = [min(per_form[f][index[f][i]] for f in by_form) for i in ids]
    means = {f: float(np.mean(v)) for f, v in per_form.items()}
    return {
        "metric": metric,
        "per_form": means,
        "worst_case_mean": float(np.mean(worst)),
        "spread": max(means.values()) - min(means.values()),
        "n_items": len(ids),
    }
