"""Supervised fine-tuning objective.

The objective returns the *sum* of token losses; the loop divides by the number of target tokens
over the whole accumulation window (L_SFT = -(1/Σ|y|) ΣΣ log P(y_t | x, y_<t)). Logits are
projected only at positions that predict a target (prompt and padding rows of the vocabulary
projection are never computed). The data path (encoding, masks, collation, packing) is
`tuneforge.tokenisation`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.errors import ConfigError
from tuneforge.tokenisation import IGNORE, model_inputs
from tuneforge.train.adapters import is_prompt_learning


def sft_loss(model, batch: dict, pool_prompt: bool = False, per_row: bool = False):
    """Sum of next-token cross-entropy over target tokens (the loop normalises). With
    `pool_prompt`, also return the mean last-layer hidden state over the prompt (non-target) tokens
    — the batch's instruction representation, from the same forward pass. With `per_row`, the
    sums per batch row, shape (B,) (per example, unless rows are packed)."""
    labels = batch["labels"]
    targets = labels[:, 1:] != IGNORE  # (B, T-1): position t predicts token t+1
    keep = F.pad(targets, (0, 1), value=False)  # (B, T)
    extra = {"output_hidden_states": True} if pool_prompt else {}
    if is_prompt_learning(model):  # PEFT prepends virtual tokens: logits are (B, n_virtual + T, V)
        if "position_ids" in batch:
            raise ConfigError(
                "packing cannot be combined with prompt/prefix/p-tuning (their virtual tokens "
                "need a padding mask). Set train.packing=false"
            )
        out = model(**model_inputs(batch), **extra)
    else:
        out = model(**model_inputs(batch), logits_to_keep=keep, **extra)
    logits = out.logits
    if logits.dim() == 3:  # full logits (prompt learning, or a version ignoring a boolean logits_to_keep)
        logits = logits[:, -labels.size(1) :][keep]
    if per_row:  # the N target positions in row-major order: row of each = nonzero()[:, 0]
        token = F.cross_entropy(logits.float(), labels[:, 1:][targets], reduction="none")  # (N,)
        return torch.zeros(labels.size(0), device=token.device).index_add_(0, targets.nonzero()[:, 0], token)
    loss = F.cross_entropy(logits.float(), labels[:, 1:][targets], reduction="sum")  # logits: (N, V)
    if not pool_prompt:
        return loss
    hidden = out.hidden_states[-1][:, -labels.size(1) :].float()  # (B, T, H)
    prompt = (labels == IGNORE) & batch.get("attention_mask", torch.ones_like(labels)).bool()
    pooled = (hidden * prompt.unsqueeze(-1)).sum((0, 1)) / prompt.sum().clamp_min(1)
    return loss, pooled
