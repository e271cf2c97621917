"""Compute accounting of a training run: what it cost in tokens, parameters and FLOPs, and how much
of the machine's matmul peak it used.

    C_train ≈ 6·N·D                         (Kaplan et al. 2020; seed eq. 23's budget)
    C_done  ≈ (4·N + 2·N_train + 2·N·[ckpt])·D

N counts non-embedding parameters (Kaplan's convention: the input embedding and the output head are
left out — a lookup is no matmul, and the head runs at target positions only), D the
tokens the loop processed (prompt and answer, padding excluded). 6ND is the rule the scaling law's
budget uses: a forward pass is 2N FLOPs per token and a backward pass 4N. `C_done` is what this run
actually computed: the backward pass always propagates activation gradients through every frozen
weight (2N) but computes weight gradients only for trainable ones (2·N_train) — a LoRA run costs
~4ND, not 6ND — and gradient checkpointing repeats the forward pass. Attention's T² term and the
vocabulary projection (computed at target positions only) are left out, as in both papers, so the
fraction of peak is a slight under-count. Hand-written: no kept library counts LoRA-aware FLOPs
from a run's own token count.

The peak is *measured*, not read from a spec sheet: the n×n matmul probe `tuneforge.hardware`
already runs (and caches) to decide `auto` precision on CPUs, or a 4096² matmul on a GPU.
"""

from __future__ import annotations

import math


def parameter_counts(model) -> dict:
    """{"total", "trainable", "embedding", "non_embedding", "trainable_non_embedding"} parameter counts.
    Embedding = the input embedding and an untied output head (Kaplan's N leaves out both; a tied
    head is one tensor, counted once); 4-bit weights (QLoRA) count the values they hold, not bytes."""
    import torch

    emb_ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        emb_ids.add(id(head.weight))
    seen, total, trainable, emb, emb_trainable = set(), 0, 0, 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = _numel(p)
        total += n
        trainable += n if p.requires_grad else 0
        if id(p) in emb_ids:
            emb += n
            emb_trainable += n if p.requires_grad else 0
    return {
        "total": total,
        "trainable": trainable,
        "embedding": emb,
        "non_embedding": total - emb,
        "trainable_non_embedding": trainable - emb_trainable,
    }


def _numel(p) -> int:
    """Values a parameter holds: bitsandbytes' Params4bit stores two per byte and keeps the shape aside."""
    state = getattr(p, "quant_state", None)
    shape = getattr(state, "shape", None)
    return math.prod(int(x) for x in shape) if shape is not None else p.numel()


def training_flops(counts: dict, tokens: int, gradient_checkpointing: bool = False) -> dict:
    """C_train = 6·N·D and the FLOPs this parameterisation actually computes (module docstring)."""
    n, n_train = counts["non_embedding"], counts["trainable_non_embedding"]
    done = (4 * n + 2 * n_train + (2 * n if gradient_checkpointing else 0)) * tokens
    return {"c_train_6nd": 6 * n * tokens, "c_done": done}


def matmul_peak(device_type: str, precision: str) -> dict:
    """{"gflops", "how"}: the measured matmul rate of this device in `precision` (bf16 | fp32)."""
    if device_type == "cuda":
        return {"gflops": _cuda_matmul_gflops(precision), "how": f"4096² {precision} matmul on the GPU"}
    from tuneforge.hardware import _cpu_probe

    bf16, fp32 = _cpu_probe()  # cached per CPU, torch version and thread count
    return {"gflops": bf16 if precision == "bf16" else fp32, "how": f"512² {precision} matmul probe, this process"}


def _cuda_matmul_gflops(precision: str, n: int = 4096, repeats: int = 20) -> float:
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
    a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e9


def compute_accounting(
    model,
    tokens: int,
    targets: int,
    session_tokens: int,
    seconds: float,
    device_type: str,
    precision: str,
    checkpointing: bool = False,
    devices: int = 1,
) -> dict:
    """The `compute` record of a run: N (total, non-embedding, trainable), D (`tokens`, `targets`: the
    whole run's, a resumed one included), C_train = 6ND, C_done, the FLOP/s of this session
    (`session_tokens` in `seconds` of training, evaluation excluded) and its fraction of the measured
    matmul peak of `devices` such devices (data-parallel processes)."""
    counts = parameter_counts(model)
    flops = training_flops(counts, tokens, checkpointing)
    achieved = training_flops(counts, session_tokens, checkpointing)["c_done"] / max(seconds, 1e-9) / 1e9
    peak = matmul_peak(device_type, precision)
    return {
        "params": counts,
        "tokens": tokens,
        "target_tokens": targets,
        **flops,
        "session_tokens": session_tokens,  # this session's (a resumed run's D counts the earlier ones)
        "train_seconds": seconds,
        "achieved_gflops": achieved,
        "peak_gflops": peak["gflops"] * devices,
        "peak_how": peak["how"],
        "fraction_of_peak": achieved / (peak["gflops"] * devices) if peak["gflops"] else None,
        "devices": devices,
        "precision": precision,
        "signature": "C_train=6·N_non-embedding·D|C_done=(4N+2N_trainable[+2N ckpt])·D|D=non-pad tokens",
    }


def describe(c: dict) -> str:
    """One line: tokens, 6ND, achieved rate and the share of peak."""
    share = f", {100 * c['fraction_of_peak']:.0f}% of the measured {c['peak_gflops']:.0f} GFLOP/s peak" if c.get(
        "fraction_of_peak") is not None else ""  # fmt: skip
    return (
        f"D = {c['tokens']:,} tokens, N = {c['params']['non_embedding'] / 1e6:.1f}M non-embedding "
        f"({c['params']['trainable'] / 1e6:.2f}M trainable): C_train = 6ND = {c['c_train_6nd']:.3g} FLOPs, "
        f"computed {c['c_done']:.3g} at {c['achieved_gflops']:.1f} GFLOP/s{share}"
    )
