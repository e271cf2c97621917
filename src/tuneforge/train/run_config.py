"""The config of `tuneforge train`: the model, the data, the parameterisation, the objective (whose
keys are those of the entry `objective.name` picks, see `tuneforge.train.objectives`) and the loop.

A run's saved `config.yaml` is read back with `load_run_config`, which also reads runs saved before
each objective had its own keys (they wrote all nineteen; the ones an objective did not read are dropped)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.config import config_from_dict, load_config, read_yaml
from tuneforge.train.adapters import AdapterConfig
from tuneforge.train.config import ModelConfig, SFTDataConfig
from tuneforge.train.context import ObjectiveOptions
from tuneforge.train.loop import TrainConfig
from tuneforge.train.objectives import OPTIONS_BY_NAME, REGISTRY, SUMMARY_BY_NAME, options_class
from tuneforge.train.sft import SFTOptions


@dataclass
class TrainRunConfig:
    output_dir: str = field(default="", metadata={"help": "run directory ('' = runs/train-<time>)"})
    model: ModelConfig = field(default_factory=ModelConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    objective: ObjectiveOptions = field(
        default_factory=SFTOptions,
        metadata={
            "variants": OPTIONS_BY_NAME,
            "variant_help": SUMMARY_BY_NAME,
            "help": "the loss: one of the names below, each with the keys it reads",
        },
    )
    train: TrainConfig = field(default_factory=TrainConfig)


# keys of the flat objective section every run wrote before each objective had its own (2026-12)
_FLAT_OBJECTIVE_KEYS = {
    "beta", "gamma", "desirable_weight", "undesirable_weight", "label_smoothing", "reward", "group_size",
    "completion_tokens", "sample_temperature", "clip_epsilon", "iterations", "teacher", "temperature", "kl_weight",
    "general", "domain_weight", "consistency_weight",
}  # fmt: skip


def load_run_config(path: str | Path) -> TrainRunConfig:
    """A training run's saved config.yaml as a TrainRunConfig."""
    data, _ = read_yaml(path, "run config")
    objective = data.get("objective") if isinstance(data, dict) else None
    name = objective.get("name", "sft") if isinstance(objective, dict) else None
    if isinstance(objective, dict) and isinstance(name, str) and name in REGISTRY:
        own = {f.name for f in dataclasses.fields(options_class(name))}
        stale = [k for k in objective if k in _FLAT_OBJECTIVE_KEYS and k not in own]
        if stale:  # a run saved with the flat section: drop the keys its objective never read
            kept = {k: v for k, v in objective.items() if k not in stale}
            return config_from_dict(TrainRunConfig, {**data, "objective": kept}, str(path))
    return load_config(TrainRunConfig, path)
