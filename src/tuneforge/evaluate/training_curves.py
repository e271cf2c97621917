"""Curves of an online-RL run from its train_log.jsonl: reward mean ± sd, the share of groups whose
completions all scored the same (they teach nothing), KL to the reference and completion length,
per optimizer step — one PNG beside the run."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.evaluate import report_kit as kit


def plot_rl_curves(log_path: str | Path, out: str | Path, title: str = "GRPO") -> Path:
    rows = [json.loads(x) for x in Path(log_path).read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = [r for r in rows if "reward_mean" in r]
    steps = [r["step"] for r in rows]
    plt = kit.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    mean = [r["reward_mean"] for r in rows]
    sd = [r["reward_sd"] for r in rows]
    axes[0].plot(steps, mean, marker=".")
    axes[0].fill_between(steps, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], alpha=0.2)
    for ax, key, label in (
        (axes[0], None, "reward (sampled; mean ± sd)"),
        (axes[1], "zero_variance_groups", "groups with equal rewards"),
        (axes[2], "kl", "KL to the reference (per token)"),
        (axes[3], "completion_tokens", "completion tokens (mean)"),
    ):
        if key:
            ax.plot(steps, [r[key] for r in rows], marker=".")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("optimizer step")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def smoothed(values: list[float], weight: float = 0.6) -> list[float]:
    """An exponential moving average, debiased (TensorBoard's smoothing), for a readable trend line."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


def plot_loss(ax, rows: list[dict], label: str = "", color=None) -> None:
    """A run's training loss (raw points faint, the smoothed line solid) and its held-out
    evaluations during training (points with 95% CI error bars), from train_log.jsonl rows."""
    train = [r for r in rows if "loss" in r and "step" in r]
    evals = [r for r in rows if "eval_loss" in r and "step" in r]
    if train:
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        (raw,) = ax.plot(steps, losses, ".", alpha=0.3, markersize=3, color=color)
        color = raw.get_color()
        ax.plot(steps, smoothed(losses), "-", color=color, label=f"{label} training".strip())
    if evals:
        values = [r["eval_loss"] for r in evals]
        err = [[v - r.get("eval_loss_lo", v) for v, r in zip(values, evals)],
               [r.get("eval_loss_hi", v) - v for v, r in zip(values, evals)]]  # fmt: skip
        ax.errorbar([r["step"] for r in evals], values, yerr=err, fmt="s--", markersize=4, capsize=3, color=color,
                    alpha=0.9, label=f"{label} held-out (95% CI)".strip())  # fmt: skip
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per target token")
