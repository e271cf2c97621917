"""Supervised fine-tuning objective.

The objective returns the *sum* of token losses; the loop divides by the number of target tokens
over the whole accumulation window (L_SFT = -(1/Σ|y|) ΣΣ log P(y_t | x, y_<t)). Logits are
projected only at positions that predict a target (prompt and padding rows of the vocabulary
projection are never computed). The data path (encoding, masks, collation, packing) is
`tuneforge.tokenisation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tuneforge.errors import ConfigError
from tuneforge.intervals import paired_ratio_delta, ratio_ci
from tuneforge.tokenisation import (
    IGNORE,
    batch_stream,
    collate,
    count_targets,
    count_targets_per_row,
    encode_examples,
    model_inputs,
)
from tuneforge.train.active import active_stream
from tuneforge.train.adapters import is_prompt_learning
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.curriculum import curriculum_stream, schedule
from tuneforge.train.example_scores import example_scores
from tuneforge.train.loop import Objective, ObjectiveSetup, heldout_loss


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


SFT = Objective(
    "sft", sft_loss, count_targets, item_loss=lambda m, b: (sft_loss(m, b, per_row=True), count_targets_per_row(b))
)


@dataclass
class SFTOptions(ObjectiveOptions):
    """sft has no keys of its own: train.mask and train.packing shape what it learns."""


def heldout_batches(examples, tok, max_length: int, mask: str, reasoning: str = "train", size: int = 8) -> list[dict]:
    """Fixed batches of the held-out examples, shortest first: batches of like lengths carry little
    padding (the demo's 79 test examples: 9.8 → 6.4 s per evaluation on 2 cores, the same loss)."""
    enc = encode_examples(list(examples), tok, max_length, mask, reasoning)[0] if examples else []
    enc = sorted(enc, key=lambda e: len(e.input_ids))
    return [collate(enc[i : i + size], tok.pad_token_id) for i in range(0, len(enc), size)]


def build(ctx: BuildContext) -> ObjectiveSetup:
    """Cross-entropy on the assistant tokens; held-out loss per target token before and after, with
    bootstrap CIs and the paired change. The batches are shuffled epochs, or a curriculum
    (train.curriculum) or an active-learning selection (train.active) of the examples."""
    t = ctx.train
    examples, kept = ctx.training_examples(), list[int]()
    enc_train, dropped = encode_examples(examples, ctx.tok, t.max_length, t.mask, t.reasoning, kept)
    if dropped:
        print(f"      {dropped} examples dropped: no target token within max_length", flush=True)
    eval_batches = heldout_batches(ctx.held_out_examples(), ctx.tok, t.max_length, t.mask, t.reasoning)
    if t.curriculum.enabled or t.active.enabled:
        batches = chosen_batches(ctx, [examples[i] for i in kept], enc_train)
    else:
        batches = batch_stream(
            enc_train, t.batch_size, ctx.tok.pad_token_id, t.seed, pack_length=t.max_length if t.packing else 0,
            **ctx.shard,
        )  # fmt: skip
    evaluate = lambda m: heldout_loss(m, eval_batches, SFT, t.precision) if eval_batches else {}  # noqa: E731
    on = ctx.data.eval if ctx.eval_examples is None else "test"
    return ObjectiveSetup(SFT, batches, evaluate, evaluate(ctx.model), summarise=lambda b, a: loss_summary(b, a, on))


def chosen_batches(ctx: BuildContext, examples: list, encoded: list) -> Iterator[dict]:
    """The batch stream of a curriculum (easiest first, train/curriculum.py) or of active learning
    (uncertainty sampling in rounds, train/active.py); `examples[i]` is the record of `encoded[i]`."""
    t, pad = ctx.train, ctx.tok.pad_token_id
    if t.active.enabled:
        if ctx.shard.get("num_shards", 1) > 1:
            raise ConfigError("train.active runs in one process: each would select its own examples. Drop the launcher")
        print(f"      active learning: {t.active.rounds} rounds of {t.active.score} sampling, "
              f"{t.active.fraction:g} of {len(encoded)} examples in all", flush=True)  # fmt: skip
        return active_stream(ctx.model, examples, encoded, t.active, t.steps, t.batch_size, t.grad_accum, pad, t.seed,
                             ctx.run_dir / "active_selection.jsonl")  # fmt: skip
    c = t.curriculum
    if c.order == "loss":  # the model before training: the builder runs before the adapter is applied
        difficulty = example_scores(ctx.model, encoded, pad)["loss"]
    elif c.order == "ifd":
        from tuneforge.data.ifd import ifd_scores

        raw = [s["ifd"] for s in ifd_scores(ctx.model, ctx.tok, examples, max_length=t.max_length)]
        difficulty = [v if v == v else float("inf") for v in raw]  # not computable: last
    else:
        difficulty = [float(e.n_targets) for e in encoded]
    shares = ", ".join(f"step {p['step']}: {p['share']:.0%}" for p in schedule(c, t.steps, 5))
    print(f"      curriculum by {c.order}, {c.pacing} pacing: {shares} of the easiest examples", flush=True)
    return curriculum_stream(encoded, difficulty, c, t.steps, t.batch_size, t.grad_accum, pad, t.seed, **ctx.shard)


def loss_summary(base: dict, tuned: dict, on: str = "", n_boot: int = 1000, seed: int = 0) -> dict:
    """Held-out loss per target token before and after training, each with a bootstrap 95% CI
    over examples, and the paired change (tuned − base) with its CI (same examples resampled)."""
    if not base:
        return {}
    return {
        **{
            k: {"loss": r["loss"], "ci": ratio_ci(r["sums"], r["units"], n_boot, seed), "on": on}
            for k, r in (("base", base), ("tuned", tuned))
        },
        "delta": paired_ratio_delta(base["sums"], tuned["sums"], base["units"], n_boot, seed),
        "n_examples": len(base["units"]),
        "n_tokens": int(sum(base["units"])),
        # per held-out example, in a fixed order: what runs on the same examples pair up on (scaling fits)
        "per_example": {"units": base["units"], "base": base["sums"], "tuned": tuned["sums"]},
        "signature": f"heldout-loss|per-target-token|bootstrap{n_boot}-over-examples|seed:{seed}",
    }


def heldout_with_ci(model, tok, examples, max_length: int, n_boot: int = 1000, seed: int = 0) -> dict:
    """The SFT loss per target token of `model` on `examples` (assistant targets): {"loss", "sums",
    "units", "ci"} — per-example sums and units, so two models on the same examples pair up."""
    r = heldout_loss(model, heldout_batches(examples, tok, max_length, "assistant"), SFT, "fp32")
    return {**r, "ci": ratio_ci(r["sums"], r["units"], n_boot, seed)}


def heldout_evaluator(ctx: BuildContext) -> Callable[[object], dict]:
    """Held-out SFT loss with its CI, for objectives that train on examples (distill, domain adaptation)."""
    t = ctx.train
    eval_batches = heldout_batches(ctx.held_out_examples(), ctx.tok, t.max_length, t.mask, t.reasoning)

    def evaluate(m):
        if not eval_batches:
            return {}
        held = heldout_loss(m, eval_batches, SFT, t.precision)
        return {"loss": held["loss"], "ci": ratio_ci(held["sums"], held["units"]), "on": ctx.data.eval}

    return evaluate
