"""Direct Preference Optimisation as an objective for the one loop.

For a pair with policy log-probs (π_c, π_r) and reference log-probs (ρ_c, ρ_r) of the chosen and
rejected responses (summed over response tokens), with Δ = (π_c − π_r) − (ρ_c − ρ_r):

    L = −(1 − ε) · log σ(β·Δ) − ε · log σ(−β·Δ)        (ε = label smoothing, conservative DPO)

The loop normalises by the number of pairs. The reference is, in order of preference: log-probs
precomputed into the batch (`ref_logps`), a given reference model, or — for a PEFT model — the same
model with its adapter disabled (no second copy of the weights).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message, PreferencePair
from tuneforge.tokenisation import IGNORE, Encoded, collate, encode_example, model_inputs
from tuneforge.train.loop import Objective, ObjectiveSetup


def dpo_term(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Per-pair DPO loss (tensors of shape (P,)); see the module docstring."""
    delta = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    return -(1 - label_smoothing) * F.logsigmoid(beta * delta) - label_smoothing * F.logsigmoid(-beta * delta)


def encode_pair(pair: PreferencePair, tokenizer, max_length: int = 1024) -> tuple[Encoded, Encoded]:
    """Tokenise chosen and rejected conversations; targets are the final response only."""

    def conv(answer: str) -> Example:
        return Example(messages=[*pair.prompt, Message("assistant", answer)], id=pair.id)

    return (
        encode_example(conv(pair.chosen), tokenizer, max_length, mask="last"),
        encode_example(conv(pair.rejected), tokenizer, max_length, mask="last"),
    )


def collate_pairs(pairs: list[tuple[Encoded, Encoded]], pad_id: int) -> dict:
    """(2P, T) batch: rows 0..P-1 chosen, P..2P-1 rejected; `pairs` = P."""
    batch = collate([c for c, _ in pairs] + [r for _, r in pairs], pad_id)
    batch["pairs"] = torch.tensor(len(pairs))
    return batch


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """Sum of log-probabilities of each row's target tokens: (rows,)."""
    labels = batch["labels"]
    targets = labels[:, 1:] != IGNORE
    logits = model(**model_inputs(batch)).logits[:, -labels.size(1) : -1].float()  # (R, T-1, V)
    logp = torch.gather(logits.log_softmax(-1), 2, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * targets).sum(-1)


@torch.no_grad()
def _reference_logps(model, batch: dict, ref_model=None) -> torch.Tensor:
    if "ref_logps" in batch:
        return batch["ref_logps"]
    if ref_model is not None:
        return sequence_logps(ref_model, batch)
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            return sequence_logps(model, batch)
    raise ConfigError(
        "DPO needs a reference: precomputed ref_logps, a reference model, or a "
        "PEFT adapter (the base model then serves as the reference)"
    )


def dpo_objective(beta: float = 0.1, label_smoothing: float = 0.0, ref_model=None) -> Objective:
    """An Objective computing the summed DPO loss of a `collate_pairs` batch."""

    def loss(model, batch):
        p = int(batch["pairs"])
        policy = sequence_logps(model, batch)
        ref = _reference_logps(model, batch, ref_model)
        return dpo_term(policy[:p], policy[p:], ref[:p], ref[p:], beta, label_smoothing).sum()

    return Objective("dpo", loss, lambda batch: int(batch["pairs"]))


def pair_batches(
    pairs: list[tuple[Encoded, Encoded]],
    batch_size: int,
    pad_id: int,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> Iterator[dict]:
    """Endless `collate_pairs` batches, reshuffled every epoch; shard k of n takes every n-th batch."""
    epoch, index = 0, 0
    while True:
        order = list(range(len(pairs)))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        for s in range(0, len(order), batch_size):
            if index % num_shards == shard:
                yield collate_pairs([pairs[i] for i in order[s : s + batch_size]], pad_id)
            index += 1
        epoch += 1


@torch.no_grad()
def dpo_metrics(model, batches: list[dict], beta: float = 0.1, ref_model=None) -> dict:
    """Mean DPO loss, reward accuracy (share of pairs with Δ > 0) and mean reward margin β·Δ."""
    was_training = model.training
    model.eval()
    deltas = []
    for b in batches:
        b = {k: v.to(next(model.parameters()).device) for k, v in b.items()}
        p = int(b["pairs"])
        policy = sequence_logps(model, b)
        ref = _reference_logps(model, b, ref_model)
        deltas.append((policy[:p] - policy[p:]) - (ref[:p] - ref[p:]))
    model.train(was_training)
    delta = torch.cat(deltas).float()
    zero = torch.zeros_like(delta)
    return {
        "loss": float(dpo_term(delta, zero, zero, zero, beta).mean()),
        "reward_accuracy": float((delta > 0).float().mean()),
        "reward_margin": float(beta * delta.mean()),
        "pairs": int(delta.numel()),
    }


def dpo_setup(
    pairs: list[PreferencePair],
    held_out: list[PreferencePair],
    tokenizer,
    ref_model=None,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    max_length: int = 1024,
    batch_size: int = 8,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> ObjectiveSetup:
    """DPO in the one loop: the loss, the shuffled pair batches of this process's shard, and the
    preference metrics on `held_out` after training (before training the policy equals its
    reference, so Δ = 0 for every pair: not measured)."""
    encoded = [encode_pair(p, tokenizer, max_length) for p in pairs]
    held = [encode_pair(p, tokenizer, max_length) for p in held_out]
    eval_batches = [collate_pairs(held[i : i + 8], tokenizer.pad_token_id) for i in range(0, len(held), 8)]
    return ObjectiveSetup(
        dpo_objective(beta, label_smoothing, ref_model),
        pair_batches(encoded, batch_size, tokenizer.pad_token_id, seed, num_shards=num_shards, shard=shard),
        lambda m: dpo_metrics(m, eval_batches, beta, ref_model),
        None,
    )
