"""Decontamination: remove training records that share a long word n-gram with an evaluation set.

The default n = 13 follows GPT-3's and lm-evaluation-harness' contamination checks: a 13-word run
shared with a test prompt or reference is very unlikely by chance. Evaluation texts shorter than
n words are matched whole (if they have at least `min_words`). Each removal names the evaluation
item it overlaps and the shared words, so a reviewer can check it.
"""

from __future__ import annotations

from tuneforge.data.dedup import Removal
from tuneforge.data.text import record_text, words


def ngram_index(eval_records: list, n: int = 13, min_words: int = 8) -> dict[tuple, str]:
    """n-gram (tuple of words) → id of the evaluation record it comes from."""
    index: dict[tuple, str] = {}
    for i, rec in enumerate(eval_records):
        rid = getattr(rec, "id", "") or f"eval#{i}"
        w = words(record_text(rec, "all"))
        if len(w) < n:
            if len(w) >= min_words:
                index.setdefault(tuple(w), rid)
            continue
        for j in range(len(w) - n + 1):
            index.setdefault(tuple(w[j:j + n]), rid)
    return index


def decontaminate(records: list, eval_records: list, n: int = 13, min_words: int = 8,
                  part: str = "all") -> tuple[list, list[Removal]]:
    """(kept records, removals) after dropping records that contain an evaluation n-gram."""
    index = ngram_index(eval_records, n, min_words)
    lengths = sorted({len(k) for k in index})
    kept, removed = [], []
    for i, rec in enumerate(records):
        w = words(record_text(rec, part))
        hit = next(((g, index[g]) for k in lengths for j in range(len(w) - k + 1)
                    if (g := tuple(w[j:j + k])) in index), None)
        if hit:
            removed.append(Removal(getattr(rec, "id", "") or f"#{i}", f"contaminated: shares {len(hit[0])} words "
                                   f"with evaluation item {hit[1]}", hit[1], detail=" ".join(hit[0])))
        else:
            kept.append(rec)
    return kept, removed
