"""Scaling-law fits (scaling/fit.py, extrapolation.py, selection.py) on synthetic losses whose
constants are planted: per-example losses drawn around the law, so the bootstrap has what it resamples
in real runs (held-out examples, seeds)."""

import numpy as np
import pytest

from tuneforge.scaling.extrapolation import extrapolation_check
from tuneforge.scaling.fit import Points, fit_law, fit_with_ci, predict
from tuneforge.scaling.selection import select_model

D = np.array([1_000, 2_000, 4_000, 8_000, 16_000, 32_000], float)


def _points(curves: dict[int, tuple[float, callable]], ds=D, seeds=(0, 1), examples=300, noise=0.25, seed=0):
    """Runs of each model index m (size N_m, law f_m) at every D and seed; per-example losses f(D) + noise."""
    rng = np.random.default_rng(seed)
    units = rng.integers(5, 40, examples).astype(float)
    rows = [(m, n, d, s) for m, (n, _) in curves.items() for d in ds for s in seeds]
    sums = np.stack([units * (curves[m][1](d) + rng.normal(0, noise, examples)) for m, _, d, _ in rows])
    arr = lambda i: np.array([r[i] for r in rows], float)  # noqa: E731
    return Points(arr(0).astype(int), arr(1), arr(2), arr(3), sums, units)


def test_the_data_law_recovers_planted_constants_within_their_cis():
    true = {"B": 40.0, "beta": 0.45, "E": 1.6}
    pts = _points({0: (1e8, lambda d: predict("data", true, 1, d))})
    fit = fit_with_ci("data", pts, n_boot=150)
    for k, v in true.items():
        lo, hi = fit["ci"][k]
        assert lo <= v <= hi, (k, v, fit["ci"][k])
        assert fit["params"][k] == pytest.approx(v, rel=0.35)
    assert fit["ci"]["beta"][1] - fit["ci"]["beta"][0] < 0.5  # informative, not [0, 2]


def test_the_joint_law_of_eq_23_recovers_planted_constants_within_their_cis():
    true = {"A": 30.0, "alpha": 0.3, "B": 40.0, "beta": 0.45, "E": 1.2}
    curves = {m: (n, lambda d, n=n: predict("joint", true, n, d)) for m, n in enumerate((1e5, 1e6, 1e7))}
    pts = _points(curves, seeds=(0,))
    fit = fit_with_ci("joint", pts, n_boot=100)
    for k, v in true.items():
        lo, hi = fit["ci"][k]
        assert lo <= v <= hi, (k, v, fit["ci"][k])


def test_a_wrong_exponent_fits_worse_than_the_found_one():
    true = {"B": 40.0, "beta": 0.45, "E": 1.6}
    y = predict("data", true, 1, D)
    found = fit_law("data", np.ones_like(D), D, y)
    assert found["sse"] < 1e-8
    off = predict("data", {**found, "beta": found["beta"] + 0.1}, 1, D)
    assert ((off - y) ** 2).sum() > 1e-4


def test_the_extrapolation_check_passes_a_power_law_and_flags_a_curve_that_bends():
    law = {"B": 40.0, "beta": 0.45, "E": 1.6}
    straight = _points({0: (1e8, lambda d: predict("data", law, 1, d))})
    ok = extrapolation_check(straight, n_boot=100)
    assert not ok["bends"] and ok["ci"][0] <= 0 <= ok["ci"][1]
    assert ok["fit_on"] == D[:-1].tolist() and ok["d_max"] == D[-1]
    # the largest run plateaus: overfitting a small set, it is worse than at half the data
    bent = _points({0: (1e8, lambda d: predict("data", law, 1, min(d, 8_000)) + (0.15 if d > 16_000 else 0))})
    flagged = extrapolation_check(bent, n_boot=100)
    assert flagged["bends"] and flagged["error"] < 0 and flagged["ci"][1] < 0  # the law promised a lower loss


def test_the_rectified_law_fits_the_flat_pre_power_phase_that_the_plain_law_cannot():
    true = {"B": 300.0, "beta": 0.6, "D_l": 400.0, "E": 1.0}
    ds = np.array([0, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000], float)
    y = predict("rectified", true, 1, ds)
    rect = fit_law("rectified", np.ones_like(ds), ds, y)
    assert rect["sse"] < 1e-6 and rect["D_l"] == pytest.approx(400, rel=0.05)
    plain = fit_law("data", np.ones(len(ds) - 1), ds[1:], y[1:])  # D = 0 is infinite loss for the plain law
    assert plain["sse"] > 100 * rect["sse"] + 1e-6


def test_model_selection_picks_by_the_budget_and_says_how_sure_it_is():
    # model 0 is better with little data (its base loss is lower), model 1 learns faster and wins late
    small = {"B": 100.0, "beta": 0.5, "D_l": 50.0, "E": 1.5}
    large = {"B": 400.0, "beta": 0.7, "D_l": 100.0, "E": 0.9}
    ds = np.array([0, 500, 1_000, 2_000, 4_000, 8_000], float)
    curves = {
        0: (1e8, lambda d: predict("rectified", small, 1, d)),
        1: (3e8, lambda d: predict("rectified", large, 1, d)),
    }
    pts = _points(curves, ds=ds, noise=0.1)
    names = ["small", "large"]
    late = select_model(pts, 1e6, names, n_boot=60)
    assert late["choice"] == "large" and late["confidence"] > 0.9
    assert late["predicted"]["large"]["loss"] < late["predicted"]["small"]["loss"]
    early = select_model(pts, 0, names, n_boot=60)  # at D = 0: the base models as they are
    assert early["choice"] == "small" and early["confidence"] > 0.9
