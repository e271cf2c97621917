"""The test set every verb that evaluates reads: `data.test` (a file in any format, or `seed:test`)
and `data.test_per_domain` (the first N items of each domain; 0 = all)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tuneforge.data.io import read_records
from tuneforge.data.seed import load_examples
from tuneforge.errors import DataError
from tuneforge.records import EvalItem, Example


@dataclass
class TestSetConfig:
    test: str = field(default="seed:test", metadata={"help": "test set (any format) or seed:test"})
    test_per_domain: int = field(default=0, metadata={"help": "cap items per domain (0 = all)", "ge": 0})


def cap_per_domain(rows: list, cap: int) -> list:
    """The first `cap` rows of each domain, in order (all of them when cap ≤ 0)."""
    if cap <= 0:
        return rows
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        seen[r.domain] = seen.get(r.domain, 0) + 1
        if seen[r.domain] <= cap:
            out.append(r)
    return out


def load_test_items(cfg: TestSetConfig) -> list[EvalItem]:
    """The test set as eval items (SFT records become items whose reference is the last answer)."""
    rows = load_examples(cfg.test) if cfg.test.startswith("seed:") else read_records(cfg.test)
    converted = [EvalItem.from_example(r) if isinstance(r, Example) else r for r in rows]
    if any(not isinstance(i, EvalItem) for i in converted):
        raise DataError("the test set must hold SFT or eval records", path=cfg.test)
    return cap_per_domain([i for i in converted if isinstance(i, EvalItem)], cfg.test_per_domain)
