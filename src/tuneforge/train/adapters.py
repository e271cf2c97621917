"""Parameterisations as model transforms, applied before the one training loop.

`ADAPTERS` maps `adapter.method` to a function (model, AdapterConfig) -> model whose trainable
parameters are exactly the ones the method trains. More methods (prefix, prompt, IA³, BitFit,
QLoRA) plug in here as further entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tuneforge.errors import ConfigError, lookup

DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class AdapterConfig:
    method: str = field(default="lora", metadata={"help": "full | lora"})
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    # 0 by default, as in PEFT: on CPU the dropout masks (aten::bernoulli_) took a quarter of a
    # LoRA step on SmolLM2-135M, and a short fine-tune gains little from them.
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS),
                                      metadata={"help": "module names to adapt, or ['all-linear']"})

    def __post_init__(self):
        if self.r < 1:
            raise ConfigError(f"r must be ≥ 1, got {self.r}")


def apply_full(model, cfg: AdapterConfig):
    """Full fine-tuning: every parameter trains, kept in fp32 (master weights) under bf16 autocast."""
    model = model.float()
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def apply_lora(model, cfg: AdapterConfig):
    """LoRA through PEFT. The frozen base keeps its dtype; adapter weights are fp32."""
    from peft import LoraConfig, get_peft_model

    targets = "all-linear" if cfg.target_modules == ["all-linear"] else list(cfg.target_modules)
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"adapter.target_modules {cfg.target_modules} do not match this model: "
                          f"{exc}. Its linear layers are named: {', '.join(names)}") from None


ADAPTERS = {"full": apply_full, "lora": apply_lora}


def apply_adapter(model, cfg: AdapterConfig):
    """Apply the configured parameterisation and return the model to train."""
    return lookup(ADAPTERS, cfg.method, "adapter method")(model, cfg)


def save_trained(model, tokenizer, out_dir) -> None:
    """Save what was trained: the adapter (PEFT) or the whole model (full), with the tokenizer."""
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
