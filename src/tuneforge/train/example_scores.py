"""Per-example scores under a model, for ordering (curriculum) and selecting (active learning):
the mean cross-entropy of an example's target tokens (its loss: how surprising the answer is) and the
mean entropy of the model's predictive distribution at those positions (how unsure the model is,
whatever the answer). One forward pass gives both; batches are grouped by length so padding is small.
Hand-written: the SFT loss already masks targets; this only keeps the per-row sums apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.tokenisation import IGNORE, Encoded, collate, model_inputs

SCORES = ("loss", "entropy")


@torch.no_grad()
def example_scores(model, encoded: list[Encoded], pad_id: int, batch_size: int = 8) -> dict[str, list[float]]:
    """{"loss": [...], "entropy": [...]} per encoded example (mean per target token), in input order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss, entropy = [0.0] * len(encoded), [0.0] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], pad_id).items()}
        logits = model(**model_inputs(batch)).logits[:, :-1].float()  # (B, T-1, V)
        labels = batch["labels"][:, 1:]  # (B, T-1)
        targets = labels != IGNORE
        ce = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")  # (B, T-1)
        logp = logits.log_softmax(-1)
        ent = -(logp.exp() * logp).sum(-1)  # (B, T-1)
        n = targets.sum(1).clamp_min(1)
        for j, i in enumerate(idx):
            loss[i] = float(ce[j].sum() / n[j])
            entropy[i] = float((ent[j] * targets[j]).sum() / n[j])
    model.train(was_training)
    return {"loss": loss, "entropy": entropy}
