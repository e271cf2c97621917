"""Decontamination: remove training records that share a long word n-gram with an evaluation set,
or that repeat an evaluation prompt.

The default n = 13 follows GPT-3's and lm-evaluation-harness' contamination checks: a 13-word run
shared with a test prompt or reference is very unlikely by chance. Each part of an evaluation item
(every prompt message, every reference) is indexed on its own, so an n-gram never spans the
prompt/reference boundary: a short test prompt planted verbatim with a new answer is caught.
Parts shorter than n words are matched whole when they have at least `min_words`; shorter prompts
still are matched by normalised exact match against the training record's prompt messages. Each
removal names the evaluation item it overlaps and the shared words, so a reviewer can check it.

Paraphrases share no long n-gram. `near_matches` finds them by meaning: each training prompt's
sentence embedding (the embedded MiniLM by default) against every evaluation prompt's; a cosine at
or above the threshold is a near match, reported with both texts and the cosine (and removed when
the build says so). Plain numpy: the similarity matrix of a few thousand prompts is one matmul.
"""

from __future__ import annotations

import numpy as np

from tuneforge.data.dedup import Removal
from tuneforge.data.record_text import instruction_parts, record_parts, record_text, words
from tuneforge.errors import ConfigError


def ngram_index(eval_records: list, n: int = 13, min_words: int = 8) -> tuple[dict[tuple, str], dict[tuple, str]]:
    """(n-gram or whole short part → evaluation id, short prompt → evaluation id)."""
    index: dict[tuple, str] = {}
    exact: dict[tuple, str] = {}
    for i, rec in enumerate(eval_records):
        rid = getattr(rec, "id", "") or f"eval#{i}"
        prompts = {tuple(words(t)) for t in instruction_parts(rec)}
        for text in record_parts(rec):
            w = words(text)
            if len(w) >= n:
                for j in range(len(w) - n + 1):
                    index.setdefault(tuple(w[j : j + n]), rid)
            elif len(w) >= min_words:
                index.setdefault(tuple(w), rid)
            elif w and tuple(w) in prompts:  # a short prompt: only an identical prompt counts
                exact.setdefault(tuple(w), rid)
    return index, exact


def decontaminate(
    records: list, eval_records: list, n: int = 13, min_words: int = 8, part: str = "all"
) -> tuple[list, list[Removal]]:
    """(kept records, removals) after dropping records that contain an evaluation n-gram or repeat
    an evaluation prompt."""
    if n < 1 or min_words < 1:
        raise ConfigError(f"decontamination n-gram length and min_words must be ≥ 1, got n={n}, min_words={min_words}")
    index, exact = ngram_index(eval_records, n, min_words)
    lengths = sorted({len(k) for k in index})
    kept, removed = [], []
    for i, rec in enumerate(records):
        w = words(record_text(rec, part))
        hit = next(
            ((g, index[g]) for k in lengths for j in range(len(w) - k + 1) if (g := tuple(w[j : j + k])) in index), None
        )
        if hit is None and part != "response":
            hit = next(((g, exact[g]) for t in instruction_parts(rec) if (g := tuple(words(t))) in exact), None)
        if hit:
            removed.append(
                Removal(
                    getattr(rec, "id", "") or f"#{i}",
                    f"contaminated: shares {len(hit[0])} words with evaluation item {hit[1]}",
                    hit[1],
                    detail=" ".join(hit[0]),
                )
            )
        else:
            kept.append(rec)
    return kept, removed


def near_matches(records: list, eval_records: list, embed, threshold: float = 0.85) -> list[dict]:
    """Training records whose prompt is within `threshold` cosine of an evaluation prompt:
    [{id, eval_id, cosine, prompt, eval_prompt}], most similar first. `embed(texts)` returns one
    row per text (normalised or not)."""

    def prompts(recs):
        return [" ".join(instruction_parts(r)) for r in recs]

    train, test = prompts(records), prompts(eval_records)
    if not train or not test:
        return []
    a, b = (np.asarray(embed(t), dtype=np.float32) for t in (train, test))
    a /= np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b /= np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    sims = a @ b.T  # (n_train, n_eval)
    best = sims.argmax(1)
    out = [
        {
            "id": getattr(records[i], "id", "") or f"#{i}",
            "eval_id": getattr(eval_records[j], "id", "") or f"eval#{j}",
            "cosine": round(float(sims[i, j]), 4),
            "prompt": train[i],
            "eval_prompt": test[j],
        }
        for i, j in enumerate(best)
        if sims[i, j] >= threshold
    ]
    return sorted(out, key=lambda m: -m["cosine"])
