"""Scaling-law fits for fine-tuning (seed 001 eq. 23), with bootstrap CIs on every constant.

    data law         L(D)    = B / D^β + E
    joint law        L(N, D) = A / N^α + B / D^β + E                  (eq. 23; Hoffmann et al. 2022)
    rectified law    L(D)    = B / (D_l + D^β) + E                    (Lin et al. 2024)

D is fine-tuning tokens, N parameters. The rectified law adds D_l, the "pre-learned data size": a
pre-trained model starts part-way along its curve, so small fine-tuning sets sit on a flat
pre-power phase (L(0) = B/D_l + E, the base model's loss) before the power law takes over; Lin et
al. select the model to fine-tune by extrapolating it. Every law is linear in its coefficients (B,
E, A) once its exponents (and D_l) are fixed, so the fit is *variable projection*: the exponents are
searched (a grid, then Nelder–Mead) and the coefficients solved by non-negative least squares at
each trial — no starting values to tune, no local minimum from a bad guess in the coefficients.
Hand-written: scipy's curve_fit needs starting values and diverges on these flat, few-point curves.

A `Points` holds every measured run (its N, D and the per-example loss sums and target counts on
one shared held-out set), so the bootstrap resamples what is uncertain: the held-out examples (the
same draw for every run — the points stay paired) and, where a (N, D) cell has several seeds, the
seeds within the cell. Each draw refits; the 2.5/97.5 percentiles are the CIs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, nnls

LAWS = ("data", "joint", "rectified")


@dataclass
class Points:
    """Measured runs: which model (an index), its size N, tokens D, seed, and the held-out
    per-example loss sums and target counts (`sums` (R, X), `units` (X,): R runs × X shared examples)."""

    model: np.ndarray  # (R,) int
    n: np.ndarray  # (R,)
    d: np.ndarray  # (R,)
    seed: np.ndarray  # (R,)
    sums: np.ndarray  # (R, X)
    units: np.ndarray  # (X,)
    labels: list[str] = field(default_factory=list)
    fraction: np.ndarray = field(default_factory=lambda: np.empty(0))  # (R,) share of the data (empty = D)

    def __post_init__(self):
        if self.fraction.size == 0:
            self.fraction = self.d

    @property
    def loss(self) -> np.ndarray:
        """(R,) loss per target token of each run."""
        return self.sums.sum(1) / self.units.sum()

    def subset(self, keep: np.ndarray) -> Points:
        labels = [lab for lab, k in zip(self.labels, keep) if k] if self.labels else []
        return Points(
            self.model[keep], self.n[keep], self.d[keep], self.seed[keep], self.sums[keep], self.units, labels,
            self.fraction[keep],
        )  # fmt: skip


def _design(law: str, n, d, exps) -> np.ndarray:
    """Columns whose non-negative combination is the law, for fixed exponents `exps`."""
    ones = np.ones_like(d, dtype=float)
    if law == "data":
        return np.stack([d ** -exps[0], ones], 1)
    if law == "joint":
        return np.stack([n ** -exps[0], d ** -exps[1], ones], 1)
    d_l = np.exp(exps[1])  # searched in log space: D_l spans orders of magnitude
    return np.stack([1.0 / (d_l + d ** exps[0]), ones], 1)


_STARTS: dict[
    str, list[tuple[float, ...]]
] = {  # exponent grids: β (and α) ∈ (0, 2]; the rectified law's log D_l over the data's range
    "data": [(b,) for b in np.linspace(0.02, 1.5, 30)],
    "joint": [(a, b) for a in np.linspace(0.02, 1.5, 12) for b in np.linspace(0.02, 1.5, 12)],
}


def _residual(law, n, d, y, exps) -> tuple[float, np.ndarray]:
    if law != "rectified" and not all(0 < e <= 3 for e in exps) or law == "rectified" and not 0 < exps[0] <= 3:
        return np.inf, np.zeros(2 if law != "joint" else 3)
    x = _design(law, n, d, exps)
    coef, rnorm = nnls(x, y)
    return rnorm**2, coef


def fit_law(law: str, n: np.ndarray, d: np.ndarray, y: np.ndarray) -> dict:
    """Least-squares fit of `law` to losses `y` at (n, d): {constant: value, "sse"}."""
    if law not in LAWS:
        raise ValueError(f"unknown law {law!r}; one of {LAWS}")
    n, d, y = (np.asarray(v, dtype=float) for v in (n, d, y))
    starts: list[tuple[float, ...]] = _STARTS.get(law) or [
        (float(b), float(ld))
        for b in np.linspace(0.05, 1.5, 12)
        for ld in np.linspace(-2, np.log(d.max() + 1) * 1.5, 12)
    ]
    best = min(starts, key=lambda e: _residual(law, n, d, y, e)[0])
    res = minimize(lambda e: _residual(law, n, d, y, e)[0], np.array(best, float), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 2000})  # fmt: skip
    exps = res.x if res.fun <= _residual(law, n, d, y, best)[0] else np.array(best, float)
    sse, coef = _residual(law, n, d, y, exps)
    if law == "data":
        return {"B": coef[0], "beta": exps[0], "E": coef[1], "sse": sse}
    if law == "joint":
        return {"A": coef[0], "alpha": exps[0], "B": coef[1], "beta": exps[1], "E": coef[2], "sse": sse}
    return {"B": coef[0], "beta": exps[0], "D_l": float(np.exp(exps[1])), "E": coef[1], "sse": sse}


def predict(law: str, params: dict, n, d) -> np.ndarray:
    """The fitted law's loss at (n, d)."""
    n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
    if law == "data":
        return params["B"] * d ** -params["beta"] + params["E"]
    if law == "joint":
        return params["A"] * n ** -params["alpha"] + params["B"] * d ** -params["beta"] + params["E"]
    return params["B"] / (params["D_l"] + d ** params["beta"]) + params["E"]


def bootstrap_points(points: Points, n_boot: int, seed: int = 0):
    """`n_boot` draws of (rows, loss): indices into `points` and their resampled losses — the held-out
    examples resampled once per draw for every run (paired), and the seeds resampled within each
    (model, fraction) cell that has several."""
    rng = np.random.default_rng(seed)
    x = points.units.size
    cells: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(points.model.tolist(), points.fraction.tolist())):
        cells.setdefault(key, []).append(i)
    for _ in range(n_boot):
        ex = rng.integers(0, x, x)
        loss = points.sums[:, ex].sum(1) / points.units[ex].sum()
        rows = np.concatenate([rng.choice(ix, len(ix)) if len(ix) > 1 else ix for ix in cells.values()])
        yield rows, loss[rows]


def fit_with_ci(law: str, points: Points, n_boot: int = 200, seed: int = 0) -> dict:
    """The fit on the measured points and, for every constant, its bootstrap 95% CI:
    {"law", "params": {k: v}, "ci": {k: [lo, hi]}, "draws": [params per draw]}."""
    params = fit_law(law, points.n, points.d, points.loss)
    draws = [fit_law(law, points.n[rows], points.d[rows], y) for rows, y in bootstrap_points(points, n_boot, seed)]
    ci = {k: np.percentile([p[k] for p in draws], [2.5, 97.5]).tolist() for k in params if k != "sse"}
    return {"law": law, "params": params, "ci": ci, "draws": draws, "n_points": len(points.loss)}


def band(fit: dict, n, d, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise (lo, hi) of the fitted curve over the bootstrap draws."""
    curves = np.stack([predict(fit["law"], p, n, d) for p in fit["draws"]])
    q = (1 - level) / 2 * 100
    return np.percentile(curves, q, 0), np.percentile(curves, 100 - q, 0)
