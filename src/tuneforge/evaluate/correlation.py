"""Correlation of a per-item metric with human ratings: Pearson, Spearman and Kendall (scipy),
each with a bootstrap 95% CI over items and n. Ratings come from a file of records with an `id`
and a rating field (JSONL, or CSV with a header); items are matched by id, and items rated but not
scored (or scored as None) are left out and counted."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from tuneforge.errors import DataError, read_text
from tuneforge.intervals import interval, resample_indices

METHODS = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}


def load_ratings(path: str | Path, key: str = "rating") -> dict[str, float]:
    path = Path(path)
    if not path.exists():
        raise DataError("human-ratings file not found", path=str(path))
    rows: list[tuple[int, dict]] = []
    if path.suffix == ".csv":
        text = read_text(path, "ratings file")  # regular files only: a FIFO named .csv would block
        rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(io.StringIO(text, newline="")))]
    else:
        for i, line in enumerate(read_text(path, "ratings file").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((i, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"not JSON: {exc.msg}", path=str(path), line=i) from None
    out: dict[str, float] = {}
    for lineno, r in rows:
        if "id" not in r or key not in r:
            raise DataError(
                f"a rating record needs 'id' and '{key}' (set human_ratings_key for another field)",
                path=str(path),
                line=lineno,
            )
        try:
            out[str(r["id"])] = float(r[key])
        except (TypeError, ValueError):
            raise DataError(f"rating '{r[key]}' is not a number", path=str(path), line=lineno) from None
    return out


def correlate(scores: dict[str, float | None], ratings: dict[str, float], n_boot: int = 1000, seed: int = 0) -> dict:
    ids = [i for i in ratings if scores.get(i) is not None and scores[i] == scores[i]]
    out: dict[str, Any] = {"n": len(ids), "rated_not_scored": len(ratings) - len(ids)}
    if len(ids) < 3:
        return out | {m: {"r": float("nan"), "ci": [float("nan")] * 2, "p_value": float("nan")} for m in METHODS}
    x = np.array([scores[i] for i in ids], dtype=float)
    y = np.array([ratings[i] for i in ids], dtype=float)
    draws = resample_indices(len(ids), n_boot, seed)
    for name, fn in METHODS.items():
        res = fn(x, y)
        boot = []
        for d in draws:
            with np.errstate(all="ignore"):
                boot.append(fn(x[d], y[d])[0] if np.ptp(x[d]) > 0 and np.ptp(y[d]) > 0 else np.nan)
        out[name] = {"r": float(res[0]), "ci": interval(np.array(boot, dtype=float), 0.95), "p_value": float(res[1])}
    return out
