"""The model and data sections every verb that loads a causal LM or trains shares, and `auto`
resolved once: `resolve_auto` turns a run config's `auto` dtype and precision into what runs here,
so the config saved with the run says what ran."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tuneforge.config import device_field, dtype_field
from tuneforge.hardware import check_device_dtype, resolve_dtype, resolve_precision
from tuneforge.models import EMBEDDED_MODEL


@dataclass
class ModelChoice:
    """The `model` section of every verb that loads one causal LM: which, in what dtype, where."""

    name: str = field(default=EMBEDDED_MODEL, metadata={"help": "hub id, local dir, .gguf, or the embedded default"})
    dtype: str = dtype_field("parameter dtype of the (frozen) base")
    device: str = device_field()

    def __post_init__(self):
        check_device_dtype(self.device, self.dtype, "model")


@dataclass
class ModelConfig(ModelChoice):
    """`model` of train and the demo: the choice, plus how it attends and talks."""

    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa | eager | flash_attention_2"})
    chat_template: str = field(
        default="",
        metadata={"help": "'' = the tokenizer's own | chatml | llama3 | zephyr | alpaca | path/to/template.jinja"},
    )
    eos_token: str = field(default="", metadata={"help": "token generation stops on ('' = the tokenizer's EOS)"})


@dataclass
class SFTDataConfig:
    train: str | list[str] = field(
        default="seed:train", metadata={"help": "training file (any format), seed:train, or a list of them to mix"}
    )
    weights: list[float] = field(
        default_factory=list,
        metadata={"help": "mixing weights, one per train source ([] = concatenate as they are)", "ge": 0},
    )
    eval: str = field(default="seed:test", metadata={"help": "held-out file for eval loss ('' = none)"})


def resolve_auto(cfg, device: str):
    """A copy of a run config (any with `model` and `train` sections) whose `auto` model dtype and
    training precision are made concrete for `device`, so the saved config says what ran."""
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, dtype=resolve_dtype(cfg.model.dtype, device)),
        train=dataclasses.replace(cfg.train, precision=resolve_precision(cfg.train.precision, device)),
    )
