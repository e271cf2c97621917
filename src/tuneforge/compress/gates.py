"""Learned pruning masks (seed 001, eq. 24): min over gates m of L(θ ⊙ m) + λ·‖m‖₀ with θ frozen, one
gate per query head, MLP channel and decoder layer. ‖m‖₀ is not differentiable, so each gate is a
hard-concrete variable (Louizos et al., 2018): a stretched, clipped sigmoid of log α plus logistic
noise, exactly 0 or 1 with non-zero probability, whose expected L0 norm has a closed form. Trained as
an `Objective` on the one loop (`train/loop.py`): the loss is the target-token cross-entropy plus
λ × (the expected share of open gates) per target token, so λ is in nats per token per unit of
density — larger λ buys sparsity with loss. (The survey writes the penalty as λ‖1 − m‖₀; penalising
open gates, as here, is the form that drives gates to close.)

After training, log α ranks the units (`scores`); the plan then keeps the top ones at the requested
sparsity, the same cut as for the other importance measures, and the share of gates the learned mask
closed on its own is reported beside it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from tuneforge.compress.importance import Scores, _target_loss, unit_gates
from tuneforge.tokenisation import count_targets
from tuneforge.train.loop import Objective, TrainConfig, train_loop

# hard-concrete constants of Louizos et al.: stretch interval (γ, ζ) and temperature β
GAMMA, ZETA, BETA = -0.1, 1.1, 2 / 3


@dataclass
class GatesConfig:
    steps: int = field(default=60, metadata={"help": "optimizer steps training the gates", "ge": 1})
    lr: float = field(default=0.1, metadata={"help": "learning rate of log α", "gt": 0})
    l0_weight: float = field(
        default=1.0, metadata={"help": "λ: nats per target token per unit of gate density", "ge": 0}
    )
    batch_size: int = field(default=4, metadata={"help": "calibration examples per step", "ge": 1})
    init: float = field(default=3.0, metadata={"help": "initial log α (3: gates start ~open)"})


class PruneGates(torch.nn.Module):
    """log α of every gate: heads (L, n_q), channels (L, d_ff), layers (L, 1)."""

    def __init__(self, config, kinds: tuple[str, ...], init: float = 3.0):
        super().__init__()
        n = config.num_hidden_layers
        width = {"heads": config.num_attention_heads, "channels": config.intermediate_size, "layers": 1}
        self.kinds = kinds
        self.log_alpha = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(torch.full((n, width[k]), float(init))) for k in kinds}
        )

    def sample(self, kind: str, i: int) -> torch.Tensor:
        """A gate vector for layer i: noisy in training, its deterministic value in eval."""
        la = self.log_alpha[kind][i]
        if self.training:
            u = torch.rand_like(la).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + la) / BETA)
        else:
            s = torch.sigmoid(la)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)

    def density(self) -> torch.Tensor:
        """The expected share of open gates, averaged over the kinds being pruned (differentiable)."""
        shift = BETA * math.log(-GAMMA / ZETA)
        return torch.stack([torch.sigmoid(self.log_alpha[k] - shift).mean() for k in self.kinds]).mean()

    @torch.no_grad()
    def closed(self) -> dict[str, float]:
        """Per kind, the share of gates whose deterministic value is 0 (what the mask alone removes)."""
        self.eval()
        out = {}
        for k in self.kinds:
            z = torch.stack([self.sample(k, i) for i in range(len(self.log_alpha[k]))])
            out[k] = float((z == 0).float().mean())
        return out


def gates_objective(gates: PruneGates, l0_weight: float) -> Objective:
    def loss(model, batch):
        return _target_loss(model, batch) + l0_weight * count_targets(batch) * gates.density()

    return Objective("prune_gates", loss, count_targets)


def learned_scores(model, batches, cfg: GatesConfig, kinds: tuple[str, ...], precision: str = "fp32") -> tuple:
    """Train hard-concrete gates over the frozen model on `batches` (an endless iterator) with the one
    loop; returns (Scores ranked by log α, the share each kind's mask closed, the loop's TrainResult)."""
    gates = PruneGates(model.config, kinds, cfg.init)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)

    def make_gate(kind: str, i: int, x: torch.Tensor) -> torch.Tensor | None:
        if kind not in gates.kinds:
            return None
        g = gates.sample(kind, i).to(x.dtype)
        return g if kind != "layers" else g.reshape(1)

    model.prune_gates = gates  # a submodule, so the loop's optimizer finds the gates
    loop = TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_ratio=0.0,
        schedule="constant",
        max_grad_norm=0.0,
        precision=precision,
        log_every=max(1, cfg.steps // 5),
    )
    try:
        with unit_gates(model, make_gate):
            result = train_loop(model, batches, gates_objective(gates, cfg.l0_weight), loop)
    finally:
        del model.prune_gates
        for p in frozen:
            p.requires_grad_(True)
    la = {k: v.detach().cpu() for k, v in gates.log_alpha.items()}
    cfg_m = model.config
    n = cfg_m.num_hidden_layers
    scores = Scores(
        la.get("heads", torch.zeros(n, cfg_m.num_attention_heads)),
        la.get("channels", torch.zeros(n, cfg_m.intermediate_size)),
        la["layers"][:, 0] if "layers" in la else torch.zeros(n),
    )
    return scores, gates.closed(), result
