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
