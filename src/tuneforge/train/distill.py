"""Teacher → student distillation as an objective for the one loop.

Over the response's target positions, with temperature τ and mixing weight α:

    L = (1 − α) · CE(student, y) + α · τ² · KL(softmax(z_T/τ) ‖ softmax(z_S/τ))

summed over target tokens (the loop divides by their count). Forward KL: the student is pulled to
cover the teacher's distribution; τ² keeps gradient scale comparable across temperatures (Hinton
et al., 2015). Teacher and student must share the tokenizer (same vocabulary).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tuneforge.errors import ConfigError
from tuneforge.tokenisation import IGNORE, Encoded, batch_stream, count_targets, model_inputs
from tuneforge.train.loop import Objective, ObjectiveSetup


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
