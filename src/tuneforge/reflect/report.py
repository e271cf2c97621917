"""The reflective run's report: the alignment-matrix figure, the items table, report.md and the
self-contained report.html, built with the report kit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuneforge.files import write_text_atomic


def _figure(s: dict):
    from tuneforge.evaluate.report_kit import pyplot as _plt

    plt = _plt()
    levels, T = s["levels"], s["max_iterations"]
    mean = np.array([[np.nan if x is None else x for x in row] for row in s["mean_matrix"]], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2 + 0.25 * len(levels)), gridspec_kw={"width_ratios": [3, 2]})
    im = axes[0].imshow(np.ma.masked_invalid(mean), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for j in range(len(levels)):
        for t in range(T):
            axes[0].text(
                t,
                j,
                "—" if np.isnan(mean[j, t]) else f"{mean[j, t]:.2f}",
                ha="center",
                va="center",
                color="white" if np.isnan(mean[j, t]) or mean[j, t] < 0.6 else "black",
                fontsize=8,
            )
    axes[0].set_xticks(range(T), [f"t={t}" for t in range(T)])
    axes[0].set_yticks(range(len(levels)), levels)
    axes[0].set_title(f"alignment A[level, iteration], mean over {s['n_items']} items")
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    conv = [[x for x in s["level_converged_at"][lv] if x is not None] for lv in levels]
    axes[1].bar(levels, [np.mean(c) if c else 0 for c in conv])
    for k, c in enumerate(conv):
        axes[1].text(k, (np.mean(c) if c else 0) + 0.05, f"{len(c)}/{s['n_items']}", ha="center", fontsize=8)
    axes[1].set_ylim(0, T)
    axes[1].set_title("iteration at which a level converged\n(mean over items that did; n shown)", fontsize=9)
    axes[1].tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    return fig


def _table(s: dict) -> tuple[list[str], list[list[str]]]:
    header = [
        "item",
        "domain",
        "iterations",
        "converged at",
        "parse failures",
        *[f"A[{lv}] first → last" for lv in s["levels"]],
    ]
    rows = []
    for item_id, r in s["items"].items():
        n = r["iterations"]

        def fmt(x):
            return "—" if x is None else f"{x:.2f}"

        rows.append(
            [
                item_id,
                r["domain"],
                str(n),
                "—" if r["converged_at"] is None else f"t={r['converged_at']}",
                str(r["parse_failures"]),
                *[f"{fmt(row[0])} → {fmt(row[n - 1])}" for row in r["matrix"]],
            ]
        )
    return header, rows


def _ratings_line(r: dict) -> str:
    if not r.get("n"):
        return "none"
    line = f"{r['n']}, mean {r['mean']:.2f}, sd {r['sd']:.2f}, range {r['min']:.2f}–{r['max']:.2f}"
    return line + (f", mean P(digit) {r['digit_mass_mean']:.3f}" if "digit_mass_mean" in r else "")


def write_reflect_report(s: dict, out: Path) -> Path:
    from tuneforge.evaluate import report_kit as kit

    fig = _figure(s)
    fig.savefig(out / "alignment.png", dpi=110)
    header, rows = _table(s)
    lines = [
        f"Teacher {s['teacher']}, student {s['student']}; {s['n_items']} items, levels {', '.join(s['levels'])}, "
        f"T = {s['max_iterations']}, ε = {s['epsilon']}. Converged (eq. 32) before T: {s['converged']} of "
        f"{s['n_items']} items. Teacher verdicts that did not parse: {s['parse_failures']} of {s['verdicts']} "
        "(their cells are empty, never guessed).",
        f"Verdicts: {s['verdict']}; ratings given: {_ratings_line(s['ratings'])}.",
        "A[j, t] = max(0, cos(e(reply), e(instruction))) × quality, quality = (rating − lowest)/(highest − lowest) "
        "(seed 001 eq. 31).",
    ]
    md = [
        "# Reflective teacher–student run",
        "",
        *[x + "\n" for x in lines],
        "![alignment](alignment.png)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(r) + " |" for r in rows],
    ]
    write_text_atomic(out / "report.md", "\n".join(md) + "\n")
    html_page = kit.page(
        "tuneforge — reflect run",
        [
            *kit.paragraphs(lines),
            kit.figure(
                fig,
                "Alignment matrix (levels × iterations) and the iteration at which each level converged "
                "(seed 001, Figure 5)",
            ),
            kit.section("Items", header, rows),
        ],
        "Reflective teacher–student run",
    )
    path = out / "report.html"
    write_text_atomic(path, html_page)
    return path
