"""Preference optimisation on pairs as objectives for the one loop: DPO, and (`preference_objective`)
IPO, SimPO and ORPO from `preference_losses` — the same pair encoding, batches and metrics.

For a pair with policy log-probs (π_c, π_r) and reference log-probs (ρ_c, ρ_r) of the chosen and
rejected responses (summed over response tokens), with Δ = (π_c − π_r) − (ρ_c − ρ_r):

    L = −(1 − ε) · log σ(β·Δ) − ε · log σ(−β·Δ)        (ε = label smoothing, conservative DPO)

The loop normalises by the number of pairs. The reference is, in order of preference: log-probs
precomputed into the batch (`ref_logps`), a given reference model, or — for a PEFT model — the same
model with its adapter disabled (no second copy of the weights).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tuneforge.data.seed import load_pairs
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message, PreferencePair
from tuneforge.tokenisation import IGNORE, Encoded, collate, encode_example, model_inputs
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.loop import Objective, ObjectiveSetup
from tuneforge.train.preference_losses import ipo_term, orpo_term, simpo_term

PAIR_LOSSES = ("dpo", "ipo", "simpo", "orpo")
REFERENCE_FREE = ("simpo", "orpo")  # the policy's own length-normalised log-probs are the reward


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


def sequence_logps(model, batch: dict, average: bool = False) -> torch.Tensor:
    """Sum (or, with `average`, mean) of log-probabilities of each row's target tokens: (rows,)."""
    labels = batch["labels"]
    targets = labels[:, 1:] != IGNORE
    logits = model(**model_inputs(batch)).logits[:, -labels.size(1) : -1].float()  # (R, T-1, V)
    logp = torch.gather(logits.log_softmax(-1), 2, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (logp * targets).sum(-1)
    return total / targets.sum(-1).clamp(min=1) if average else total


@torch.no_grad()
def under_reference(model, ref_model, compute):
    """`compute(m)` with m the reference policy: `ref_model` when given, else the PEFT `model` with its
    adapter disabled (no second copy of the weights). DPO and its relatives, KTO and GRPO use it."""
    if ref_model is not None:
        return compute(ref_model)
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            return compute(model)
    raise ConfigError(
        "this objective needs a reference: precomputed log-probs, a reference model, or a "
        "PEFT adapter (the base model then serves as the reference)"
    )


def reference_logps(model, batch: dict, ref_model=None, average: bool = False) -> torch.Tensor:
    if "ref_logps" in batch and not average:
        return batch["ref_logps"]
    return under_reference(model, ref_model, lambda m: sequence_logps(m, batch, average))


def dpo_objective(beta: float = 0.1, label_smoothing: float = 0.0, ref_model=None) -> Objective:
    """An Objective computing the summed DPO loss of a `collate_pairs` batch."""
    return preference_objective("dpo", beta, label_smoothing=label_smoothing, ref_model=ref_model)


def pair_losses(name: str, model, batch: dict, beta: float, gamma: float = 0.5, label_smoothing: float = 0.0,
                ref_model=None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(per-pair losses (P,), implicit reward margins (P,)) of a `collate_pairs` batch under `name`.
    DPO works on summed log-probs; IPO, SimPO and ORPO on length-averaged ones (as TRL does)."""
    p, average = int(batch["pairs"]), name != "dpo"
    policy = sequence_logps(model, batch, average)
    if name in REFERENCE_FREE:
        margin = policy[:p] - policy[p:]
        losses = simpo_term(policy[:p], policy[p:], beta, gamma) if name == "simpo" else orpo_term(
            policy[:p], policy[p:], beta)  # fmt: skip
        return losses, margin
    ref = reference_logps(model, batch, ref_model, average)
    margin = (policy[:p] - policy[p:]) - (ref[:p] - ref[p:])
    if name == "ipo":
        return ipo_term(policy[:p], policy[p:], ref[:p], ref[p:], beta), margin
    return dpo_term(policy[:p], policy[p:], ref[:p], ref[p:], beta, label_smoothing), margin


def preference_objective(
    name: str, beta: float = 0.1, gamma: float = 0.5, label_smoothing: float = 0.0, ref_model=None
) -> Objective:
    """An Objective summing the `name` loss (dpo | ipo | simpo | orpo) over a `collate_pairs` batch;
    the loop normalises by the number of pairs."""
    if name not in PAIR_LOSSES:
        raise ConfigError(f"preference loss '{name}' unknown. Use one of {', '.join(PAIR_LOSSES)}")

    def loss(model, batch):
        return pair_losses(name, model, batch, beta, gamma, label_smoothing, ref_model)[0].sum()

    return Objective(name, loss, lambda batch: int(batch["pairs"]))


def pair_eval_batches(pairs: list[PreferencePair], tokenizer, max_length: int = 1024) -> list[dict]:
    """Fixed `collate_pairs` batches of 8 pairs, for metrics."""
    held = [encode_pair(p, tokenizer, max_length) for p in pairs]
    return [collate_pairs(held[i : i + 8], tokenizer.pad_token_id) for i in range(0, len(held), 8)]


def shuffled_batches(
    n: int, batch_size: int, seed: int = 0, num_shards: int = 1, shard: int = 0
) -> Iterator[list[int]]:
    """Endless index batches over n items, reshuffled every epoch; shard k of n takes every n-th batch."""
    epoch, index = 0, 0
    while True:
        order = list(range(n))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        for s in range(0, len(order), batch_size):
            if index % num_shards == shard:
                yield order[s : s + batch_size]
            index += 1
        epoch += 1


def pair_batches(
    pairs: list[tuple[Encoded, Encoded]],
    batch_size: int,
    pad_id: int,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> Iterator[dict]:
    """Endless `collate_pairs` batches, reshuffled every epoch; shard k of n takes every n-th batch."""
    for idx in shuffled_batches(len(pairs), batch_size, seed, num_shards, shard):
        yield collate_pairs([pairs[i] for i in idx], pad_id)


@torch.no_grad()
def dpo_metrics(
    model, batches: list[dict], beta: float = 0.1, ref_model=None, name: str = "dpo", gamma: float = 0.5
) -> dict:
    """Mean loss, reward accuracy (share of pairs whose implicit reward margin is > 0) and the mean
    margin (β·Δ for DPO; the log-prob margin for the others)."""
    was_training = model.training
    model.eval()
    losses, margins = [], []
    for b in batches:
        b = {k: v.to(next(model.parameters()).device) for k, v in b.items()}
        loss, margin = pair_losses(name, model, b, beta, gamma, ref_model=ref_model)
        losses.append(loss)
        margins.append(margin)
    model.train(was_training)
    margin = torch.cat(margins).float()
    return {
        "loss": float(torch.cat(losses).float().mean()),
        "reward_accuracy": float((margin > 0).float().mean()),
        "reward_margin": float((beta if name == "dpo" else 1.0) * margin.mean()),
        "pairs": int(margin.numel()),
    }


def dpo_setup(
    pairs: list[PreferencePair],
    held_out: list[PreferencePair],
    tokenizer,
    ref_model=None,
    *,
    name: str = "dpo",
    beta: float = 0.1,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
    max_length: int = 1024,
    batch_size: int = 8,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> ObjectiveSetup:
    """A pair loss (`name`: dpo, ipo, simpo, orpo) in the one loop: the loss, the shuffled pair batches
    of this process's shard, and the preference metrics on `held_out` after training (for DPO and
    IPO the untrained policy equals its reference, Δ = 0: not measured; the reference-free losses
    are measured before too)."""
    encoded = [encode_pair(p, tokenizer, max_length) for p in pairs]
    eval_batches = pair_eval_batches(held_out, tokenizer, max_length)
    evaluate = lambda m: dpo_metrics(m, eval_batches, beta, ref_model, name, gamma)  # noqa: E731
    return ObjectiveSetup(
        preference_objective(name, beta, gamma, label_smoothing, ref_model),
        pair_batches(encoded, batch_size, tokenizer.pad_token_id, seed, num_shards=num_shards, shard=shard),
        evaluate,
        None,
    )


BETA_HELP = {
    "dpo": "β, the strength of the KL leash to the reference",
    "ipo": "β; the target log-ratio margin is 1/(2β)",
    "simpo": "β, the reward scale (the paper's 2.0-2.5)",
    "orpo": "λ, the weight of the odds-ratio term beside the SFT loss",
}


def _beta(name: str):
    return field(default=0.1, metadata={"help": BETA_HELP[name], "gt": 0})


@dataclass
class DPOOptions(ObjectiveOptions):
    beta: float = _beta("dpo")
    label_smoothing: float = field(
        default=0.0, metadata={"help": "ε, the share of preference labels assumed flipped", "ge": 0, "lt": 0.5}
    )


@dataclass
class IPOOptions(ObjectiveOptions):
    beta: float = _beta("ipo")


@dataclass
class SimPOOptions(ObjectiveOptions):
    beta: float = _beta("simpo")
    gamma: float = field(default=0.5, metadata={"help": "γ, the target reward margin", "ge": 0})


@dataclass
class ORPOOptions(ObjectiveOptions):
    beta: float = _beta("orpo")


def build(ctx: BuildContext) -> ObjectiveSetup:
    """dpo, ipo, simpo or orpo on one file of preference pairs; preference metrics on data.eval
    (or the training pairs) — before training too for the reference-free losses."""
    o, t = ctx.options, ctx.train
    assert isinstance(o, (DPOOptions, IPOOptions, SimPOOptions, ORPOOptions))
    eval_source = ctx.eval_pairs_source()
    setup = dpo_setup(
        ctx.training_pairs(),
        load_pairs(eval_source),
        ctx.tok,
        ctx.frozen,
        name=o.name,
        beta=o.beta,
        gamma=getattr(o, "gamma", 0.5),
        label_smoothing=getattr(o, "label_smoothing", 0.0),
        max_length=t.max_length,
        batch_size=t.batch_size,
        seed=t.seed,
        **ctx.shard,
    )
    evaluate = lambda m: setup.evaluate(m) | {"on": eval_source}  # noqa: E731
    # reference-free losses can be measured on the untrained policy; for the others it is its own reference
    before = evaluate(ctx.model) if o.name in REFERENCE_FREE else None
    return dataclasses.replace(setup, evaluate=evaluate, before=before)
