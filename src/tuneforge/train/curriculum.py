"""Curriculum learning: easy examples first, harder ones let in as training goes (Bengio et al. 2009;
the competence-based form of Platanios et al. 2019). Examples are ranked once by a difficulty score
— `loss` under the model before training, `ifd` (loss with the instruction ÷ without, data/ifd.py)
or `length` (target tokens) — and at optimizer step t each micro-batch is drawn uniformly from the
easiest share c(t) of them, the *pacing function*:

    linear   c(t) = c0 + (1 − c0)·t/T
    root     c(t) = sqrt(c0² + (1 − c0²)·t/T)          (Platanios et al.: more time on the hard part)
    step     c(t) = c0 + (1 − c0)·floor(k·t/T)/(k − 1)  (k equal stages, the last being all data)

with T = `full_at` × train.steps, after which every example is eligible (c = 1). The schedule is
printed when training starts and saved in train_summary.json. Off by default: `order: none`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from tuneforge.errors import ConfigError, suggest
from tuneforge.tokenisation import Encoded, collate

ORDERS = ("none", "loss", "ifd", "length")
PACINGS = ("linear", "root", "step")


@dataclass
class CurriculumConfig:
    order: str = field(
        default="none",
        metadata={"help": "difficulty score, easiest first: none (off) | loss (under the base model) | ifd | length"},
    )
    pacing: str = field(default="linear", metadata={"help": "how fast harder examples come in: linear | root | step"})
    start: float = field(
        default=0.2, metadata={"help": "c0: share of the easiest examples at step 0", "gt": 0, "le": 1}
    )
    full_at: float = field(
        default=0.8, metadata={"help": "share of train.steps after which all examples are eligible", "gt": 0, "le": 1}
    )
    stages: int = field(default=4, metadata={"help": "k: stages of the step pacing", "ge": 2})

    def __post_init__(self):
        for key, value, allowed in (("order", self.order, ORDERS), ("pacing", self.pacing, PACINGS)):
            if value not in allowed:
                raise ConfigError(
                    f"train.curriculum.{key} '{value}' unknown.{suggest(value, allowed)} Use one of {', '.join(allowed)}"
                )

    @property
    def enabled(self) -> bool:
        return self.order != "none"


def competence(cfg: CurriculumConfig, step: int, steps: int) -> float:
    """c(step): the share of the difficulty-ranked examples eligible at optimizer step `step` (0-based)."""
    t = min(1.0, step / max(1.0, cfg.full_at * steps))
    c0 = cfg.start
    if cfg.pacing == "linear":
        return c0 + (1 - c0) * t
    if cfg.pacing == "root":
        return math.sqrt(c0**2 + (1 - c0**2) * t)
    return c0 + (1 - c0) * min(1.0, math.floor(cfg.stages * t) / (cfg.stages - 1))


def schedule(cfg: CurriculumConfig, steps: int, points: int = 11) -> list[dict]:
    """The pacing at `points` evenly spaced steps: [{"step", "share"}] (what the run logs)."""
    at = sorted({round(i * (steps - 1) / (points - 1)) for i in range(points)})
    return [{"step": s + 1, "share": round(competence(cfg, s, steps), 4)} for s in at]


def curriculum_stream(
    encoded: list[Encoded],
    difficulty: list[float],
    cfg: CurriculumConfig,
    steps: int,
    batch_size: int,
    grad_accum: int,
    pad_id: int,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> Iterator[dict]:
    """Endless collated micro-batches: global micro-batch j belongs to optimizer step
    j // (grad_accum·num_shards) and is drawn from the easiest c(step) of the examples. Deterministic
    (resume replays it); with several shards each takes every num_shards-th batch of one global order."""
    ranked = [encoded[i] for i in sorted(range(len(encoded)), key=lambda i: (difficulty[i], i))]
    rng = random.Random(seed * 100_003 + 7)
    j = 0
    while True:
        step = j // (grad_accum * num_shards)
        eligible = max(batch_size, math.ceil(competence(cfg, step, steps) * len(ranked)))
        batch = rng.sample(ranked[:eligible], min(batch_size, eligible, len(ranked)))
        if j % num_shards == shard:
            yield collate(batch, pad_id)
        j += 1
