"""KTO (Ethayarajh et al. 2024) as an objective for the one loop: unpaired feedback — each answer is
only marked desirable or undesirable (`preference_losses.kto_term`).

Data: a preference-pairs file, unpaired as TRL's `unpair_preference_dataset` does — every pair gives
its chosen answer as desirable and its rejected one as undesirable. Each batch of k answers also
carries k mismatched rows (answer j+1 of the batch after prompt j) whose policy/reference log-ratio,
averaged and clamped at 0, is the reference point z₀ (computed without gradient, per process).
The reference model is the base under a disabled adapter, as for DPO.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from tuneforge.data.seed import load_pairs
from tuneforge.errors import DataError
from tuneforge.records import Example, Message, PreferencePair
from tuneforge.tokenisation import collate, encode_example
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.dpo import dpo_metrics, pair_eval_batches, reference_logps, sequence_logps, shuffled_batches
from tuneforge.train.loop import Objective, ObjectiveSetup
from tuneforge.train.preference_losses import kto_term


def unpair(pairs: list[PreferencePair]) -> list[tuple[list[Message], str, bool]]:
    """(prompt, answer, desirable) rows: each pair's chosen (True) and rejected (False) answer."""
    return [row for p in pairs for row in ((p.prompt, p.chosen, True), (p.prompt, p.rejected, False))]


def kto_batches(
    rows: list[tuple[list[Message], str, bool]],
    tokenizer,
    batch_size: int,
    max_length: int = 1024,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> Iterator[dict]:
    """Endless batches of k answers plus their k mismatched rows: (2k, T) with `n` = k and
    `desirable` (k,); reshuffled every epoch; shard s of n takes every n-th batch.

    Row j's mismatched answer is answer j+1 of the batch; a batch of one answer (batch_size=1, or an
    epoch's last batch) borrows the answer two rows on in `rows`: the next pair's (its own with one pair).
    Skipping such batches instead looped forever when every batch had one answer."""
    if not rows:
        raise DataError("KTO has no answers to train on: the preference file holds no pairs (data.train)")

    def enc(prompt, answer):
        return encode_example(Example(messages=[*prompt, Message("assistant", answer)]), tokenizer, max_length, "last")

    def other_answer(idx: list[int], j: int) -> str:
        return rows[idx[(j + 1) % len(idx)]][1] if len(idx) > 1 else rows[(idx[0] + 2) % len(rows)][1]

    encoded = [enc(p, a) for p, a, _ in rows]  # once; only the mismatched rows depend on the batch
    for idx in shuffled_batches(len(rows), batch_size, seed, num_shards, shard):
        k = len(idx)
        mismatched = [enc(rows[idx[j]][0], other_answer(idx, j)) for j in range(k)]
        batch = collate([encoded[i] for i in idx] + mismatched, tokenizer.pad_token_id)
        batch["n"] = torch.tensor(k)
        batch["desirable"] = torch.tensor([rows[i][2] for i in idx])
        yield batch


def kto_objective(
    beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0, ref_model=None
) -> Objective:
    """An Objective summing the KTO losses of a `kto_batches` batch; the loop divides by k."""

    def loss(model, batch):
        k = int(batch["n"])
        policy = sequence_logps(model, batch)
        ref = reference_logps(model, batch, ref_model)
        z0 = (policy[k:].detach() - ref[k:]).mean().clamp(min=0)
        return kto_term(
            policy[:k], ref[:k], batch["desirable"].bool(), z0, beta, desirable_weight, undesirable_weight
        ).sum()

    return Objective("kto", loss, lambda batch: int(batch["n"]))


def kto_setup(
    pairs: list[PreferencePair],
    held_out: list[PreferencePair],
    tokenizer,
    ref_model=None,
    *,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    max_length: int = 1024,
    batch_size: int = 8,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> ObjectiveSetup:
    """KTO in the one loop; evaluated after training on the held-out pairs by their implicit reward
    (β · log-ratio to the reference): the share of pairs whose chosen answer is rewarded more."""
    eval_batches = pair_eval_batches(held_out, tokenizer, max_length)

    def evaluate(model):
        m = dpo_metrics(model, eval_batches, beta, ref_model, "dpo")
        return {k: m[k] for k in ("reward_accuracy", "reward_margin", "pairs")}

    return ObjectiveSetup(
        kto_objective(beta, desirable_weight, undesirable_weight, ref_model),
        kto_batches(unpair(pairs), tokenizer, batch_size, max_length, seed, num_shards, shard),
        evaluate,
        None,
    )


@dataclass
class KTOOptions(ObjectiveOptions):
    beta: float = field(default=0.1, metadata={"help": "β, the scale of the implicit reward", "gt": 0})
    desirable_weight: float = field(default=1.0, metadata={"help": "λ_D, weight of desirable answers", "gt": 0})
    undesirable_weight: float = field(default=1.0, metadata={"help": "λ_U, weight of undesirable answers", "gt": 0})


def build(ctx: BuildContext) -> ObjectiveSetup:
    """KTO on one pairs file, unpaired into desirable and undesirable answers."""
    o, t = ctx.options, ctx.train
    assert isinstance(o, KTOOptions)
    eval_source = ctx.eval_pairs_source()
    setup = kto_setup(
        ctx.training_pairs(),
        load_pairs(eval_source),
        ctx.tok,
        ctx.frozen,
        beta=o.beta,
        desirable_weight=o.desirable_weight,
        undesirable_weight=o.undesirable_weight,
        max_length=t.max_length,
        batch_size=t.batch_size,
        seed=t.seed,
        **ctx.shard,
    )
    return dataclasses.replace(setup, evaluate=lambda m: setup.evaluate(m) | {"on": eval_source})
