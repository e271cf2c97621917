"""Structured pruning of a llama-architecture causal LM: whole query heads (the same number from
every kept key/value group), whole key/value groups, MLP channels and whole decoder layers are cut
out of the weights, so the result is a smaller model of the same architecture that
`AutoModelForCausalLM.from_pretrained` loads — smaller shapes, no masks left in the weights.

A `PrunePlan` says what each layer keeps; `apply_masks` zeroes exactly what the plan removes (the
masked model computes what the pruned one does, which is what the tests compare), and `prune_model`
slices it out. Which units a plan keeps comes from importance scores (`importance.py`, `gates.py`)
through `plan_from_scores`.

Written by hand rather than with torch-pruning: torch-pruning traces the module graph and prunes each
layer by its own amount, but a transformers config holds one `intermediate_size`, one head count and one
key/value head count for every layer, so a ragged model does not load back with `from_pretrained`. What
is left once the counts are uniform — slicing rows and columns of the seven linear maps of a block — is
short, and keeping it here lets the grouped-query rule (every kept KV head keeps the same number of query
heads, in order) be stated and tested in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tuneforge.errors import ConfigError

ARCHITECTURES = ("llama", "mistral", "qwen2")  # q/k/v/o + gate/up/down blocks, RMSNorm, one head_dim


@dataclass
class PrunePlan:
    """What survives, in original indices. `heads[l]` are the kept query heads of layer l, grouped by
    their key/value head in the order of `kv_heads[l]`; `channels[l]` the kept MLP channels; `layers` the
    kept decoder layers (the lists above are indexed by original layer, dropped ones included)."""

    heads: list[list[int]]
    kv_heads: list[list[int]]
    channels: list[list[int]]
    layers: list[int]
    notes: list[str] = field(default_factory=list)  # where a target could only be met approximately

    def to_dict(self) -> dict:
        return {
            "layers": self.layers,
            "kv_heads": [self.kv_heads[i] for i in self.layers],
            "heads": [self.heads[i] for i in self.layers],
            "channels_kept": [len(self.channels[i]) for i in self.layers],
            "notes": self.notes,
        }


def blocks(model) -> list:
    """The decoder layers of a llama-architecture causal LM (checked)."""
    cfg = model.config
    if cfg.model_type not in ARCHITECTURES:
        raise ConfigError(
            f"structured pruning handles {', '.join(ARCHITECTURES)} models (q/k/v/o and gate/up/down "
            f"blocks); this one is '{cfg.model_type}'"
        )
    return list(model.model.layers)


def head_dim(cfg) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def full_plan(model) -> PrunePlan:
    """The plan that keeps everything."""
    cfg = model.config
    n, n_q, n_kv = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
    return PrunePlan(
        heads=[list(range(n_q)) for _ in range(n)],
        kv_heads=[list(range(n_kv)) for _ in range(n)],
        channels=[list(range(cfg.intermediate_size)) for _ in range(n)],
        layers=list(range(n)),
    )


def _nearest_count(total: int, sparsity: float) -> int:
    return max(1, min(total, round(total * (1 - sparsity))))


def head_shape(n_q: int, n_kv: int, sparsity: float, group_scores, hidden: int | None) -> tuple[int, int, list[str]]:
    """(kept KV heads, kept query heads per KV head) whose product is nearest to the target count of
    query heads; among equally near shapes, the one keeping the most importance (`group_scores(kv, g)`).
    A transformers config needs the same shape in every layer, and llama's config validation wants
    the hidden size to be a multiple of the head count (`hidden`; None where the config does not), so a
    target is met to the nearest such shape."""
    group = n_q // n_kv
    if sparsity == 0:
        return n_kv, group, []
    target = n_q * (1 - sparsity)
    shapes = [
        (kv, g) for kv in range(1, n_kv + 1) for g in range(1, group + 1) if hidden is None or hidden % (kv * g) == 0
    ]
    best_gap = min(abs(kv * g - target) for kv, g in shapes)
    near = [s for s in shapes if abs(s[0] * s[1] - target) == best_gap]
    kv, g = max(near, key=lambda s: (group_scores(*s), s[0]))
    notes = []
    if kv * g != target:
        notes.append(
            f"heads: {n_q} query heads in {n_kv} groups of {group}; {100 * sparsity:g}% asks for {target:g}, "
            f"kept {kv * g} ({kv} groups × {g}), the nearest shape every layer can share "
            f"(and a divisor of hidden size {hidden})"
        )
    return kv, g, notes


def plan_from_scores(
    model,
    head_scores: torch.Tensor,  # (L, n_q) importance of each query head
    channel_scores: torch.Tensor,  # (L, d_ff) importance of each MLP channel
    layer_scores: torch.Tensor,  # (L,) importance of each decoder layer
    heads: float = 0.0,
    mlp: float = 0.0,
    layers: float = 0.0,
    kv_scores: torch.Tensor | None = None,  # (L, n_kv) extra importance of each key/value head
) -> PrunePlan:
    """Keep the most important units at the given sparsities (shares removed): first whole layers,
    then in each kept layer the same number of query heads per kept KV group and of MLP channels."""
    for name, s in (("heads", heads), ("mlp", mlp), ("layers", layers)):
        if not 0 <= s < 1:
            raise ConfigError(f"prune.{name}={s}: a sparsity is the share removed, 0 ≤ s < 1")
    cfg = model.config
    n, n_q, n_kv = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
    group = n_q // n_kv
    plan = full_plan(model)
    n_layers = _nearest_count(n, layers)
    plan.layers = sorted(torch.argsort(layer_scores, descending=True)[:n_layers].tolist())
    # (L, n_kv, group): query heads by their KV head, best first within each group
    by_group = head_scores.reshape(n, n_kv, group)
    order = torch.argsort(by_group, dim=-1, descending=True)
    extra = kv_scores if kv_scores is not None else torch.zeros(n, n_kv)

    def group_value(g: int) -> torch.Tensor:  # (L, n_kv): a group's score when it keeps its g best heads
        return torch.gather(by_group, -1, order[..., :g]).sum(-1) + extra

    def kept_total(kv: int, g: int) -> float:
        return float(sum(group_value(g)[i].topk(kv).values.sum() for i in plan.layers))

    divides = cfg.hidden_size if cfg.model_type == "llama" else None  # LlamaConfig validates hidden % heads
    kv, g, plan.notes = head_shape(n_q, n_kv, heads, kept_total, divides)
    n_ch = _nearest_count(cfg.intermediate_size, mlp)
    for i in range(n):
        groups = sorted(group_value(g)[i].topk(kv).indices.tolist())
        plan.kv_heads[i] = groups
        plan.heads[i] = [k * group + j for k in groups for j in sorted(order[i, k, :g].tolist())]
        plan.channels[i] = sorted(channel_scores[i].topk(n_ch).indices.tolist())
    return plan


@torch.no_grad()
def apply_masks(model, plan: PrunePlan) -> None:
    """Zero, in place, exactly what `plan` removes: the output columns of removed query heads and MLP
    channels, and both output maps of a removed layer (its residual branch then adds nothing, so the
    layer passes its input through; their biases too, where a model has them). Key/value heads need no
    mask: their query heads are gone."""
    hd = head_dim(model.config)
    for i, layer in enumerate(blocks(model)):
        o, down = layer.self_attn.o_proj.weight, layer.mlp.down_proj.weight  # (d, n_q·hd), (d, d_ff)
        if i not in plan.layers:
            for linear in (layer.self_attn.o_proj, layer.mlp.down_proj):
                linear.weight.zero_()
                if linear.bias is not None:
                    linear.bias.zero_()
            continue
        keep_q = torch.zeros(o.shape[1], dtype=torch.bool)
        for h in plan.heads[i]:
            keep_q[h * hd : (h + 1) * hd] = True
        o[:, ~keep_q] = 0
        keep_c = torch.zeros(down.shape[1], dtype=torch.bool)
        keep_c[plan.channels[i]] = True
        down[:, ~keep_c] = 0


def _rows(linear: torch.nn.Linear, idx: torch.Tensor) -> None:
    linear.weight = torch.nn.Parameter(linear.weight.data[idx].clone())
    if linear.bias is not None:
        linear.bias = torch.nn.Parameter(linear.bias.data[idx].clone())
    linear.out_features = len(idx)


def _cols(linear: torch.nn.Linear, idx: torch.Tensor) -> None:
    linear.weight = torch.nn.Parameter(linear.weight.data[:, idx].clone())
    linear.in_features = len(idx)


def _unit_rows(units: list[int], size: int) -> torch.Tensor:
    return torch.tensor([u * size + j for u in units for j in range(size)], dtype=torch.long)


@torch.no_grad()
def prune_model(model, plan: PrunePlan):
    """Cut out, in place, what `plan` removes and update the config so `save_pretrained` writes a model
    that `from_pretrained` loads with the new shapes. Returns the model."""
    cfg = model.config
    hd = head_dim(cfg)
    kept = [blocks(model)[i] for i in plan.layers]
    counts = {(len(plan.heads[i]), len(plan.kv_heads[i]), len(plan.channels[i])) for i in plan.layers}
    if len(counts) != 1:
        raise ConfigError(f"a plan must keep the same counts in every layer (a config holds one); got {counts}")
    (n_q, n_kv, d_ff) = counts.pop()
    for new_idx, (i, layer) in enumerate(zip(plan.layers, kept, strict=True)):
        attn, mlp = layer.self_attn, layer.mlp
        q_rows, kv_rows = _unit_rows(plan.heads[i], hd), _unit_rows(plan.kv_heads[i], hd)
        _rows(attn.q_proj, q_rows)
        _rows(attn.k_proj, kv_rows)
        _rows(attn.v_proj, kv_rows)
        _cols(attn.o_proj, q_rows)
        attn.num_key_value_groups = n_q // n_kv
        attn.layer_idx = new_idx  # the KV cache is indexed by position in the stack
        channels = torch.tensor(plan.channels[i], dtype=torch.long)
        _rows(mlp.gate_proj, channels)
        _rows(mlp.up_proj, channels)
        _cols(mlp.down_proj, channels)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = d_ff
    model.model.layers = torch.nn.ModuleList(kept)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = [cfg.layer_types[i] for i in plan.layers]
    cfg.head_dim = hd  # no longer hidden_size // heads once heads are removed
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size = n_q, n_kv, d_ff
    cfg.num_hidden_layers = len(plan.layers)
    return model


def count_parameters(model) -> int:
    """Distinct parameters (tied embeddings once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
