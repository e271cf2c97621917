"""A memory estimate printed before a model is loaded, so a run that cannot fit fails in seconds,
not after minutes of loading.

The parameter counts are exact: the model is built from its config on the `meta` device (no
weights read) and the configured adapter is applied to it. Activations use the per-layer estimate
of Korthikanti et al. (2022) for 16-bit training, s·b·h·(34 + 5·a·s/h) bytes per layer for b
rows of s tokens, plus the fp32 logits at target positions (logits, log-softmax and their
gradients). It is an estimate for one micro-batch of full-length rows; the report says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

GIB = 1024**3
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass
class MemoryEstimate:
    total_params: int
    trainable_params: int
    weights_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    available_bytes: int | None
    device: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.optimizer_bytes + self.activation_bytes

    def describe(self) -> str:
        avail = f" of {self.available_bytes / GIB:.1f} GiB available on {self.device}" if self.available_bytes else ""
        return (
            f"memory estimate: weights {self.weights_bytes / GIB:.2f} GiB ({self.total_params / 1e6:.1f}M params) + "
            f"gradients and AdamW states {self.optimizer_bytes / GIB:.2f} GiB "
            f"({self.trainable_params / 1e6:.2f}M trainable) + activations ≤ {self.activation_bytes / GIB:.2f} GiB "
            f"= {self.total_bytes / GIB:.2f} GiB{avail}"
        )


def available_memory(device: str) -> int | None:
    """Free accelerator memory, or MemAvailable of the host for CPU runs (None if unknown)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def estimate_memory(
    where: str,
    dtype: str,
    adapter,
    batch_size: int,
    max_length: int,
    device: str = "cpu",
    precision: str = "auto",
    gradient_checkpointing: bool = False,
) -> MemoryEstimate:
    """Estimate the training memory of the model at `where` (a local directory with config.json).
    QLoRA counts the frozen linear weights of the blocks at 4 bits (NF4, plus ~3% for the
    double-quantised scales); gradient checkpointing keeps one block's activations plus each
    block's input."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from tuneforge.hardware import resolve_dtype, resolve_precision
    from tuneforge.train.adapters import apply_adapter

    dtype, precision = resolve_dtype(dtype, device), resolve_precision(precision, device)
    config = AutoConfig.from_pretrained(where, trust_remote_code=False)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    if getattr(config, "tie_word_embeddings", False):  # a tied LM head shares the embeddings: count it once
        model.get_output_embeddings().weight = model.get_input_embeddings().weight
    qlora = adapter.method == "qlora"
    if qlora:  # the 4-bit load cannot happen on meta: count LoRA's parameters, weigh the base at 4 bits
        quantised = sum(
            m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n
        )
        adapter = dataclasses.replace(adapter, method="lora")
    model = apply_adapter(model, adapter)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    weight_bytes = BYTES.get(dtype, 4) * frozen + 4 * trainable  # trained tensors are kept in fp32
    if qlora:
        weight_bytes -= (BYTES.get(dtype, 4) - 0.5 * 1.03) * quantised
    optimizer = trainable * (4 + 8)  # fp32 gradient + AdamW's two moments
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    h = text.hidden_size
    layers, heads = text.num_hidden_layers, text.num_attention_heads
    act_bytes = 2 if precision == "bf16" else 4
    s, b = max_length, batch_size
    per_layer = s * b * h * (34 + 5 * heads * s / h) * act_bytes / 2
    if gradient_checkpointing:  # each block's input is kept; one block's activations are recomputed at a time
        per_layer, extra = s * b * h * act_bytes, per_layer
    else:
        extra = 0
    logits = b * s * text.vocab_size * (act_bytes + 4 + 4 + 4)
    return MemoryEstimate(
        frozen + trainable,
        trainable,
        int(weight_bytes),
        int(optimizer),
        int(layers * per_layer + extra + logits),
        available_memory(device),
        device,
    )
