"""The compression part of an eval run's report (`tuneforge compress compare` writes its table into
OUT/eval/metrics.json under `compression`): the table of size, speed and quality per variant and the
size-vs-quality chart. `register()` hands it to `tuneforge.evaluate.report`."""

from __future__ import annotations

from pathlib import Path

from tuneforge.evaluate import report_kit as kit
from tuneforge.evaluate.report import StageReport, register_stage_report


def _ci(r: dict | None, key: str, signed: bool = False) -> str:
    """`r[key]` with r's 95% CI, e.g. 2.131 [2.05, 2.21]; — when there is none."""
    if not r:
        return "—"
    lo, hi = r["ci"]
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(r[key])} [{f.format(lo)}, {f.format(hi)}]"


def format_table(result: dict) -> str:
    """The comparison as a Markdown table (Δ = variant − original, paired, 95% CI)."""
    metrics = list(result["variants"][0]["scores"])
    head = ["variant", "params", "weights MB", "peak RSS MB", "tok/s", "C_inf GFLOP/s", "held-out loss", "Δ loss"]
    head += [x for m in metrics for x in (m, f"Δ {m}")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["variants"]:
        h = r.get("heldout_loss")
        cells = [r["label"], f"{r['params'] / 1e6:.1f}M", f"{r['weight_bytes'] / 2**20:.0f}", f"{r['peak_rss_mb']:.0f}",
                 f"{r['tokens_per_s']:.1f}", f"{r['c_inf_gflops']:.1f}", _ci(h, "loss"), _ci(h and h.get("delta"), "delta", True)]  # fmt: skip
        for m in metrics:
            s = (r["scores"].get(m) or {}).get("score")
            p = r.get("paired", {}).get(m)
            cells += [f"{s:.2f}" if isinstance(s, float) else "—", _ci(p, "delta", True)]
        lines.append("| " + " | ".join(cells) + " |")
    engines = sorted({r["engine"] for r in result["variants"]})
    lines += ["", f"CPU: {result['cpu']}. Speed engines: {'; '.join(engines)}. Held-out loss per target token on "
              f"{result['heldout']}; {', '.join(metrics)} on {result['n_test_items']} items of {result['test']}; "
              f"Δ against {result['reference']}, paired over the same items, bootstrap 95% CI."]  # fmt: skip
    return "\n".join(lines) + "\n"


def size_vs_quality_figure(result: dict):
    """Weights on disk (MB, log scale) against held-out loss with its 95% CI, one marker per variant
    (named in a legend beside the axes: labels written at the points overlap where variants agree)."""
    from matplotlib.ticker import ScalarFormatter

    plt = kit.pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    markers = "osD^vP*Xhp<>"
    for i, r in enumerate(result["variants"]):
        h = r.get("heldout_loss")
        if not h:
            continue
        x, y = r["weight_bytes"] / 2**20, h["loss"]
        ax.errorbar([x], [y], yerr=[[y - h["ci"][0]], [h["ci"][1] - y]], fmt=markers[i % len(markers)], capsize=3,
                    label=r["label"], alpha=0.85)  # fmt: skip
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("weights on disk (MB, log scale)")
    ax.set_ylabel("held-out loss per target token (95% CI)")
    ax.set_title("Size vs quality")
    ax.grid(alpha=0.3)
    kit.legend_beside(ax)
    fig.tight_layout()
    return fig


def compression_report(run_dir: Path, metrics: dict) -> StageReport:
    result = metrics["compression"]
    lines = format_table(result).strip().splitlines()
    return StageReport(
        sections=[("Compression: size, speed and quality per variant", lines)],
        charts=[
            ("Size vs quality: weights on disk against held-out loss (95% CI)", kit.svg(size_vs_quality_figure(result)))
        ],
    )


def register() -> None:
    """Let `write_report` render the compression part of any run that has one."""
    register_stage_report("compression", compression_report)
