"""Does the fitted law predict what it did not see? Fit on every data size but the largest, predict
the largest, and compare with what was measured there — both sides under the same bootstrap draws,
so the error's interval carries the fit's uncertainty and the measurement's. A 95% interval of the
error that excludes 0 flags the curve as bending away from the law (a plateau, overfitting, a
change of regime): then the fit should not be trusted to extrapolate further."""

from __future__ import annotations

import numpy as np

from tuneforge.scaling.fit import Points, bootstrap_points, fit_law, predict


def extrapolation_check(points: Points, law: str = "data", n_boot: int = 200, seed: int = 0) -> dict:
    """{"d_max", "predicted", "observed", "error", "ci", "bends"} for one model's points."""
    if len(set(points.model.tolist())) != 1:
        raise ValueError("extrapolation_check takes one model's points")
    largest = points.fraction.max()
    seen = points.fraction < largest
    if len(set(points.fraction[seen].tolist())) < 3:
        raise ValueError("the extrapolation check needs at least 3 smaller data sizes to fit on")
    d_max = float(points.d[~seen].mean())  # seeds draw other subsets: their token counts differ a little
    fit = fit_law(law, points.n[seen], points.d[seen], points.loss[seen])
    observed = float(points.loss[~seen].mean())
    predicted = float(predict(law, fit, points.n[0], d_max))
    errors = []
    for rows, y in bootstrap_points(points, n_boot, seed):
        small, d = points.fraction[rows] < largest, points.d[rows]
        p = fit_law(law, points.n[rows][small], d[small], y[small])
        errors.append(float(predict(law, p, points.n[0], d[~small].mean())) - float(y[~small].mean()))
    lo, hi = np.percentile(errors, [2.5, 97.5]).tolist()
    return {
        "law": law,
        "fit_on": sorted(set(points.d[seen].tolist())),
        "d_max": d_max,
        "predicted": predicted,
        "observed": observed,
        "error": predicted - observed,
        "ci": [lo, hi],
        "relative_error": (predicted - observed) / observed,
        "bends": not lo <= 0 <= hi,
    }
