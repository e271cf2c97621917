"""Exact and near-duplicate removal, keeping the first occurrence (input order is kept).

- exact: the same normalised words (case, punctuation and spacing ignored);
- near: MinHash signatures of word 5-gram shingles index the records in an LSH (datasketch) that
  proposes candidates (tuned for recall, below the threshold); each candidate is then confirmed with the exact
  Jaccard of the two shingle sets, so what is removed never depends on hash luck.
Every removal is reported with the id it duplicates and the similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.data.record_text import record_text, shingles, words
from tuneforge.errors import ConfigError


@dataclass
class Removal:
    id: str
    reason: str
    other: str = ""
    score: float = 1.0
    detail: str = ""

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v != ""}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def deduplicate(
    records: list,
    threshold: float = 0.7,
    ngram: int = 5,
    part: str = "instruction",
    num_perm: int = 128,
    near: bool = True,
) -> tuple[list, list[Removal]]:
    """(kept records, removals). `part` chooses the text compared (instruction | response | all)."""
    from datasketch import MinHash, MinHashLSH

    if not 0 < threshold <= 1:
        raise ConfigError(f"dedup threshold must be in (0, 1], got {threshold}")
    if ngram < 1:
        raise ConfigError(f"dedup n-gram length must be ≥ 1, got {ngram}")
    kept: list = []
    removed: list = []
    seen: dict = {}
    # The LSH only proposes candidates: tuned below the threshold and for recall (few misses), while
    # the exact Jaccard decides — so the outcome does not depend on hash collisions.
    lsh = MinHashLSH(threshold=max(0.05, 0.7 * threshold), num_perm=num_perm, weights=(0.1, 0.9)) if near else None
    sets: dict[str, set] = {}  # LSH key → shingles of a kept record
    ids: dict[str, str] = {}  # LSH key → its record id
    for i, rec in enumerate(records):
        rid = getattr(rec, "id", "") or f"#{i}"
        text = record_text(rec, part)
        exact = " ".join(words(text))
        if exact in seen:
            removed.append(Removal(rid, "exact duplicate", seen[exact]))
            continue
        if lsh is not None:
            sh = shingles(text, ngram)
            mh = MinHash(num_perm=num_perm, seed=1)
            mh.update_batch([s.encode() for s in sh])
            best = max(((jaccard(sh, sets[c]), c) for c in lsh.query(mh)), default=(0.0, ""))
            if best[0] >= threshold:
                removed.append(
                    Removal(
                        rid, f"near duplicate (Jaccard of {ngram}-grams ≥ {threshold})", ids[best[1]], round(best[0], 4)
                    )
                )
                continue
            key = str(len(kept))
            lsh.insert(key, mh)
            sets[key], ids[key] = sh, rid
        seen[exact] = rid
        kept.append(rec)
    return kept, removed
