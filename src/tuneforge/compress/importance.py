"""How much each prunable unit matters — query heads, MLP channels, decoder layers — measured three
ways (the third, learned gates, is in `gates.py`):

- `magnitude`: the summed |weight| of everything a unit owns (a head's q rows and o columns, plus its
  group's k and v rows at group level; a channel's gate and up rows and down column). No data.
- `taylor` (seed 001, eqs. 25–26): E[|∂L/∂h · h|] over the calibration tokens, h a head's output, a
  channel's activation or a layer's residual update — the first-order change in loss if the unit's output
  were removed (Michel et al., 2019, for heads; Molchanov et al., 2019, for channels). Measured by
  multiplying each unit's output by a gate of ones per token and reading the gate's gradient.
- layers under `magnitude` use the forward-only block influence 1 − cos(h_in, h_out) (Men et al., 2024,
  ShortGPT) on the calibration tokens: a layer that barely turns its input matters little.

The calibration set decides `taylor` and the layer scores: a domain's examples make the scores of
that domain (domain-adaptive pruning)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tuneforge.compress.prune import blocks, head_dim
from tuneforge.tokenisation import IGNORE, model_inputs


@dataclass
class Scores:
    heads: torch.Tensor  # (L, n_q)
    channels: torch.Tensor  # (L, d_ff)
    layers: torch.Tensor  # (L,)
    kv: torch.Tensor | None = None  # (L, n_kv) importance of a KV head beyond its query heads'


def magnitude_scores(model) -> Scores:
    """Summed |w| of each unit's weights (no calibration data)."""
    cfg = model.config
    hd, n_q, n_kv = head_dim(cfg), cfg.num_attention_heads, cfg.num_key_value_heads
    heads, kv, channels = [], [], []
    with torch.no_grad():
        for layer in blocks(model):
            a, m = layer.self_attn, layer.mlp
            q = a.q_proj.weight.abs().float().reshape(n_q, hd, -1).sum((1, 2))
            o = a.o_proj.weight.abs().float().reshape(-1, n_q, hd).sum((0, 2))
            k = a.k_proj.weight.abs().float().reshape(n_kv, hd, -1).sum((1, 2))
            v = a.v_proj.weight.abs().float().reshape(n_kv, hd, -1).sum((1, 2))
            heads.append(q + o)
            kv.append(k + v)
            g, u = m.gate_proj.weight.abs().float().sum(1), m.up_proj.weight.abs().float().sum(1)
            channels.append(g + u + m.down_proj.weight.abs().float().sum(0))
    n = len(heads)
    return Scores(torch.stack(heads), torch.stack(channels), torch.zeros(n), torch.stack(kv))


def _target_loss(model, batch: dict) -> torch.Tensor:
    """Summed cross-entropy over the batch's target tokens."""
    logits = model(**model_inputs(batch)).logits[:, :-1]  # (B, T-1, V)
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")


@contextmanager
def unit_gates(model, make_gate: Callable[[str, int, torch.Tensor], torch.Tensor | None]):
    """Multiply each head's output (o_proj input), each MLP channel (down_proj input) and each layer's
    residual update by `make_gate(kind, layer, activation)` (None: leave that one alone), broadcast over
    the unit's features; the hooks are removed on exit. The one mechanism behind Taylor scores and
    learned gates."""
    hd, handles = head_dim(model.config), []

    def heads_hook(i):
        def pre(_mod, args):
            (x,) = args  # (B, T, n_q·hd)
            gate = make_gate("heads", i, x)  # (B, T, n_q) or (n_q,)
            return None if gate is None else (x * gate.repeat_interleave(hd, dim=-1),)

        return pre

    def channel_hook(i):
        def pre(_mod, args):
            (x,) = args  # (B, T, d_ff)
            gate = make_gate("channels", i, x)  # (B, T, d_ff) or (d_ff,)
            return None if gate is None else (x * gate,)

        return pre

    def layer_hook(i):
        def post(_mod, args, output):
            h_in = args[0]  # (B, T, d)
            h_out = output[0] if isinstance(output, tuple) else output
            gate = make_gate("layers", i, h_in)  # (B, T, 1) or (1,)
            if gate is None:
                return None
            gated = h_in + gate * (h_out - h_in)
            return (gated, *output[1:]) if isinstance(output, tuple) else gated

        return post

    for i, layer in enumerate(blocks(model)):
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(heads_hook(i)))
        handles.append(layer.mlp.down_proj.register_forward_pre_hook(channel_hook(i)))
        handles.append(layer.register_forward_hook(layer_hook(i)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def taylor_scores(model, batches: list[dict]) -> Scores:
    """E[|∂L/∂h · h|] per unit over the calibration batches' real tokens (module docstring)."""
    cfg = model.config
    n, n_q = cfg.num_hidden_layers, cfg.num_attention_heads
    acc = {
        "heads": torch.zeros(n, n_q),
        "channels": torch.zeros(n, cfg.intermediate_size),
        "layers": torch.zeros(n, 1),
    }
    width = {"heads": n_q, "channels": cfg.intermediate_size, "layers": 1}
    gates: dict[tuple[str, int], torch.Tensor] = {}

    def make_gate(kind: str, i: int, x: torch.Tensor) -> torch.Tensor:
        g = torch.ones(*x.shape[:2], width[kind], dtype=x.dtype, device=x.device, requires_grad=True)
        gates[(kind, i)] = g
        return g

    was_training = model.training
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    tokens = 0
    try:
        with unit_gates(model, make_gate):
            for batch in tqdm(batches, desc="importance (taylor)", leave=False):
                gates.clear()
                loss = _target_loss(model, batch)
                keys = list(gates)
                grads = torch.autograd.grad(loss, [gates[k] for k in keys])
                real = batch["attention_mask"].bool()  # (B, T)
                for (kind, i), grad in zip(keys, grads, strict=True):
                    acc[kind][i] += grad.abs().float()[real].sum(0).cpu()  # |∂L/∂gate| = |∂L/∂h · h| per token
                tokens += int(real.sum())
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    t = max(tokens, 1)
    return Scores(acc["heads"] / t, acc["channels"] / t, acc["layers"][:, 0] / t)


@torch.no_grad()
def block_influence(model, batches: list[dict]) -> torch.Tensor:
    """(L,) mean 1 − cos(h_in, h_out) of each decoder layer over the batches' real tokens (forward only)."""
    layers = blocks(model)
    total, tokens = torch.zeros(len(layers)), 0
    mask: list[torch.Tensor] = []

    def hook(i):
        def post(_mod, args, output):
            h_out = output[0] if isinstance(output, tuple) else output
            cos = F.cosine_similarity(args[0].float(), h_out.float(), dim=-1)  # (B, T)
            total[i] += (1 - cos)[mask[0]].sum().cpu()

        return post

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="importance (block influence)", leave=False):
            mask[:] = [batch["attention_mask"].bool()]
            model(**model_inputs(batch))
            tokens += int(mask[0].sum())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total / max(tokens, 1)
