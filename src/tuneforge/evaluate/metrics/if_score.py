"""IF-Score (seed 000, eq. 11): the mean similarity of each response to its reference,
cos(φ(R), φ(R_ref)) with the sentence encoder φ (max over references)."""

from __future__ import annotations

import numpy as np


def if_score(predictions: list[str], references: list[list[str]], encoder, **_) -> dict:
    e_r = encoder(predictions)
    per_item = [float((encoder(refs) @ e_r[k]).max()) for k, refs in enumerate(references)]
    return {
        "score": float(np.mean(per_item)),
        "per_item": per_item,
        "signature": f"if_score|encoder:{encoder.name}|cos|refs:max",
    }
