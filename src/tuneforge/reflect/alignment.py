"""COMPUTEALIGNMENT (seed 001, eq. 31) and CHECKCONVERGENCE (eq. 32).

    A[j, t] = sim(e(R_{j,t}), e(I)) · quality(R_{j,t}, l_j)

- R_{j,t}: the student's reply to the teacher's level-j question at iteration t; I: the instruction;
  e: a sentence encoder (the embedded MiniLM by default).
- sim = max(0, cos(e(R), e(I))) — clipped so that A stays in [0, 1] and an off-topic reply cannot
  turn a bad rating into a positive product.
- quality(R, l_j) = (s − low) / (high − low), where s is the teacher's rating of that reply on its
  scale (text verdicts 1–10, probability verdicts 1–9), asked for against what a level-l_j question
  expects (the level is in the rating prompt): the worst rating → 0, the best → 1.
- A teacher reply with no parsable rating makes A[j, t] = NaN: it is recorded (the trace marks the
  parse failure) and never replaced by a guessed score.

Convergence: stop at the first t ≥ 1 with ‖A[:, t] − A[:, t−1]‖₂ < ε. A column holding a NaN
cannot show convergence (NaN < ε is false), so a run whose verdicts do not parse goes on to T.
A level's own convergence iteration (Figure 5) is the first t ≥ 1 with |A[j, t] − A[j, t−1]| < ε.
"""

from __future__ import annotations

import numpy as np


def quality(rating: float | None, low: float = 1.0, high: float = 10.0) -> float:
    return float("nan") if rating is None else (float(rating) - low) / (high - low)


def similarity(reply_vecs: np.ndarray, instruction_vecs: np.ndarray) -> np.ndarray:
    """Row-wise max(0, cos) of two (N, D) arrays."""
    a = np.asarray(reply_vecs, dtype=float)
    b = np.asarray(instruction_vecs, dtype=float)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return np.clip(cos, 0.0, 1.0)


def alignment(sim: float, rating: float | None, low: float = 1.0, high: float = 10.0) -> float:
    """Eq. 31 for one cell."""
    return float(sim) * quality(rating, low, high)


def converged(matrix: np.ndarray, t: int, eps: float) -> bool:
    """Eq. 32: ‖A[:, t] − A[:, t−1]‖₂ < ε (never at t = 0, never with a NaN in either column)."""
    if t < 1:
        return False
    return bool(np.linalg.norm(matrix[:, t] - matrix[:, t - 1]) < eps)


def level_convergence(matrix: np.ndarray, iterations: int, eps: float) -> list[int | None]:
    """Per level, the first t ≥ 1 (< iterations) with |A[j, t] − A[j, t−1]| < ε, else None."""
    out = []
    for row in np.asarray(matrix)[:, :iterations]:
        out.append(next((t for t in range(1, len(row)) if abs(row[t] - row[t - 1]) < eps), None))
    return out
