"""Task-Semantic Alignment Score: TSAS(I, R) = cos(φ(I), φ(R)) / (cos(φ(I), φ(R_ref)) + ε).

φ is a sentence encoder (default: the embedded all-MiniLM-L6-v2). A score near 1 means the
response is as aligned with the instruction as the reference is. With several references the
denominator uses the one most aligned with the instruction. Items whose denominator is below a
floor (`tsas_floor`, default 0.1) are counted and left out of the mean rather than hidden: a
reference nearly orthogonal to its instruction (cos 0.01) would otherwise turn an ordinary answer
into a TSAS of ~100 that dominates the mean. The floor is part of the signature. The *parrot control* is the score a model
would get by repeating the instruction (R = I, so the numerator is 1): a reader can see how far
copying the prompt would go.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6
FLOOR = 0.1


class Encoder:
    """A memoising wrapper around a sentence-transformers model (texts are encoded once)."""

    def __init__(self, model, name: str):
        self.model, self.name = model, name
        self._cache: dict = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if new:
            vecs = self.model.encode(
                new, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=len(new) > 256
            )
            self._cache.update(zip(new, vecs))
        return np.stack([self._cache[t] for t in texts])


def tsas(
    predictions: list[str],
    references: list[list[str]],
    instructions: list[str],
    encoder: Encoder,
    eps: float = EPS,
    tsas_floor: float = FLOOR,
    **_,
) -> dict:
    e_i = encoder(instructions)  # (N, D), unit norm
    e_r = encoder(predictions)
    num = (e_i * e_r).sum(-1)
    den = np.array([float((encoder(references[k]) @ e_i[k]).max()) for k in range(len(instructions))])
    ok = den >= max(tsas_floor, eps)
    per_item = np.where(ok, num / (den + eps), np.nan)
    parrot = np.where(ok, 1.0 / (den + eps), np.nan)
    return {
        "score": float(np.nanmean(per_item)) if ok.any() else float("nan"),
        "per_item": [None if np.isnan(x) else float(x) for x in per_item],
        "numerator": float(num.mean()),
        "denominator": float(den.mean()),
        "n_below_floor": int((~ok).sum()),
        "floor": tsas_floor,
        "parrot_control": float(np.nanmean(parrot)) if ok.any() else float("nan"),
        "signature": f"tsas|encoder:{encoder.name}|cos|eps:{eps}|floor:{tsas_floor}|refs:max-aligned",
    }
