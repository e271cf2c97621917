"""What every objective's builder receives, and the options section each objective subclasses.

An objective module owns three things: its options (a dataclass subclassing `ObjectiveOptions`:
its own `objective.*` keys, help and ranges, checked when the config loads), a builder
`build(ctx: BuildContext) -> ObjectiveSetup`, and one line in `tuneforge.train.objectives`.
The builder reads its data through the context (so the demo can hand it examples already loaded),
evaluates the untrained model (`before`) and returns the loss and batches for the one loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.data.mix import mix_counts, mix_datasets, mix_report
from tuneforge.data.seed import load_examples, load_pairs
from tuneforge.errors import ConfigError
from tuneforge.records import Example, PreferencePair
from tuneforge.train.adapters import AdapterConfig
from tuneforge.train.config import ModelConfig, SFTDataConfig
from tuneforge.train.loop import TrainConfig


@dataclass
class ObjectiveOptions:
    """The `objective` section: `name` picks the entry; each entry's subclass adds its own keys."""

    name: str = field(default="sft", metadata={"help": "the loss; see `tuneforge train --help` for the list"})

    def data_sources(self) -> list[str]:
        """Data specs these options read besides data.train / data.eval (they join the run's fingerprint)."""
        return []


@dataclass
class BuildContext:
    model: Any
    tok: Any
    options: ObjectiveOptions
    data: SFTDataConfig
    train: TrainConfig
    adapter: AdapterConfig
    model_config: ModelConfig
    device: str
    run_dir: Path
    shard: dict = field(default_factory=dict)  # {"num_shards", "shard"} of this process
    frozen: Any = None  # a frozen copy of the base, when the entry needs a reference and the base trains
    examples: list[Example] | None = None  # training examples already loaded (else read from `data`)
    eval_examples: list[Example] | None = None  # held-out examples already loaded

    def training_examples(self) -> list[Example]:
        return self.examples if self.examples is not None else load_training_mix(self.data, self.train.seed)

    def held_out_examples(self) -> list[Example]:
        if self.eval_examples is not None:
            return self.eval_examples
        return load_examples(self.data.eval) if self.data.eval else []

    def pairs_source(self) -> str:
        return one_source(self.data.train)

    def eval_pairs_source(self) -> str:
        return self.data.eval or self.pairs_source()

    def training_pairs(self) -> list[PreferencePair]:
        return load_pairs(self.pairs_source())


def one_source(train: str | list[str]) -> str:
    if isinstance(train, str):
        return train
    if len(train) != 1:
        raise ConfigError("preference objectives take one data.train file of preference pairs, not a mix")
    return train[0]


def load_training_mix(data: SFTDataConfig, seed: int = 0) -> list[Example]:
    """The training examples: one source, or several mixed by `data.weights`."""
    specs = [data.train] if isinstance(data.train, str) else list(data.train)
    if not specs:
        raise ConfigError("data.train is empty: give a file, seed:train, or a list of them")
    sources = [load_examples(s) for s in specs]
    if len(sources) == 1 and not data.weights:
        return sources[0]
    counts = mix_counts([len(s) for s in sources], data.weights)
    print(f"      mix: {mix_report(specs, [len(s) for s in sources], counts)}", flush=True)
    return mix_datasets(sources, data.weights, seed)
