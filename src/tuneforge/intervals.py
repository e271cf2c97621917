"""Bootstrap confidence intervals and paired tests over per-item scores.

Every aggregate tuneforge prints comes with a percentile bootstrap 95% CI: items are resampled
with replacement `n` times (seeded) and the aggregate recomputed. Corpus-level metrics (BLEU)
resample their per-item sufficient statistics, so the CI is of corpus BLEU, not of a mean of
sentence scores. Paired comparisons resample the same items for both systems and report a
two-sided p-value from a sign-flip permutation test on the per-item differences.
Hand-written: scipy.stats.bootstrap does not take a corpus statistic over rows of counts, and these
few lines keep one seeded scheme for every number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def resample_indices(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_boot, n) indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def interval(samples: np.ndarray, level: float) -> list[float]:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def wilson_interval(k: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a proportion k/n (in [0, 1]). For a share of successes this beats
    the bootstrap at the edges: 20/20 gives [0.84, 1.0], where resampling can only give [1, 1]."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def mean_ci(values: Sequence[float | None], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    """CI of the mean of per-item values (None/NaN items are left out, as in the point estimate)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return [float("nan"), float("nan")]
    idx = resample_indices(x.size, n_boot, seed)
    return interval(x[idx].mean(1), level)


def stat_ci(
    rows: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float]:
    """CI of a corpus statistic computed from the column sums of resampled per-item rows."""
    if len(rows) < 2:
        return [float("nan"), float("nan")]
    idx = resample_indices(len(rows), n_boot, seed)
    return interval(np.array([stat(rows[i].sum(0)) for i in idx]), level)


def paired_test(
    a: list[float | None],
    b: list[float | None],
    n_boot: int = 1000,
    n_perm: int = 10000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Mean difference b − a over items scored in both, its bootstrap CI, and the two-sided
    p-value of a sign-flip permutation test (H0: no difference)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and x == x and y == y]
    if len(pairs) < 2:
        return {"n": len(pairs), "delta": float("nan"), "ci": [float("nan")] * 2, "p_value": float("nan")}
    d = np.array([y - x for x, y in pairs])
    idx = resample_indices(d.size, n_boot, seed)
    rng = np.random.default_rng(seed + 1)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    observed = abs(d.mean())
    p = (1 + int((np.abs((signs * d).mean(1)) >= observed - 1e-12).sum())) / (n_perm + 1)
    return {"n": int(d.size), "delta": float(d.mean()), "ci": interval(d[idx].mean(1), level), "p_value": p}


def ratio_ci(
    sums: list[float], units: list[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float]:
    """CI of Σ sums / Σ units (e.g. loss per target token) resampling items."""
    rows = np.column_stack([sums, units]).astype(float)
    return stat_ci(rows, lambda t: t[0] / t[1] if t[1] else float("nan"), n_boot, seed, level)


def paired_ratio_delta(
    a: list[float], b: list[float], units: list[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """(Σb − Σa) / Σunits for two systems scored on the same items (e.g. the held-out loss of a
    tuned model minus its base), with a bootstrap CI resampling the same items for both."""
    rows = np.column_stack([a, b, units]).astype(float)
    tot = rows.sum(0)
    delta = float((tot[1] - tot[0]) / tot[2]) if tot[2] else float("nan")
    return {
        "n": len(rows),
        "delta": delta,
        "ci": stat_ci(rows, lambda t: (t[1] - t[0]) / t[2] if t[2] else float("nan"), n_boot, seed, level),
    }


def stratified_macro_ci(
    agg: Callable[[np.ndarray], float], groups: list[np.ndarray], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float]:
    """CI of the mean over groups (domains) of `agg(indices)`, resampling items within each group,
    so every group keeps its size as in the estimate (the macro score's, and the safety macro rate's)."""
    if n_boot <= 0 or not groups or any(len(g) < 2 for g in groups):
        return [float("nan"), float("nan")]
    draws = [g[resample_indices(len(g), n_boot, seed + i)] for i, g in enumerate(groups)]
    return interval(np.array([np.mean([agg(d[b]) for d in draws]) for b in range(n_boot)]), level)
