"""Teacher → student distillation as an objective for the one loop.

Over the response's target positions, with temperature τ and mixing weight α:

    L = (1 − α) · CE(student, y) + α · τ² · KL(softmax(z_T/τ) ‖ softmax(z_S/τ))

summed over target tokens (the loop divides by their count). Forward KL: the student is pulled to
cover the teacher's distribution; τ² keeps gradient scale comparable across temperatures (Hinton
et al., 2015). Teacher and student must share the tokenizer (same vocabulary).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tuneforge.errors import ConfigError
from tuneforge.models import load_model
from tuneforge.tokenisation import IGNORE, Encoded, batch_stream, count_targets, encode_examples, model_inputs
from tuneforge.train.context import BuildContext, ObjectiveOptions
from tuneforge.train.loop import Objective, ObjectiveSetup
from tuneforge.train.sft import heldout_evaluator


def kl_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-position forward KL(teacher ‖ student) at temperature τ, times τ²: (N,)."""
    s = F.log_softmax(student_logits.float() / temperature, -1)
    t = F.log_softmax(teacher_logits.float() / temperature, -1)
    return (t.exp() * (t - s)).sum(-1) * temperature**2


def distill_objective(teacher, temperature: float = 2.0, alpha: float = 0.5) -> Objective:
    """An Objective mixing SFT cross-entropy and the KL to a frozen teacher (see module docstring)."""
    if not 0.0 <= alpha <= 1.0 or temperature <= 0:
        raise ConfigError(f"distillation needs 0 ≤ alpha ≤ 1 and temperature > 0, got {alpha}, {temperature}")
    teacher.eval()

    def loss(model, batch):
        labels = batch["labels"]
        targets = labels[:, 1:] != IGNORE
        keep = F.pad(targets, (0, 1), value=False)
        student = model(**model_inputs(batch), logits_to_keep=keep).logits  # (N, V)
        with torch.no_grad():
            teach = teacher(**model_inputs(batch), logits_to_keep=keep).logits
        if student.shape[-1] != teach.shape[-1]:
            raise ConfigError(
                f"teacher vocabulary ({teach.shape[-1]}) differs from the student's "
                f"({student.shape[-1]}); distillation needs a shared tokenizer"
            )
        ce = F.cross_entropy(student.float(), labels[:, 1:][targets], reduction="sum")
        return (1 - alpha) * ce + alpha * kl_term(student, teach, temperature).sum()

    return Objective("distill", loss, count_targets)


def distill_setup(
    examples: list[Encoded],
    teacher,
    pad_id: int,
    evaluate: Callable[[object], dict],
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    batch_size: int = 8,
    seed: int = 0,
    pack_length: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> ObjectiveSetup:
    """Distillation in the one loop: the loss against the frozen `teacher` (same vocabulary as the
    student), the batch stream of this process's shard, and `evaluate` (held-out loss) before and after."""
    return ObjectiveSetup(
        distill_objective(teacher.requires_grad_(False), temperature, alpha),
        batch_stream(examples, batch_size, pad_id, seed, pack_length=pack_length, num_shards=num_shards, shard=shard),
        evaluate,
        None,
    )


@dataclass
class DistillOptions(ObjectiveOptions):
    teacher: str = field(default="", metadata={"help": "teacher model (same tokenizer as model.name); required"})
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature τ", "gt": 0})
    kl_weight: float = field(default=0.5, metadata={"help": "α in (1-α)·CE + α·τ²·KL", "ge": 0, "le": 1})

    def __post_init__(self):
        if not self.teacher:
            raise ConfigError("objective.name=distill needs objective.teacher (a model sharing the tokenizer)")


def build(ctx: BuildContext) -> ObjectiveSetup:
    """KL to a teacher's token distribution mixed with cross-entropy; held-out loss before and after."""
    o, t = ctx.options, ctx.train
    assert isinstance(o, DistillOptions)
    evaluate = heldout_evaluator(ctx)
    before = evaluate(ctx.model)
    domain, _ = encode_examples(ctx.training_examples(), ctx.tok, t.max_length, t.mask, t.reasoning)
    m = ctx.model_config
    teacher, teacher_tok = load_model(o.teacher, m.dtype, m.attn_implementation, ctx.device)
    if teacher_tok.get_vocab() != ctx.tok.get_vocab():
        raise ConfigError(
            f"objective.teacher {o.teacher} has a different tokenizer from model.name "
            f"{m.name}; token-level distillation needs a shared vocabulary"
        )
    setup = distill_setup(
        domain,
        teacher,
        ctx.tok.pad_token_id,
        evaluate,
        temperature=o.temperature,
        alpha=o.kl_weight,
        batch_size=t.batch_size,
        seed=t.seed,
        pack_length=t.max_length if t.packing else 0,
        **ctx.shard,
    )
    return dataclasses.replace(setup, before=before)
