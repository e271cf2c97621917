"""MAUVE (Pillutla et al., 2021) through `mauve-text`, on sentence-encoder features of the model's
answers (p) and the references (q).

Defaults follow the package: scaling c = 5, k-means buckets = n/10; the k-means step is random,
so the score is reported as the mean over several seeds with a 95% t-interval of that mean
(mean ± t₀.₉₇₅,ₖ₋₁ · sd / √k; it covers the k-means randomness, not the sampling of items), the sd
and the per-seed values. MAUVE is a distribution-level number:
it has no per-item values, no per-domain split (too few samples) and is unreliable on small
samples — a warning is attached when either side has fewer than 1,000 texts (the paper used
5,000). The features come from the configured encoder (the embedded MiniLM by default, not GPT-2
large as in the paper), which the signature names.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

MIN_SAMPLES = 1000


def seed_interval(scores: list[float], level: float = 0.95) -> list[float]:
    """t-interval of the mean of per-seed scores (NaN with fewer than two seeds)."""
    from scipy.stats import t

    k = len(scores)
    if k < 2:
        return [float("nan"), float("nan")]
    half = float(t.ppf(0.5 + level / 2, k - 1) * np.std(scores, ddof=1) / np.sqrt(k))
    return [float(np.mean(scores)) - half, float(np.mean(scores)) + half]


def mauve_score(
    predictions: list[str], references: list[list[str]], encoder, mauve_seeds: int = 5, mauve_scaling: float = 5.0, **_
) -> dict:
    import mauve

    p = encoder(predictions)
    q = encoder([refs[0] for refs in references])
    buckets = max(2, len(predictions) // 10)
    scores = [
        float(
            mauve.compute_mauve(
                p_features=p,
                q_features=q,
                num_buckets=buckets,
                mauve_scaling_factor=mauve_scaling,
                seed=s,
                verbose=False,
            ).mauve
        )
        for s in range(1, mauve_seeds + 1)
    ]
    n = min(len(p), len(q))
    out = {
        "score": float(np.mean(scores)),
        "sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else float("nan"),
        "ci": seed_interval(scores),
        "per_seed": scores,
        "per_item": None,
        "n": n,
        "signature": f"mauve|features:{encoder.name}|c:{mauve_scaling}|buckets:n/10={buckets}|"
        f"seeds:1-{mauve_seeds}|ci:t95-over-seeds|mauve-text:{version('mauve-text')}",
    }
    if n < MIN_SAMPLES:
        out["warning"] = (
            f"MAUVE on {n} samples per side is unreliable (fewer than {MIN_SAMPLES}); "
            "compare it only between runs on the same items, and read its sd"
        )
    return out
