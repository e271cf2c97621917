"""Evaluation during training, and what it decides: `train.eval_every` measures the held-out loss
(with its CI) every N steps; `train.early_stopping` stops a run whose metric has not improved for
`patience` evaluations; `train.keep_best` keeps the K best checkpoints' trainable weights
(RUN/checkpoints/best-<step>/) and makes the best one the run's adapter, the last one kept beside it
(RUN/adapter-last).

`EvalWatch` holds the history, the K best (value, step) and the evaluations since the last
improvement, and travels in every resumable checkpoint's counters, so a run resumed after a kill
makes exactly the decisions an uninterrupted one makes. Weights of a best step evicted from the K
are deleted at once when the run keeps no resumable checkpoints, else only after the next
checkpoint is written (until then the checkpoint on disk still names them); on resume, best
folders the checkpoint does not name (written after it) are removed and made again.

Hand-written: the transformers Trainer's `EarlyStoppingCallback` and `load_best_model_at_end`
belong to its own loop (callbacks over `TrainerState`), which tuneforge's one loop does not run.
The rule is the same: an evaluation improves when it beats the best by more than `min_delta`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.errors import ConfigError, suggest

METRICS = ("eval_loss",)
MODES = ("min", "max")


@dataclass
class EarlyStopping:
    metric: str = field(
        default="eval_loss",
        metadata={"help": "the evaluation metric watched by early stopping and keep_best: eval_loss"},
    )
    mode: str = field(default="min", metadata={"help": "min (lower is better) | max"})
    patience: int = field(
        default=0,
        metadata={"help": "stop after this many evaluations without improvement (0 = never stop early)", "ge": 0},
    )
    min_delta: float = field(
        default=0.0, metadata={"help": "an improvement must beat the best by more than this to count", "ge": 0}
    )

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ConfigError(
                f"train.early_stopping.metric '{self.metric}' unknown.{suggest(self.metric, METRICS)} "
                f"Use one of {', '.join(METRICS)}"
            )
        if self.mode not in MODES:
            raise ConfigError(f"train.early_stopping.mode '{self.mode}' unknown. Use min or max")
        if self.patience < 0 or self.min_delta < 0:
            raise ConfigError("train.early_stopping.patience and min_delta must be ≥ 0")


def best_dir(directory: Path, step: int) -> Path:
    return Path(directory) / f"best-{step}"


class EvalWatch:
    """The evaluations of one run so far and what they decide (see the module docstring)."""

    def __init__(self, cfg: EarlyStopping, keep: int, directory: Path | None, defer: bool):
        self.cfg, self.keep, self.directory, self.defer = cfg, keep, directory, defer
        self.history: list[dict] = []  # {"step", metric, ...} per evaluation
        self.best: list[tuple[float, int]] = []  # the `keep` best (value, step), best first
        self.best_value: float | None = None  # the best so far (for patience)
        self.bad = 0  # evaluations since the last improvement
        self.pending: list[int] = []  # evicted best steps whose folders wait for the next checkpoint

    def _key(self, value: float, step: int) -> tuple[float, int]:
        return (value if self.cfg.mode == "min" else -value, step)

    def observe(self, step: int, row: dict) -> tuple[bool, bool]:
        """Record one evaluation → (keep this step's weights, stop now)."""
        value = float(row[self.cfg.metric])
        self.history.append({"step": step, **row})
        if (
            self.best_value is None
            or ((value < self.best_value) if self.cfg.mode == "min" else (value > self.best_value))
            and abs(value - self.best_value) > self.cfg.min_delta
        ):
            self.best_value, self.bad = value, 0
        else:
            self.bad += 1
        keep = False
        if self.keep:
            ranked = sorted([*self.best, (value, step)], key=lambda b: self._key(*b))
            keep = (value, step) in ranked[: self.keep]
            for _, evicted in ranked[self.keep :]:
                if evicted != step:
                    self._evict(evicted)
            self.best = ranked[: self.keep]
        return keep, bool(self.cfg.patience) and self.bad >= self.cfg.patience

    @property
    def best_step(self) -> int | None:
        return self.best[0][1] if self.best else None

    def _evict(self, step: int) -> None:
        if self.defer:
            self.pending.append(step)
        elif self.directory is not None:
            shutil.rmtree(best_dir(self.directory, step), ignore_errors=True)

    def checkpointed(self) -> None:
        """A resumable checkpoint now names the current best: the evicted folders can go."""
        for step in self.pending:
            if self.directory is not None:
                shutil.rmtree(best_dir(self.directory, step), ignore_errors=True)
        self.pending = []

    def state(self) -> dict:
        return {"history": self.history, "best": self.best, "best_value": self.best_value, "bad": self.bad}

    def restore(self, state: dict | None) -> None:
        """Take a checkpoint's state and remove best folders it does not name (written after it)."""
        state = state or {}
        self.history = list(state.get("history", []))
        self.best = [(float(v), int(s)) for v, s in state.get("best", [])]
        self.best_value, self.bad, self.pending = state.get("best_value"), int(state.get("bad", 0)), []
        named = {s for _, s in self.best}
        if self.directory is not None and self.directory.is_dir():
            for d in self.directory.glob("best-*"):
                if d.name.removeprefix("best-").isdigit() and int(d.name.removeprefix("best-")) not in named:
                    shutil.rmtree(d, ignore_errors=True)


def save_best(directory: Path, step: int, tensors: dict, write: bool) -> Path:
    """Write the trainable weights of `step` to best-<step>/trainable.safetensors (atomically)."""
    from safetensors.torch import save_file

    final = best_dir(directory, step)
    if not write:
        return final
    tmp = Path(directory) / f".tmp-best-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: t.contiguous() for n, t in tensors.items()}, tmp / "trainable.safetensors")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final
