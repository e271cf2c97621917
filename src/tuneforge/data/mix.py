"""Weighted mixing of several training sets into one epoch.

With weights w_i, source i makes up w_i / Σw of the mixed epoch, whose size is the sum of the
sources' sizes. A source asked for more rows than it has is repeated whole and topped up with a
seeded random subset; one asked for fewer is subsampled. Every row keeps its own provenance
(`source`, `meta`); `mix_report` says what each source contributed.
"""

from __future__ import annotations

import math
import random

from tuneforge.errors import ConfigError
from tuneforge.records import Example

MAX_UPSAMPLE = 100  # more repeats than this is a typo, not a mix (4 rows → 1,000,000 wrote 189 MB)


def mix_counts(sizes: list[int], weights: list[float] | None = None, total: int | None = None) -> list[int]:
    """Rows drawn from each source (largest-remainder rounding, so they sum to `total`)."""
    if weights is None or not weights:
        return list(sizes)
    if len(weights) != len(sizes):
        raise ConfigError(
            f"data.weights has {len(weights)} entries for {len(sizes)} data.train sources; "
            "give one weight per source (or none for plain concatenation)"
        )
    if not all(math.isfinite(w) and w >= 0 for w in weights) or not 0 < sum(weights) < math.inf:
        raise ConfigError(
            f"mixing weights must be finite numbers ≥ 0 with a positive sum below 1e308, got {weights}. "
            "Fix data.weights (or the :WEIGHT of data mix sources)"
        )
    total = sum(sizes) if total is None else total
    if total < 1 or total > MAX_UPSAMPLE * max(sum(sizes), 1):
        raise ConfigError(f"mix total must be between 1 and {MAX_UPSAMPLE}× the {sum(sizes)} input rows, got {total}")
    exact = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: total - sum(counts)]:
        counts[i] += 1
    for n, c, w in zip(sizes, counts, weights):
        if n == 0 and c > 0:
            raise ConfigError(f"a data.train source with weight {w} is empty")
    return counts


def mix_total(ratio: float, n: int) -> int:
    """M = round(α·N) for `data mix --ratio α`: α must be a finite number > 0 (inf made round() raise)."""
    if not (math.isfinite(ratio) and ratio > 0 and math.isfinite(ratio * n)):
        raise ConfigError(f"--ratio must be a finite number > 0, got {ratio}. Give e.g. --ratio 0.5, or --total N")
    return round(ratio * n)


def mix_datasets(
    sources: list[list[Example]], weights: list[float] | None = None, seed: int = 0, total: int | None = None
) -> list[Example]:
    """One shuffled list drawing `mix_counts` rows from each source."""
    rng = random.Random(seed)
    mixed: list[Example] = []
    for rows, count in zip(sources, mix_counts([len(s) for s in sources], weights, total)):
        whole, rest = divmod(count, len(rows)) if rows else (0, 0)
        mixed += list(rows) * whole + rng.sample(list(rows), rest)
    rng.shuffle(mixed)
    return mixed


def mix_report(names: list[str], sizes: list[int], counts: list[int]) -> str:
    total = max(sum(counts), 1)
    return "; ".join(f"{n}: {c} rows from {s} ({100 * c / total:.0f}%)" for n, s, c in zip(names, sizes, counts))


def mix_by_source(pooled: list[Example], weights: dict[str, float], ratio: float = 1.0, seed: int = 0) -> list[Example]:
    """Mix records pooled from several sources (a record's source is the first part of its
    `source`) by `weights` per source, keeping M = α·N records (`mix_total`); the same
    `mix_counts`/`mix_datasets` semantics as `data mix` and training's `data.weights`."""
    if not weights and ratio == 1.0:
        return pooled
    groups: dict[str, list[Example]] = {}
    for r in pooled:
        groups.setdefault(r.source.split("/")[0], []).append(r)
    names = list(groups)
    unknown = [n for n in weights if n not in groups]
    if unknown:
        raise ConfigError(f"mix.weights names {unknown}, but the sources present are {names}")
    unlisted = [n for n in names if weights and n not in weights]
    if unlisted:  # silently weighting them 0 would drop whole sources
        raise ConfigError(
            f"mix.weights gives no weight to the sources {unlisted} ({sum(len(groups[n]) for n in unlisted)} "
            f"records), so they would be dropped. Give each source present ({names}) a weight; "
            "0 drops a source on purpose"
        )
    w = [float(weights.get(n, 0.0)) for n in names] if weights else None
    total = mix_total(ratio, len(pooled))
    mix_counts([len(groups[n]) for n in names], w, total)  # validates
    return mix_datasets([groups[n] for n in names], w, seed, total)
