"""FSDP: parameters, gradients and optimizer moments sharded across processes (torch's FSDP2,
`fully_shard`), started the usual way — `accelerate launch --config_file configs/accelerate/fsdp.yaml`.

Who shards: on GPUs accelerate does, in `accelerator.prepare` (its FSDP2 plugin: one shard group
per transformer block, then the root). accelerate 1.16 only routes FSDP to accelerators; on CPU it
reads the same config, sets `ACCELERATE_USE_FSDP=true` and then runs plain DDP without a word. So on
CPU `shard_model` applies the same torch `fully_shard` to the same groups (each block of
`transformer_blocks`, then the root) — a few lines of torch, not a re-implementation of FSDP — which
is what lets the 2-process CPU tests run the loop, the clipping and the checkpoints on sharded
(DTensor) parameters.

Checkpoints and the saved adapter stay pickle-free (`checkpoint.py`): the trainable parameters and
the optimizer state are gathered into full, name-keyed tensors with torch's
`distributed.checkpoint.state_dict` API (the one accelerate's FSDP2 saving uses) and written by the
main process. accelerate's `save_state` would write the optimizer with `torch.save` and a sharded
checkpoint with a pickled `.metadata`, which tuneforge refuses to load. Gathering costs memory
only for what trains: megabytes for an adapter, the whole model for full fine-tuning.
"""

from __future__ import annotations

import os
from typing import Any

from tuneforge.train.compile import transformer_blocks


def fsdp_requested() -> bool:
    """True when launched with an FSDP accelerate config (`distributed_type: FSDP`)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def shard_model(model) -> int:
    """`fully_shard` every transformer block, then the root (what accelerate's FSDP2
    TRANSFORMER_BASED_WRAP does); in place. Call before building the optimizer: sharding replaces
    the parameters with DTensors. Returns the number of shard groups."""
    from torch.distributed.fsdp import fully_shard

    blocks = transformer_blocks(model)
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    return len(blocks) + 1


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def trainable_state(model, optimizer=None) -> tuple[dict[str, Any], dict | None]:
    """(trainable parameters by name, optimizer state keyed by parameter name), full tensors on
    CPU. A collective under FSDP: every process calls it; the main process gets the tensors (the
    others may get empty dicts)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper → the torch optimizer
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    state = {n: t for n, t in get_model_state_dict(model, options=options).items() if n in names}
    return state, get_optimizer_state_dict(model, optimizer, options=options) if optimizer is not None else None


def load_trainable_state(model, tensors: dict[str, Any], optimizer=None, optim_state=None) -> None:
    """Inverse of `trainable_state`: every process passes the full tensors; each keeps its shard."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    optimizer = getattr(optimizer, "optimizer", optimizer)
    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, tensors, options=options)
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, optim_state, options=options)


def full_state_dict(model) -> dict[str, Any] | None:
    """The whole state dict of a sharded model, gathered on the main process (None elsewhere and
    for a model that is not sharded, which saves its own)."""
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
