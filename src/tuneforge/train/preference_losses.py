"""The preference losses beside DPO, each a per-example function of sequence log-probabilities, used by
the one loop through `dpo.preference_objective`. Notation: π = the policy's log-probability of a
response given its prompt, ρ = the reference's; `sum` = summed over the response's tokens, `avg` =
divided by its length |y| (as TRL computes each loss).

- IPO (Azar et al. 2023):  L = (h − 1/(2β))²,  h = (π̄_c − π̄_r) − (ρ̄_c − ρ̄_r) on length-averaged
  log-probs. A squared loss: it stops pushing once the margin reaches 1/(2β), where DPO's
  −log σ keeps pushing (and over-fits deterministic preferences).
- SimPO (Meng et al. 2024):  L = −log σ(β·(π̄_c − π̄_r) − γ). No reference model: the
  length-normalised log-prob is the implicit reward, γ a target margin.
- ORPO (Hong et al. 2024):  L = −π̄_c + λ·(−log σ(log odds_c − log odds_r)),
  log odds = π̄ − log(1 − e^π̄). No reference, no separate SFT stage: the NLL of the chosen
  response (here its mean token loss per pair) plus an odds-ratio penalty.
- KTO (Ethayarajh et al. 2024): unpaired. With r = π_sum − ρ_sum and z₀ = max(0, E[r'] ) over
  mismatched prompt/response pairs (no gradient), a desirable response costs λ_D·(1 − σ(β(r − z₀)))
  and an undesirable one λ_U·(1 − σ(β(z₀ − r))).
Each has a test against values computed by hand (tests/unit/test_objectives.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ipo_term(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1) -> torch.Tensor:
    """(P,) IPO losses from length-averaged log-probs."""
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    return (h - 1 / (2 * beta)) ** 2


def simpo_term(policy_chosen, policy_rejected, beta: float = 2.0, gamma: float = 0.5) -> torch.Tensor:
    """(P,) SimPO losses from length-averaged log-probs."""
    return -F.logsigmoid(beta * (policy_chosen - policy_rejected) - gamma)


def log_odds(avg_logp: torch.Tensor) -> torch.Tensor:
    """log(p / (1 − p)) for p = exp(avg_logp) < 1, computed stably."""
    return avg_logp - torch.log1p(-torch.exp(avg_logp).clamp(max=1 - 1e-7))


def orpo_term(policy_chosen, policy_rejected, weight: float = 0.1) -> torch.Tensor:
    """(P,) ORPO losses from length-averaged log-probs: chosen NLL + λ · odds-ratio loss."""
    ratio = F.logsigmoid(log_odds(policy_chosen) - log_odds(policy_rejected))
    return -policy_chosen - weight * ratio


def kto_term(
    policy,
    ref,
    desirable,
    z0,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> torch.Tensor:
    """(N,) KTO losses from summed log-probs; `desirable` a bool tensor, `z0` the (detached) KL
    reference point."""
    r = policy - ref
    good = desirable_weight * (1 - torch.sigmoid(beta * (r - z0)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (z0 - r)))
    return torch.where(desirable, good, bad)
