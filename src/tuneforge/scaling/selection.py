"""Which model to fine-tune at a budget of D tokens (Lin et al. 2024): fit each model's rectified law
L(D) = B/(D_l + D^β) + E on its own points (its base loss at D = 0 included: the pre-power phase),
extrapolate to the budget, pick the lowest predicted loss. The confidence is the share of bootstrap
draws (held-out examples and seeds resampled, every model on the same draw) in which the pick is
still the lowest — a pick at 55% is a coin toss; say so rather than recommend."""

from __future__ import annotations

import numpy as np

from tuneforge.scaling.fit import Points, bootstrap_points, fit_law, predict


def select_model(points: Points, budget: float, names: list[str], n_boot: int = 200, seed: int = 0) -> dict:
    """{"budget", "predicted": {name: {"loss", "ci"}}, "choice", "confidence"} over the models in `points`
    (`names[i]`: the name of model index i)."""
    models = sorted(set(points.model.tolist()))
    point_pred = {}
    for m in models:
        own = points.model == m
        p = fit_law("rectified", points.n[own], points.d[own], points.loss[own])
        point_pred[m] = float(predict("rectified", p, 1.0, budget))
    draws: dict[int, list[float]] = {m: [] for m in models}
    for rows, y in bootstrap_points(points, n_boot, seed):
        model, n, d = points.model[rows], points.n[rows], points.d[rows]
        for m in models:
            own = model == m
            draws[m].append(float(predict("rectified", fit_law("rectified", n[own], d[own], y[own]), 1.0, budget)))
    choice = min(models, key=point_pred.__getitem__)
    table = np.array([draws[m] for m in models])  # (models, draws)
    wins = (table.argmin(0) == models.index(choice)).mean()
    return {
        "budget": float(budget),
        "predicted": {
            names[m]: {"loss": point_pred[m], "ci": np.percentile(draws[m], [2.5, 97.5]).tolist()} for m in models
        },
        "choice": names[choice],
        "confidence": float(wins),
    }
