"""Domain adaptation as an objective for the one loop:

    L = L_general + α · L_domain + β · L_consistency

- L_general: mean cross-entropy over the target tokens of a *general* instruction batch (keeps
  the model's general instruction following);
- L_domain: mean cross-entropy over the target tokens of a *domain* batch (what we adapt to);
- L_consistency: mean, over the general batch's target positions, of the forward KL
  KL(p_base(·|x, y_<t) ‖ p_θ(·|x, y_<t)) between the frozen base model's next-token distribution
  and the trained model's. It is zero at the start of LoRA training (B = 0) and grows as the model
  drifts from the base on general data: a regulariser against catastrophic forgetting.

The frozen base is the PEFT model with its adapter disabled (no second copy of the weights) or a
given `ref_model`. Each micro-batch carries both batches (keys prefixed `general.` / `domain.`,
built by `domain_adaptation_batches`); the objective returns the micro-batch's L and counts one
unit per micro-batch, so the loop averages L over micro-batches and processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tuneforge.data.seed import load_examples
from tuneforge.errors import ConfigError
from tuneforge.tokenisation import IGNORE, Encoded, batch_stream, encode_examples, model_inputs
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.distill import kl_term
from tuneforge.train.loop import Objective, ObjectiveSetup
from tuneforge.train.sft import heldout_evaluator

PARTS = ("general", "domain")


def domain_adaptation_batches(general: Iterator[dict], domain: Iterator[dict]) -> Iterator[dict]:
    """Zip two collated streams into micro-batches of the objective below."""
    for g, d in zip(general, domain):
        batch = {f"general.{k}": v for k, v in g.items()} | {f"domain.{k}": v for k, v in d.items()}
        batch["num_tokens"] = g["num_tokens"] + d["num_tokens"]
        yield batch


def _part(batch: dict, name: str) -> dict:
    prefix = f"{name}."
    return {k[len(prefix) :]: v for k, v in batch.items() if k.startswith(prefix)}


def _target_logits(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits at positions predicting a target (N, V), the targets (N,))."""
    labels = batch["labels"]
    targets = labels[:, 1:] != IGNORE
    if not targets.any():
        raise ConfigError("a domain-adaptation batch has no target token. Check train.mask and the data")
    keep = F.pad(targets, (0, 1), value=False)
    logits = model(**model_inputs(batch), logits_to_keep=keep).logits
    if logits.dim() == 3:
        logits = logits[keep]
    return logits, labels[:, 1:][targets]


def domain_adaptation_terms(model, batch: dict, ref_model=None) -> dict[str, torch.Tensor]:
    """The three terms of L for one micro-batch (each a scalar mean)."""
    general, domain = _part(batch, "general"), _part(batch, "domain")
    g_logits, g_targets = _target_logits(model, general)
    d_logits, d_targets = _target_logits(model, domain)
    with torch.no_grad():
        if ref_model is not None:
            base_logits, _ = _target_logits(ref_model, general)
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                base_logits, _ = _target_logits(model, general)
        else:
            raise ConfigError(
                "the consistency term needs the frozen base: train a PEFT adapter (its base serves) or pass ref_model"
            )
    return {
        "general": F.cross_entropy(g_logits.float(), g_targets),
        "domain": F.cross_entropy(d_logits.float(), d_targets),
        "consistency": kl_term(g_logits, base_logits).mean(),
    }


def domain_adaptation_objective(alpha: float = 1.0, beta: float = 0.1, ref_model=None) -> Objective:
    """L = L_general + α·L_domain + β·L_consistency (see the module docstring)."""
    if alpha < 0 or beta < 0:
        raise ConfigError(f"domain adaptation needs α ≥ 0 and β ≥ 0, got α={alpha}, β={beta}")

    def loss(model, batch):
        t = domain_adaptation_terms(model, batch, ref_model)
        return t["general"] + alpha * t["domain"] + beta * t["consistency"]

    return Objective("domain_adaptation", loss, lambda batch: 1)


def domain_adaptation_setup(
    domain: list[Encoded],
    general: list[Encoded],
    pad_id: int,
    evaluate: Callable[[object], dict],
    ref_model=None,
    *,
    alpha: float = 1.0,
    beta: float = 0.1,
    batch_size: int = 8,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> ObjectiveSetup:
    """Domain adaptation in the one loop: L_general + α·L_domain + β·KL to the base, over paired
    general/domain batches of this process's shard, with `evaluate` (held-out loss) before and after."""
    return ObjectiveSetup(
        domain_adaptation_objective(alpha, beta, ref_model),
        domain_adaptation_batches(
            batch_stream(general, batch_size, pad_id, seed, num_shards=num_shards, shard=shard),
            batch_stream(domain, batch_size, pad_id, seed + 1, num_shards=num_shards, shard=shard),
        ),
        evaluate,
        None,
    )


@dataclass
class DomainAdaptationOptions(ObjectiveOptions):
    general: str = field(
        default="seed:train", metadata={"help": "general instruction data the model must keep following"}
    )
    domain_weight: float = field(default=1.0, metadata={"help": "α on L_domain", "ge": 0})
    consistency_weight: float = field(
        default=0.1, metadata={"help": "β on KL(base ‖ model) over general data", "ge": 0}
    )

    def data_sources(self) -> list[str]:
        return [self.general]


def build(ctx: BuildContext) -> ObjectiveSetup:
    """L_general + α·L_domain + β·KL to the base; held-out loss before and after."""
    o, t = ctx.options, ctx.train
    assert isinstance(o, DomainAdaptationOptions)
    evaluate = heldout_evaluator(ctx)
    before = evaluate(ctx.model)
    domain, _ = encode_examples(ctx.training_examples(), ctx.tok, t.max_length, t.mask, t.reasoning)
    general, _ = encode_examples(load_examples(o.general), ctx.tok, t.max_length, t.mask, t.reasoning)
    setup = domain_adaptation_setup(
        domain,
        general,
        ctx.tok.pad_token_id,
        evaluate,
        ctx.frozen,
        alpha=o.domain_weight,
        beta=o.consistency_weight,
        batch_size=t.batch_size,
        seed=t.seed,
        **ctx.shard,
    )
    return dataclasses.replace(setup, before=before)
