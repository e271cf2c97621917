"""Active learning by uncertainty sampling (Settles 2009; seed 001: select 10–30% of the pool): train
on a share of the data chosen by the model being trained, in rounds.

    budget  = `fraction` × pool           examples, the whole run's selection
    round r = score the pool not yet selected under the *current* model (its loss on the answer, or
              the entropy of its predictions there), add the budget/R most uncertain, then train
              train.steps/R optimizer steps: one shuffled pass over the round's own picks, then passes
              over everything selected so far (with steps = budget ÷ batch, each example once — the
              same tokens as training once on a random share of that size)

Round 1 scores with the untrained model; later rounds see what training taught it, so an example
the model has learned to predict stops looking uncertain. Every selected record is written to
RUN/active_selection.jsonl with `meta.active = {round, score, kind}` (its provenance), in the
order chosen. The scoring runs inside the batch stream when a round begins, on the live weights:
a checkpoint could not replay those selections, so active learning refuses train.checkpoint_every.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.errors import ConfigError, suggest
from tuneforge.records import Example
from tuneforge.tokenisation import Encoded, collate
from tuneforge.train.example_scores import SCORES, example_scores

UNCERTAINTY = {
    "loss": "mean cross-entropy of the answer's tokens under the current model",
    "entropy": "mean entropy of the current model's next-token distribution over the answer",
    "random": "no score: a seeded random draw (the baseline to compare against)",
}


@dataclass
class ActiveConfig:
    rounds: int = field(default=0, metadata={"help": "selection rounds R (0 = off: train on all the data)", "ge": 0})
    fraction: float = field(
        default=0.25, metadata={"help": "share of the training data selected over all rounds", "gt": 0, "le": 1}
    )
    score: str = field(default="loss", metadata={"help": " | ".join(UNCERTAINTY)})

    def __post_init__(self):
        if self.score not in UNCERTAINTY:
            raise ConfigError(
                f"train.active.score '{self.score}' unknown.{suggest(self.score, UNCERTAINTY)} "
                f"Use one of {', '.join(UNCERTAINTY)}"
            )

    @property
    def enabled(self) -> bool:
        return self.rounds > 0


def active_stream(
    model,
    examples: list[Example],
    encoded: list[Encoded],
    cfg: ActiveConfig,
    steps: int,
    batch_size: int,
    grad_accum: int,
    pad_id: int,
    seed: int,
    log_path: Path | None,
) -> Iterator[dict]:
    """Endless micro-batches over the growing selection (module docstring); `examples[i]` is the
    record `encoded[i]` came from. Rounds begin at optimizer steps 0, steps/R, 2·steps/R, …; a round
    first passes once over its own picks (shuffled), then over everything chosen so far, so every
    chosen example is trained on when the steps allow it (steps = examples chosen ÷ batch: once each)."""
    rng = random.Random(seed * 100_003 + 11)
    budget = round(cfg.fraction * len(encoded))
    if budget < cfg.rounds:
        raise ConfigError(
            f"train.active: {cfg.fraction:g} of {len(encoded)} examples is {budget}, fewer than train.active.rounds="
            f"{cfg.rounds}: raise train.active.fraction or lower the rounds"
        )
    per_round = [budget * (r + 1) // cfg.rounds - budget * r // cfg.rounds for r in range(cfg.rounds)]
    starts = [math.floor(r * steps / cfg.rounds) for r in range(cfg.rounds)]
    pool, chosen, queue, j, done = list(range(len(encoded))), [], [], 0, 0
    log = _open(log_path) if log_path is not None else None
    while True:
        if done < cfg.rounds and j // grad_accum >= starts[done] and j % grad_accum == 0:
            take = pick(model, encoded, pool, per_round[done], cfg.score, pad_id, rng)
            done += 1
            for i, score in take:
                chosen.append(i)
                pool.remove(i)
                if log is not None:
                    _record(log, examples[i], done, score, cfg.score)
            queue = rng.sample([i for i, _ in take], len(take))  # this round's picks first, once each
        batch: list[Encoded] = []
        while len(batch) < min(batch_size, len(chosen)):
            if not queue:
                queue = rng.sample(chosen, len(chosen))  # then passes over everything chosen
            batch.append(encoded[queue.pop()])
        yield collate(batch, pad_id)
        j += 1


def pick(model, encoded, pool: list[int], k: int, score: str, pad_id: int, rng) -> list[tuple[int, float | None]]:
    """The k most uncertain of `pool` (indices into `encoded`) with their scores, most uncertain first."""
    if score == "random":
        return [(i, None) for i in rng.sample(pool, min(k, len(pool)))]
    if score not in SCORES:
        raise ConfigError(f"train.active.score '{score}' unknown")
    values = example_scores(model, [encoded[i] for i in pool], pad_id)[score]
    ranked = sorted(zip(pool, values), key=lambda x: (-x[1], x[0]))
    return [(i, round(v, 4)) for i, v in ranked[:k]]


def _open(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "w", encoding="utf-8")  # noqa: SIM115 (kept open while the stream lives, flushed per record)


def _record(out, example: Example, rnd: int, score: float | None, kind: str) -> None:
    row = example.to_dict()
    row.setdefault("meta", {})["active"] = {"round": rnd, "score": score, "kind": kind}
    out.write(json.dumps(row, ensure_ascii=False) + "\n")
    out.flush()
