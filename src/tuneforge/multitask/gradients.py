"""Gradient conflict between tasks, and PCGrad projection (Yu et al., 2020).

For per-task gradients g_1..g_T (flattened over the trainable parameters):
- conflict score: mean pairwise cosine, the fraction of pairs with cosine < 0, and the mean
  magnitude similarity 2‖g_i‖‖g_j‖ / (‖g_i‖² + ‖g_j‖²) (1 = equal norms, → 0 when one dominates);
- PCGrad: for each task i (in a random order of the others), when g_i · g_j < 0 replace g_i by
  g_i − (g_i · g_j / ‖g_j‖²) g_j — its projection onto the normal plane of g_j; the update is the
  sum of the projected gradients. Non-conflicting pairs are left unchanged.
Hand-written: it is a few tensor operations, and the libraries that ship it wrap their own trainers.
"""

from __future__ import annotations

import itertools
import random

import torch


def conflict_stats(grads: list[torch.Tensor]) -> dict:
    flat = [g.reshape(-1).float() for g in grads]
    cos, mag = [], []
    for a, b in itertools.combinations(flat, 2):
        na, nb = a.norm(), b.norm()
        cos.append(float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0)
        mag.append(float(2 * na * nb / (na**2 + nb**2)) if na > 0 or nb > 0 else 1.0)
    if not cos:
        return {
            "pairs": 0,
            "mean_cosine": float("nan"),
            "conflict_fraction": float("nan"),
            "magnitude_similarity": float("nan"),
        }
    return {
        "pairs": len(cos),
        "mean_cosine": sum(cos) / len(cos),
        "conflict_fraction": sum(c < 0 for c in cos) / len(cos),
        "magnitude_similarity": sum(mag) / len(mag),
    }


def pcgrad(grads: list[torch.Tensor], seed: int = 0) -> torch.Tensor:
    """The PCGrad update (sum of projected task gradients), same shape as each gradient."""
    rng = random.Random(seed)
    flat = [g.reshape(-1).float() for g in grads]
    projected = []
    for i, g in enumerate(flat):
        g = g.clone()
        others = [j for j in range(len(flat)) if j != i]
        rng.shuffle(others)
        for j in others:
            dot = g @ flat[j]
            if dot < 0:
                g = g - dot / (flat[j] @ flat[j]).clamp_min(1e-20) * flat[j]
        projected.append(g)
    return torch.stack(projected).sum(0).reshape(grads[0].shape).to(grads[0].dtype)
