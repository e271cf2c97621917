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
    """{"loss": [...], "entropy": [...]} per encoded example (mean per target token), in input order.
    Logits are projected at target positions only (as `sft_loss`): (N, V), not (B, T, V)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss, entropy = [0.0] * len(encoded), [0.0] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], pad_id).items()}
        labels = batch["labels"]
        targets = labels[:, 1:] != IGNORE  # (B, T-1): position t predicts token t+1
        keep = F.pad(targets, (0, 1), value=False)  # (B, T)
        logits = model(**model_inputs(batch), logits_to_keep=keep).logits
        if logits.dim() == 3:  # a version that ignores a boolean logits_to_keep
            logits = logits[keep]
        logits = logits.float()  # (N, V)
        row = targets.nonzero()[:, 0]  # (N,) the batch row of each target
        ce = F.cross_entropy(logits, labels[:, 1:][targets], reduction="none")  # (N,)
        ent = torch.special.entr(logits.softmax(-1)).sum(-1)  # (N,); entr(0) = 0, no NaN
        n = targets.sum(1).clamp_min(1).float()  # (B,)
        ce_sum = torch.zeros(len(idx), device=device).index_add_(0, row, ce)
        ent_sum = torch.zeros(len(idx), device=device).index_add_(0, row, ent)
        for j, i in enumerate(idx):
            loss[i], entropy[i] = float(ce_sum[j] / n[j]), float(ent_sum[j] / n[j])
    model.train(was_training)
    return {"loss": loss, "entropy": entropy}
