"""Multi-task training on the one loop: per-task batches, per-task gradients, conflict measured
every step, and (method `pcgrad`) projected before they are summed.

A multi-task batch is one flat dict of tensors with keys `<task>::input_ids`, `<task>::labels`,
`<task>::attention_mask` for the tasks drawn this step, plus `num_tokens`. The objective's
`backward` computes each task's summed SFT loss (scaled by the loop's 1/N target-token
normalisation, so the sum over tasks is exactly the SFT loss of the whole step), takes its gradient
on the trainable parameters, records the conflict score (`gradients.conflict_stats`), combines the
gradients — plain sum (`mixed`) or PCGrad (`pcgrad`) — and accumulates the result into `.grad`.
`similarity_reg` adds λ·R, the task-similarity regulariser of `similarity.py` applied to each
task's instruction representation h_t (mean last-layer hidden state over its prompt tokens, from
the same forward pass): R = Σ_{i<j} S_ij ‖h_i − h_j‖²/d / Σ S_ij with S from the instruction
embeddings — tasks with similar instructions are pulled to similar representations.
`pcgrad_similarity` (the seed's combination) projects the task gradients and adds ∇(λR) unprojected.
`per_task_lora` (shared + task-specific adapters, `task_adapters.py`) runs each task through the
shared adapter plus its own; the conflict score is taken on the shared adapter's gradients, the
only parameters the tasks share.
One process only: per-task gradients bypass DDP's all-reduce (an error says so).

Task sampling per step: `all` tasks, or `tasks_per_step` tasks drawn with probability ∝ n_t^(1/T)
(T = 1: by size; large T: uniform), seeded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch

from tuneforge.errors import ConfigError
from tuneforge.multitask.gradients import conflict_stats, pcgrad
from tuneforge.multitask.similarity import similarity_matrix, similarity_regulariser
from tuneforge.multitask.task_adapters import SHARED
from tuneforge.records import Example
from tuneforge.tokenisation import batch_stream, count_targets, encode_examples
from tuneforge.train.loop import Objective
from tuneforge.train.sft import sft_loss

METHODS = ("mixed", "per_task_lora", "pcgrad", "similarity_reg", "pcgrad_similarity")
SEP = "::"


def _flat(grads, params) -> torch.Tensor:
    """One fp32 vector of a gradient tuple (None — a parameter the loss did not reach — as zeros)."""
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, params)])


def _sub(batch: dict, task: str) -> dict:
    return {k[len(task) + len(SEP) :]: v for k, v in batch.items() if k.startswith(task + SEP)}


def tasks_in(batch: dict) -> list[str]:
    return sorted({k.split(SEP, 1)[0] for k in batch if SEP in k})


def multitask_batches(
    by_task: dict[str, list[Example]],
    tok,
    batch_size: int,
    max_length: int = 512,
    mask: str = "assistant",
    seed: int = 0,
    tasks_per_step: int = 0,
    temperature: float = 1.0,
) -> Iterator[dict]:
    """Endless per-step multi-task batches (`batch_size` examples of each drawn task)."""
    if any(SEP in t for t in by_task):
        raise ConfigError(f"task names must not contain '{SEP}'")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    streams = {
        t: batch_stream(encode_examples(rows, tok, max_length, mask)[0], batch_size, pad, seed)
        for t, rows in by_task.items()
    }
    names = sorted(by_task)
    weights = np.array([len(by_task[t]) ** (1.0 / temperature) for t in names], dtype=float)
    rng = random.Random(seed)
    while True:
        drawn = (
            names
            if not tasks_per_step or tasks_per_step >= len(names)
            else sorted(set(rng.choices(names, weights=weights.tolist(), k=tasks_per_step)))
        )
        out = {}
        for t in drawn:
            for k, v in next(streams[t]).items():
                if k != "num_tokens":
                    out[f"{t}{SEP}{k}"] = v
        out["num_tokens"] = torch.tensor(sum(int(out[f"{t}{SEP}attention_mask"].sum()) for t in drawn))
        yield out


def task_similarity(definitions: dict[str, str], encoder) -> dict[tuple[str, str], float]:
    """S[a, b] = max(0, cos) of the tasks' instruction embeddings (sentence encoder `encoder`)."""
    names = sorted(definitions)
    sim = similarity_matrix(np.asarray(encoder([definitions[n] for n in names]), dtype=float))
    return {(a, b): float(sim[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)}


class MultiTaskObjective:
    """Builds the loop `Objective` and keeps the conflict statistics of the steps since the last log."""

    def __init__(
        self,
        model,
        method: str = "pcgrad",
        seed: int = 0,
        similarity: dict | None = None,
        reg_weight: float = 1.0,
        task_adapters=None,
    ):
        if method not in METHODS:
            raise ConfigError(f"multitask method '{method}' unknown; use one of {', '.join(METHODS)}")
        if "similarity" in method and not similarity:
            raise ConfigError(f"method {method} needs the task-similarity matrix (instruction embeddings)")
        if method == "per_task_lora" and task_adapters is None:
            raise ConfigError("method per_task_lora needs the model's TaskAdapters (multitask.task_adapters)")
        self.adapters = task_adapters
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.method, self.seed, self.calls = method, seed, 0
        self.similarity, self.reg_weight = similarity or {}, reg_weight
        self._window: list[dict] = []

    def loss(self, model, batch: dict) -> torch.Tensor:
        return sum(sft_loss(model, _sub(batch, t)) for t in tasks_in(batch))

    def count(self, batch: dict) -> int:
        return sum(count_targets(_sub(batch, t)) for t in tasks_in(batch))

    def backward(self, model, batch: dict, scale: float) -> float:
        if self.adapters is not None:
            return self._backward_task_adapters(model, batch, scale)
        tasks = tasks_in(batch)
        regularise = "similarity" in self.method and len(tasks) > 1
        grads: list[torch.Tensor] = []
        pooled: list[torch.Tensor] = []
        total = 0.0
        for t in tasks:
            out = sft_loss(model, _sub(batch, t), pool_prompt=regularise)
            loss, rep = (out[0] * scale, out[1]) if regularise else (out * scale, None)
            g = torch.autograd.grad(loss, self.params, allow_unused=True, retain_graph=regularise)
            grads.append(_flat(g, self.params))
            if rep is not None:
                pooled.append(rep)
            total += loss.item()
        if len(grads) > 1:
            self._window.append(conflict_stats(grads))
        combined = pcgrad(grads, self.seed + self.calls) if "pcgrad" in self.method else torch.stack(grads).sum(0)
        if regularise:  # λ·R on the tasks' instruction representations; its gradient is shared, not projected
            sim = np.array([[self.similarity.get((a, b), 1.0 if a == b else 0.0) for b in tasks] for a in tasks])
            reg = self.reg_weight * similarity_regulariser(pooled, sim)
            g = torch.autograd.grad(reg, self.params, allow_unused=True)
            combined = combined + _flat(g, self.params)
            self._window[-1]["similarity_reg"] = float(reg.detach())
            total += float(reg.detach())
        self.calls += 1
        offset = 0
        for p in self.params:
            n = p.numel()
            update = combined[offset : offset + n].view_as(p).to(p.dtype)
            p.grad = update.clone() if p.grad is None else p.grad + update
            offset += n
        return total

    def _backward_task_adapters(self, model, batch: dict, scale: float) -> float:
        shared_grads, total = [], 0.0
        for t in tasks_in(batch):
            params = self.adapters.use(t)
            loss = sft_loss(model, _sub(batch, t)) * scale
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for p, g in zip(params, grads):
                if g is not None:
                    p.grad = g.to(p.dtype) if p.grad is None else p.grad + g.to(p.dtype)
            n_shared = len(self.adapters.params[SHARED])
            shared_grads.append(_flat(grads[:n_shared], params[:n_shared]))
            total += loss.item()
        self.adapters.use(None)
        if len(shared_grads) > 1:
            self._window.append(conflict_stats(shared_grads))
        self.calls += 1
        return total

    def stats(self) -> dict:
        window, self._window = self._window, []
        if not window:
            return {}
        out = {
            f"conflict_{k}": float(np.mean([w[k] for w in window]))
            for k in ("mean_cosine", "conflict_fraction", "magnitude_similarity")
        }
        regs = [w["similarity_reg"] for w in window if "similarity_reg" in w]
        return out | ({"similarity_reg": float(np.mean(regs))} if regs else {})

    def objective(self) -> Objective:
        return Objective(f"multitask-{self.method}", self.loss, self.count, backward=self.backward, stats=self.stats)
