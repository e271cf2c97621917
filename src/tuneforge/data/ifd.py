"""IFD (Instruction-Following Difficulty, Li et al. 2024, "From Quantity to Quality") selection.

    IFD(Q, A) = L(A | Q) / L(A)

L(A | Q) is the mean next-token cross-entropy of the response tokens given the instruction, L(A)
the same tokens given an *empty* user turn rendered with the same chat template (so both losses
cover exactly the same target tokens, end-of-turn included). IFD near or above 1 means the
instruction does not help the model produce the answer — the pair is likely misaligned — so
records with IFD ≥ `max_ifd` (default 1) are dropped; of the rest, the `top` fraction with the
highest IFD (hardest to follow, the paper's selection) is kept. Scores go to `meta['ifd']`.
Hand-written because no kept library computes it; the loss is the same masked CE as SFT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tuneforge.data.dedup import Removal
from tuneforge.errors import ConfigError
from tuneforge.records import Example, Message
from tuneforge.tokenisation import IGNORE, collate, encode_example


@torch.inference_mode()
def _mean_losses(model, tok, examples: list[Example], batch_size: int, max_length: int) -> list[float]:
    encoded = [encode_example(e, tok, max_length, mask="last") for e in examples]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    losses = [float("nan")] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    device = next(model.parameters()).device
    for s in tqdm(range(0, len(order), batch_size), desc="IFD", unit="batch", leave=False):
        idx = [i for i in order[s : s + batch_size] if encoded[i].n_targets > 0]
        if not idx:
            continue
        batch = collate([encoded[i] for i in idx], pad)
        logits = (
            model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            .logits[:, :-1]
            .float()
        )
        labels = batch["labels"][:, 1:].to(device)
        ce = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
        counts = (labels != IGNORE).sum(1)
        for i, total, n in zip(idx, ce.sum(1).tolist(), counts.tolist()):
            losses[i] = total / n
    return losses


def ifd_scores(model, tok, records: list[Example], batch_size: int = 8, max_length: int = 1024) -> list[dict]:
    """Per record: {'conditioned': L(A|Q), 'unconditioned': L(A), 'ifd': their ratio} (NaN when the
    response was truncated away)."""
    # L(A): the answer alone — its words and, for a turn that calls tools, its calls as <tool_call> text
    bare = [Example(messages=[Message("user", ""), Message("assistant", r.response_text)], id=r.id) for r in records]
    cond = _mean_losses(model, tok, records, batch_size, max_length)
    uncond = _mean_losses(model, tok, bare, batch_size, max_length)
    return [
        {"conditioned": round(c, 4), "unconditioned": round(u, 4), "ifd": round(c / u, 4) if u > 0 else float("nan")}
        for c, u in zip(cond, uncond)
    ]


def select_by_ifd(
    records: list[Example], scores: list[dict], max_ifd: float = 1.0, top: float = 1.0
) -> tuple[list[Example], list[Removal], dict]:
    """Drop IFD ≥ max_ifd (and unscorable records), then keep the `top` fraction by IFD, in input order."""
    if not 0 < top <= 1:
        raise ConfigError(f"filters.ifd_top must be in (0, 1], got {top}")
    removed, candidates = [], []
    for r, s in zip(records, scores):
        r.meta["ifd"] = s
        if s["ifd"] != s["ifd"]:
            removed.append(Removal(r.id, "IFD not computable (response truncated away)"))
        elif s["ifd"] >= max_ifd:
            removed.append(Removal(r.id, f"IFD ≥ {max_ifd:g} (the instruction does not help)", score=s["ifd"]))
        else:
            candidates.append(r)
    n_keep = round(top * len(candidates))
    ranked = sorted(candidates, key=lambda r: -r.meta["ifd"]["ifd"])
    keep_ids = {id(r) for r in ranked[:n_keep]}
    removed += [
        Removal(r.id, f"IFD below the top {top:g} fraction", score=r.meta["ifd"]["ifd"]) for r in ranked[n_keep:]
    ]
    kept = [r for r in candidates if id(r) in keep_ids]
    values = [s["ifd"] for s in scores if s["ifd"] == s["ifd"]]
    report = {
        "scored": len(values),
        "mean_ifd": round(sum(values) / len(values), 4) if values else None,
        "at_or_above_max": sum(v >= max_ifd for v in values),
        "max_ifd": max_ifd,
        "top": top,
        "kept": len(kept),
    }
    return kept, removed, report
