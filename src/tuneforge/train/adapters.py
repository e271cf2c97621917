"""Parameterisations as model transforms, applied before the one training loop.

`ADAPTERS` maps `adapter.method` to a function (model, AdapterConfig) -> model whose trainable
parameters are exactly the ones the method trains:

| method        | trains                                                   | through |
|---------------|----------------------------------------------------------|---------|
| full          | every parameter (fp32 master weights, run's autocast)    | torch   |
| lora          | low-rank A, B on `target_modules` (`use_dora` for DoRA)  | PEFT    |
| qlora         | LoRA over a 4-bit NF4 base (bitsandbytes; CUDA or CPU)   | PEFT    |
| ia3           | learned scaling vectors on keys, values and the MLP      | PEFT    |
| prompt_tuning | `num_virtual_tokens` soft-prompt embeddings              | PEFT    |
| p_tuning      | soft prompts produced by a small MLP prompt encoder      | PEFT    |
| prefix_tuning | per-layer key/value prefixes                             | PEFT    |
| bitfit        | bias and normalisation parameters only                   | torch   |

BitFit on a model without biases (Llama, SmolLM2) trains the RMSNorm weights only — about 0.03%
of SmolLM2-135M; the run reports the exact count. Bottleneck (Houlsby/Pfeiffer) adapters are not
offered: PEFT has no implementation of them, and LoRA/IA³ cover the same budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tuneforge.errors import ConfigError, lookup

DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class AdapterConfig:
    method: str = field(
        default="lora",
        metadata={"help": "full | lora | qlora | ia3 | prompt_tuning | p_tuning | prefix_tuning | bitfit"},
    )
    r: int = field(default=16, metadata={"help": "LoRA rank", "ge": 1})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)", "ge": 1})
    # 0 by default, as in PEFT: on CPU the dropout masks (aten::bernoulli_) took a quarter of a
    # LoRA step on SmolLM2-135M, and a short fine-tune gains little from them.
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout", "ge": 0, "lt": 1})
    target_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_TARGETS),
        metadata={"help": "module names to adapt (LoRA), or ['all-linear']", "min_len": 1},
    )
    use_dora: bool = field(default=False, metadata={"help": "DoRA: weight-decomposed LoRA"})
    ia3_targets: list[str] = field(
        default_factory=lambda: ["k_proj", "v_proj", "down_proj"],
        metadata={"help": "IA³ modules (feed-forward ones: those named *_proj of the MLP)"},
    )
    num_virtual_tokens: int = field(default=20, metadata={"help": "prompt/prefix/p-tuning length", "ge": 1})

    def __post_init__(self):
        if self.r < 1 or self.num_virtual_tokens < 1:
            raise ConfigError(f"r and num_virtual_tokens must be ≥ 1, got {self.r} and {self.num_virtual_tokens}")


def apply_full(model, cfg: AdapterConfig):
    """Full fine-tuning: every parameter trains, kept in fp32 (master weights) under the run's autocast precision."""
    model = model.float()
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _peft(model, peft_config):
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError(
            f"the adapter does not fit this model: {exc}. Its linear layers are named: "
            f"{', '.join(names)} (adapter.target_modules / adapter.ia3_targets)"
        ) from None


def apply_lora(model, cfg: AdapterConfig):
    """LoRA (or DoRA) through PEFT. The frozen base keeps its dtype; adapter weights are fp32.
    Plain LoRA layers get the fused forward below (same result, same saved adapter)."""
    from peft import LoraConfig

    targets = "all-linear" if cfg.target_modules == ["all-linear"] else list(cfg.target_modules)
    model = _peft(
        model,
        LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            use_dora=cfg.use_dora,
            target_modules=targets,
            # a reward model (scalar head): PEFT's SEQ_CLS task also trains the new head in full
            task_type="SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM",
        ),
    )
    fuse_lora_forward(model)
    return model


def _fused_lora_forward(self, x, *args, **kwargs):
    """y = base(x) + (x Aᵀ)(s·B)ᵀ in the base's compute dtype, the add fused into one addmm.

    Hand-written because PEFT's forward casts the activation to the adapter's fp32 dtype, scales
    the output and adds it in separate ops: on CPU those full-activation copies, multiplies and
    adds took a fifth of a LoRA step on SmolLM2-135M (bf16 autocast). Here only the r-rank
    weights are cast. Anything but one plain, unmerged, dropout-free adapter takes PEFT's path."""
    from peft.tuners.lora.layer import Linear

    active = self.active_adapters
    if (
        args
        or kwargs
        or self.disable_adapters
        or self.merged
        or len(active) != 1
        or active[0] not in self.lora_A
        or active[0] in self.lora_variant
        or not isinstance(self.lora_dropout[active[0]], torch.nn.Identity)
    ):
        return Linear.forward(self, x, *args, **kwargs)
    name = active[0]
    base = self.base_layer(x)
    dtype = base.dtype
    a = self.lora_A[name].weight.to(dtype)
    b = (self.lora_B[name].weight * self.scaling[name]).to(dtype)
    h = torch.nn.functional.linear(x.to(dtype), a)
    out = torch.addmm(base.reshape(-1, base.shape[-1]), h.reshape(-1, h.shape[-1]), b.t())
    return out.view(base.shape)


def fuse_lora_forward(model) -> int:
    """Give every PEFT LoRA Linear layer of `model` the fused forward; returns how many."""
    import types

    from peft.tuners.lora.layer import Linear

    layers = [m for m in model.modules() if type(m) is Linear]
    for m in layers:
        setattr(m, "forward", types.MethodType(_fused_lora_forward, m))  # noqa: B010 (a bound method, not an attribute)
    return len(layers)


def apply_qlora(model, cfg: AdapterConfig):
    """QLoRA: LoRA on a base loaded in 4 bits (`load_model(..., load_in_4bit=True)`, which the
    recipe does for this method); norms go to fp32 and input gradients are enabled, as PEFT advises."""
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_loaded_in_4bit", False):
        raise ConfigError(
            "adapter.method=qlora needs the base loaded in 4 bits: load it with "
            "load_model(name, load_in_4bit=True) (tuneforge train does) or use adapter.method=lora"
        )
    _unpack_cpu_4bit(model)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return apply_lora(model, cfg)


def _unpack_cpu_4bit(model) -> int:
    """Undo bitsandbytes' CPU inference packing before training. On CPUs with AVX512-BF16,
    bitsandbytes (0.50) repacks a 4-bit layer's weights on its first eval-mode forward without
    gradients (a held-out loss before training, a generation) and from then on computes it with a
    kernel that has no autograd: the loss still falls through the LM head, but no gradient reaches
    the LoRA weights of earlier layers (found here: grad_norm 0.0 on every step). Returns how many
    layers were unpacked."""
    try:
        from bitsandbytes.nn import Linear4bit
        from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse
    except ImportError:  # another bitsandbytes: nothing of this kind to undo
        return 0
    n = 0
    for m in model.modules():
        weight: Any = getattr(m, "weight", None)  # a bitsandbytes Params4bit, with its quant_state
        state = getattr(weight, "quant_state", None)
        if isinstance(m, Linear4bit) and state is not None and getattr(state, "packing_format_for_cpu", False):
            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
            n += 1
    return n


def apply_ia3(model, cfg: AdapterConfig):
    from peft import IA3Config

    ff = [m for m in cfg.ia3_targets if m in ("gate_proj", "up_proj", "down_proj", "fc1", "fc2", "mlp")]
    return _peft(model, IA3Config(target_modules=list(cfg.ia3_targets), feedforward_modules=ff, task_type="CAUSAL_LM"))


def apply_prompt_tuning(model, cfg: AdapterConfig):
    from peft import PromptTuningConfig

    return _peft(model, PromptTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, task_type="CAUSAL_LM"))


def apply_p_tuning(model, cfg: AdapterConfig):
    from peft import PromptEncoderConfig

    return _peft(
        model,
        PromptEncoderConfig(
            num_virtual_tokens=cfg.num_virtual_tokens,
            task_type="CAUSAL_LM",
            encoder_hidden_size=model.config.hidden_size,
        ),
    )


def apply_prefix_tuning(model, cfg: AdapterConfig):
    from peft import PrefixTuningConfig

    return _peft(model, PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, task_type="CAUSAL_LM"))


def apply_bitfit(model, cfg: AdapterConfig):
    """BitFit-style: train biases and normalisation weights, freeze everything else (fp32 copies)."""
    norm_types = (torch.nn.LayerNorm,)
    trainable = 0
    for _, module in model.named_modules():
        is_norm = isinstance(module, norm_types) or "norm" in type(module).__name__.lower()
        for name, p in module.named_parameters(recurse=False):
            train = name == "bias" or is_norm
            p.requires_grad_(train)
            if train:
                p.data = p.data.float()
                trainable += p.numel()
    if trainable == 0:
        raise ConfigError(
            "bitfit found no bias or normalisation parameter in this model. Choose another adapter.method"
        )
    return model


ADAPTERS = {
    "full": apply_full,
    "lora": apply_lora,
    "qlora": apply_qlora,
    "ia3": apply_ia3,
    "prompt_tuning": apply_prompt_tuning,
    "p_tuning": apply_p_tuning,
    "prefix_tuning": apply_prefix_tuning,
    "bitfit": apply_bitfit,
}


def apply_adapter(model, cfg: AdapterConfig, seed: int | None = None):
    """Apply the configured parameterisation and return the model to train. With `seed` (train.seed)
    the new weights' random initialisation is drawn from it, so a run's starting point does not
    depend on what the process drew before (and every process of a sharded run draws the same)."""
    if seed is not None:
        torch.manual_seed(seed)
    return lookup(ADAPTERS, cfg.method, "adapter method")(model, cfg)


def is_prompt_learning(model) -> bool:
    """True for PEFT methods that add virtual tokens (prompt, p-, prefix tuning)."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def lora_parameter_count(model, r: int, targets: list[str]) -> int:
    """Σ r(d + k) over adapted d×k linear layers — the seed's eq. 8 numerator."""
    return sum(
        r * (m.in_features + m.out_features)
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets
    )


def save_trained(model, tokenizer, out_dir, state_dict: dict | None = None) -> None:
    """Save what was trained: the adapter (PEFT) or the whole model (full, bitfit), with the
    tokenizer. `state_dict`: the full weights when the model's own are shards (FSDP)."""
    if state_dict is not None:
        model.save_pretrained(out_dir, state_dict=state_dict)
    else:
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
